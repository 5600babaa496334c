// Optimizer updates; compiled once per ISA (see isa.h).
#include "kernels/optim.h"

#include <cmath>

#include "kernels/simd.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Parameter updates below this many elements per thread run on the calling thread.
constexpr int64_t kUpdateGrain = 1 << 15;

}  // namespace

template <typename T>
void sgd_step(T* p, const T* g, T* v, int64_t n, T lr, T momentum) {
  using S = Simd<T>;
  // Scalar spec: if (v) { v[i] = momentum * v[i] + g[i]; p[i] -= lr * v[i]; } else p[i] -= lr * g[i].
  runtime::parallel_for(n, kUpdateGrain, [&](int64_t begin, int64_t end) {
    const auto vlr = S::set1(lr), vmom = S::set1(momentum);
    int64_t i = begin;
    if (v != nullptr) {
      for (; i + S::width <= end; i += S::width) {
        const auto vel = S::fmadd(vmom, S::loadu(v + i), S::loadu(g + i));
        S::storeu(v + i, vel);
        S::storeu(p + i, S::fnmadd(vlr, vel, S::loadu(p + i)));
      }
      if (i < end) {
        const int64_t r = end - i;
        const auto vel = S::fmadd(vmom, S::load_partial(v + i, r), S::load_partial(g + i, r));
        S::store_partial(v + i, vel, r);
        S::store_partial(p + i, S::fnmadd(vlr, vel, S::load_partial(p + i, r)), r);
      }
    } else {
      for (; i + S::width <= end; i += S::width) {
        S::storeu(p + i, S::fnmadd(vlr, S::loadu(g + i), S::loadu(p + i)));
      }
      if (i < end) {
        const int64_t r = end - i;
        S::store_partial(p + i, S::fnmadd(vlr, S::load_partial(g + i, r), S::load_partial(p + i, r)),
                         r);
      }
    }
  });
}

template <typename T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T bc1,
               T bc2) {
  using S = Simd<T>;
  // Scalar spec: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  //              p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps).
  const T step = lr / bc1;
  const T inv_sqrt_bc2 = T(1) / std::sqrt(bc2);
  runtime::parallel_for(n, kUpdateGrain, [&](int64_t begin, int64_t end) {
    const auto vb1 = S::set1(beta1), vb2 = S::set1(beta2);
    const auto vc1 = S::set1(T(1) - beta1), vc2 = S::set1(T(1) - beta2);
    const auto vstep = S::set1(step), vinv = S::set1(inv_sqrt_bc2), veps = S::set1(eps);
    auto update = [&](typename S::Reg pg, typename S::Reg pm, typename S::Reg pv,
                      typename S::Reg pp, typename S::Reg* om, typename S::Reg* ov) {
      const auto mm = S::fmadd(vb1, pm, S::mul(vc1, pg));
      const auto vv = S::fmadd(vb2, pv, S::mul(vc2, S::mul(pg, pg)));
      const auto denom = S::fmadd(S::sqrt(vv), vinv, veps);
      *om = mm;
      *ov = vv;
      return S::fnmadd(vstep, S::div(mm, denom), pp);
    };
    int64_t i = begin;
    for (; i + S::width <= end; i += S::width) {
      typename S::Reg om, ov;
      const auto pp = update(S::loadu(g + i), S::loadu(m + i), S::loadu(v + i), S::loadu(p + i),
                             &om, &ov);
      S::storeu(m + i, om);
      S::storeu(v + i, ov);
      S::storeu(p + i, pp);
    }
    if (i < end) {
      const int64_t r = end - i;
      typename S::Reg om, ov;
      const auto pp = update(S::load_partial(g + i, r), S::load_partial(m + i, r),
                             S::load_partial(v + i, r), S::load_partial(p + i, r), &om, &ov);
      S::store_partial(m + i, om, r);
      S::store_partial(v + i, ov, r);
      S::store_partial(p + i, pp, r);
    }
  });
}

#define NNFAST_INSTANTIATE_OPTIM(T)                                                            \
  template void sgd_step<T>(T*, const T*, T*, int64_t, T, T);                                  \
  template void adam_step<T>(T*, const T*, T*, T*, int64_t, T, T, T, T, T, T);

NNFAST_INSTANTIATE_OPTIM(float)
NNFAST_INSTANTIATE_OPTIM(double)
#undef NNFAST_INSTANTIATE_OPTIM

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
