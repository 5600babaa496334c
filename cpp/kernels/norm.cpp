// Batch-normalization kernels; compiled once per ISA (see isa.h). The formulas are in norm.h.
#include "kernels/norm.h"

#include <algorithm>
#include <cmath>

#include "kernels/simd.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Channels per task: about 2^15 elements of work, at least one channel.
inline int64_t channel_grain(const BatchNormShape& g) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, g.n * g.s));
}

// The sum over channel k of vec(off), a register of double terms for the Simd<double>::width
// elements at flat offset off, and of one(off), the term of the element at off, for a row's
// last s % width elements: every sample's row of s values in order, two accumulators, the
// tails added in order. One order for any thread count.
template <typename V, typename F>
inline double reduce_channel(const BatchNormShape& g, int64_t k, V vec, F one) {
  using D = Simd<double>;
  constexpr int64_t W = D::width;
  auto a0 = D::zero(), a1 = D::zero();
  double tail = 0.0;
  for (int64_t i = 0; i < g.n; ++i) {
    const int64_t base = (i * g.c + k) * g.s;
    int64_t j = 0;
    for (; j + 2 * W <= g.s; j += 2 * W) {
      a0 = D::add(a0, vec(base + j));
      a1 = D::add(a1, vec(base + j + W));
    }
    for (; j + W <= g.s; j += W) a0 = D::add(a0, vec(base + j));
    for (; j < g.s; ++j) tail += one(base + j);
  }
  return D::reduce_add(D::add(a0, a1)) + tail;
}

// out[off .. off + cnt) = f(off, cnt) over channel k (f returns a Simd<T> register).
template <typename T, typename F>
inline void map_channel(const BatchNormShape& g, int64_t k, T* out, F f) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  for (int64_t i = 0; i < g.n; ++i) {
    const int64_t base = (i * g.c + k) * g.s;
    int64_t j = 0;
    for (; j + W <= g.s; j += W) S::storeu(out + base + j, f(base + j, W));
    if (j < g.s) S::store_partial(out + base + j, f(base + j, g.s - j), g.s - j);
  }
}

template <typename T>
inline typename Simd<T>::Reg load_t(const T* p, int64_t off, int64_t cnt) {
  using S = Simd<T>;
  return cnt == S::width ? S::loadu(p + off) : S::load_partial(p + off, cnt);
}

// y = (x - mean) * scale + beta over channel k, then relu.
template <typename T>
inline void normalize_channel(const T* x, T* y, const BatchNormShape& g, int64_t k, T mean,
                              T scale, T beta, bool relu) {
  using S = Simd<T>;
  const auto m = S::set1(mean), sc = S::set1(scale), b = S::set1(beta);
  if (relu) {
    map_channel(g, k, y, [&](int64_t off, int64_t cnt) {
      return S::max(S::zero(), S::fmadd(S::sub(load_t(x, off, cnt), m), sc, b));
    });
  } else {
    map_channel(g, k, y, [&](int64_t off, int64_t cnt) {
      return S::fmadd(S::sub(load_t(x, off, cnt), m), sc, b);
    });
  }
}

}  // namespace

template <typename T>
void batch_norm_train(const T* x, T* y, const BatchNormShape& g, const T* gamma, const T* beta,
                      T* running_mean, T* running_var, double momentum, double eps, bool relu,
                      T* mean_out, T* invstd_out) {
  using D = Simd<double>;
  const double m = static_cast<double>(g.n * g.s);
  runtime::parallel_for(g.c, channel_grain(g), [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) {
      const double mean =
          reduce_channel(
              g, k, [&](int64_t off) { return D::load_from(x + off); },
              [&](int64_t off) { return static_cast<double>(x[off]); }) /
          m;
      const auto md = D::set1(mean);
      const double var = reduce_channel(
                             g, k,
                             [&](int64_t off) {
                               const auto d = D::sub(D::load_from(x + off), md);
                               return D::mul(d, d);
                             },
                             [&](int64_t off) {
                               const double d = static_cast<double>(x[off]) - mean;
                               return d * d;
                             }) /
                         m;
      const double invstd = 1.0 / std::sqrt(var + eps);
      const T mean_t = static_cast<T>(mean);
      normalize_channel(x, y, g, k, mean_t,
                        static_cast<T>(static_cast<double>(gamma[k]) * invstd), beta[k], relu);
      running_mean[k] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[k]) +
                                       momentum * mean);
      running_var[k] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[k]) +
                                      momentum * (var * m / (m - 1.0)));
      mean_out[k] = mean_t;
      invstd_out[k] = static_cast<T>(invstd);
    }
  });
}

template <typename T>
void batch_norm_eval(const T* x, T* y, const BatchNormShape& g, const T* gamma, const T* beta,
                     const T* running_mean, const T* running_var, double eps, bool relu) {
  if (g.n * g.s == 0) return;
  runtime::parallel_for(g.c, channel_grain(g), [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[k]) + eps);
      normalize_channel(x, y, g, k, running_mean[k],
                        static_cast<T>(static_cast<double>(gamma[k]) * invstd), beta[k], relu);
    }
  });
}

namespace {

// One channel's backward: the two sums in one pass (two accumulators each, tails in order), then
// grad_x. kRelu: grad_y masked by y > 0.
template <typename T, bool kRelu>
void backward_channel(const T* grad_y, const T* x, const T* y, const BatchNormShape& g, int64_t k,
                      T gamma, T mean, T invstd, bool training, T* grad_x, T* grad_gamma,
                      T* grad_beta) {
  using D = Simd<double>;
  using S = Simd<T>;
  constexpr int64_t W = D::width;
  const double m = static_cast<double>(g.n * g.s);
  const double mean_d = static_cast<double>(mean), inv = static_cast<double>(invstd);
  const auto md = D::set1(mean_d);
  auto grad_d = [&](int64_t off) {
    const auto gy = D::load_from(grad_y + off);
    if constexpr (kRelu) return D::select(D::cmp_gt(D::load_from(y + off), D::zero()), gy, D::zero());
    return gy;
  };
  auto a0 = D::zero(), a1 = D::zero(), b0 = D::zero(), b1 = D::zero();
  double ta = 0.0, tb = 0.0;
  for (int64_t i = 0; i < g.n; ++i) {
    const int64_t base = (i * g.c + k) * g.s;
    int64_t j = 0;
    for (; j + 2 * W <= g.s; j += 2 * W) {
      const auto g0 = grad_d(base + j), g1 = grad_d(base + j + W);
      a0 = D::add(a0, g0);
      a1 = D::add(a1, g1);
      b0 = D::fmadd(g0, D::sub(D::load_from(x + base + j), md), b0);
      b1 = D::fmadd(g1, D::sub(D::load_from(x + base + j + W), md), b1);
    }
    for (; j + W <= g.s; j += W) {
      const auto g0 = grad_d(base + j);
      a0 = D::add(a0, g0);
      b0 = D::fmadd(g0, D::sub(D::load_from(x + base + j), md), b0);
    }
    for (; j < g.s; ++j) {
      const int64_t off = base + j;
      const double gv = kRelu && !(y[off] > T(0)) ? 0.0 : static_cast<double>(grad_y[off]);
      ta += gv;
      tb += gv * (static_cast<double>(x[off]) - mean_d);
    }
  }
  const double sum_g = D::reduce_add(D::add(a0, a1)) + ta;
  const double gg = (D::reduce_add(D::add(b0, b1)) + tb) * inv;
  grad_beta[k] = static_cast<T>(sum_g);
  grad_gamma[k] = static_cast<T>(gg);
  const double k1 = static_cast<double>(gamma) * inv;
  const auto a = S::set1(static_cast<T>(k1));
  auto grad_t = [&](int64_t off, int64_t cnt) {
    const auto gy = load_t(grad_y, off, cnt);
    if constexpr (kRelu) {
      return S::select(S::cmp_gt(load_t(y, off, cnt), S::zero()), gy, S::zero());
    }
    return gy;
  };
  if (!training || m == 0) {
    map_channel(g, k, grad_x, [&](int64_t off, int64_t cnt) { return S::mul(a, grad_t(off, cnt)); });
    return;
  }
  const auto b = S::set1(static_cast<T>(-k1 * inv * gg / m));
  const auto c = S::set1(static_cast<T>(-k1 * sum_g / m));
  const auto mt = S::set1(mean);
  map_channel(g, k, grad_x, [&](int64_t off, int64_t cnt) {
    return S::fmadd(a, grad_t(off, cnt), S::fmadd(b, S::sub(load_t(x, off, cnt), mt), c));
  });
}

}  // namespace

template <typename T>
void batch_norm_backward(const T* grad_y, const T* x, const T* y, const BatchNormShape& g,
                         const T* gamma, const T* mean, const T* invstd, bool training, bool relu,
                         T* grad_x, T* grad_gamma, T* grad_beta) {
  runtime::parallel_for(g.c, channel_grain(g), [&](int64_t c0, int64_t c1) {
    for (int64_t k = c0; k < c1; ++k) {
      if (relu) {
        backward_channel<T, true>(grad_y, x, y, g, k, gamma[k], mean[k], invstd[k], training,
                                  grad_x, grad_gamma, grad_beta);
      } else {
        backward_channel<T, false>(grad_y, x, y, g, k, gamma[k], mean[k], invstd[k], training,
                                   grad_x, grad_gamma, grad_beta);
      }
    }
  });
}

#define NNFAST_INSTANTIATE(T)                                                                   \
  template void batch_norm_train<T>(const T*, T*, const BatchNormShape&, const T*, const T*,    \
                                    T*, T*, double, double, bool, T*, T*);                      \
  template void batch_norm_eval<T>(const T*, T*, const BatchNormShape&, const T*, const T*,     \
                                   const T*, const T*, double, bool);                           \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const BatchNormShape&,     \
                                       const T*, const T*, const T*, bool, bool, T*, T*, T*);
NNFAST_INSTANTIATE(float)
NNFAST_INSTANTIATE(double)
#undef NNFAST_INSTANTIATE

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
