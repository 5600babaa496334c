// FMA throughput probe; compiled once per ISA (see isa.h).
#include "kernels/peak.h"

#include "kernels/simd.h"

namespace nnfast {
namespace NNFAST_ISA_NS {

template <typename T>
int64_t fma_chains(int64_t iters, T* sink) {
  using S = Simd<T>;
  // NOTE: 12 independent accumulators cover FMA latency (4 cycles) x 2 ports with room to spare,
  // the same register budget as the GEMM micro-kernels.
  constexpr int kChains = 12;
  typename S::Reg acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = S::set1(static_cast<T>(c) * T(1e-3));
  const auto a = S::set1(T(0.999999));
  const auto b = S::set1(T(1e-7));
  for (int64_t i = 0; i < iters; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = S::fmadd(acc[c], a, b);
  }
  auto total = acc[0];
  for (int c = 1; c < kChains; ++c) total = S::add(total, acc[c]);
  alignas(64) T lanes[S::width];
  S::storeu(lanes, total);
  T s = 0;
  for (int l = 0; l < S::width; ++l) s += lanes[l];
  *sink = s;
  return iters * kChains * S::width * 2;
}

template int64_t fma_chains<float>(int64_t, float*);
template int64_t fma_chains<double>(int64_t, double*);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
