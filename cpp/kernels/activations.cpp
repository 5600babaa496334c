// Activation kernels; compiled once per ISA (see isa.h).
#include "kernels/activations.h"

#include "kernels/simd.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Element-wise work below this many elements per thread is not worth waking a thread for.
constexpr int64_t kElementwiseGrain = 1 << 15;

// Applies op to each register of x in [begin, end) and stores it to y; tails are masked or
// buffered, never looped over scalars.
template <typename T, typename Op>
inline void map_range(const T* x, T* y, int64_t begin, int64_t end, Op op) {
  using S = Simd<T>;
  int64_t i = begin;
  for (; i + 4 * S::width <= end; i += 4 * S::width) {
    const auto a = op(S::loadu(x + i));
    const auto b = op(S::loadu(x + i + S::width));
    const auto c = op(S::loadu(x + i + 2 * S::width));
    const auto d = op(S::loadu(x + i + 3 * S::width));
    S::storeu(y + i, a);
    S::storeu(y + i + S::width, b);
    S::storeu(y + i + 2 * S::width, c);
    S::storeu(y + i + 3 * S::width, d);
  }
  for (; i + S::width <= end; i += S::width) S::storeu(y + i, op(S::loadu(x + i)));
  if (i < end) S::store_partial(y + i, op(S::load_partial(x + i, end - i)), end - i);
}

template <typename T, typename Op>
void map_parallel(const T* x, T* y, int64_t n, Op op) {
  runtime::parallel_for(n, kElementwiseGrain,
                        [&](int64_t begin, int64_t end) { map_range(x, y, begin, end, op); });
}

}  // namespace

template <typename T>
void relu(const T* x, T* y, int64_t n) {
  using S = Simd<T>;
  // Scalar spec: y = x > 0 ? x : (x != x ? x : 0). max(zero, v) returns v when v is NaN.
  map_parallel(x, y, n, [](typename S::Reg v) { return S::max(S::zero(), v); });
}

template void relu<float>(const float*, float*, int64_t);
template void relu<double>(const double*, double*, int64_t);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
