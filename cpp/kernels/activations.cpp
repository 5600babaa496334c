// Activation kernels; compiled once per ISA (see isa.h).
#include "kernels/activations.h"

#include "kernels/gemm_epilogue.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/row_tasks.h"
#include "kernels/simd.h"
#include "kernels/vmath.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Element-wise work below this many elements per thread is not worth waking a thread for
// (memory-bound ops such as relu; exp-based ops use a smaller grain, see kMathGrain).
constexpr int64_t kElementwiseGrain = 1 << 15;
constexpr int64_t kMathGrain = 1 << 14;
// Softmax: elements per task below which another thread does not pay.
constexpr int64_t kSoftmaxGrain = 1 << 14;

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
void map_parallel(const T* x, T* y, int64_t n, int64_t grain, Op op) {
  runtime::parallel_for(n, grain,
                        [&](int64_t begin, int64_t end) { map_range(x, y, begin, end, op); });
}

// Softmax of contiguous rows [r0, r1) of rows rows of length len: max, exp and sum, scale (the
// row stays in L1 from the first pass to the last; the next one is prefetched during the exp pass).
template <typename T>
void softmax_rows(const T* x, T* y, int64_t r0, int64_t r1, int64_t rows, int64_t len) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * len;
    T* yr = y + r * len;
    const T sum = vmath::row_softmax_exp<T>(xr, yr, len, nullptr, nullptr,
                                            vmath::next_row(x, y, r, r1, rows, len));
    vmath::row_scale(yr, len, T(1) / sum);
  }
}

// Softmax along a strided axis: columns [c0, c0 + cn) (cn <= width) of one (len, inner) slab,
// one register of columns at a time, so every load is contiguous.
template <typename T>
void softmax_columns(const T* x, T* y, int64_t len, int64_t inner, int64_t c0, int64_t cn) {
  using S = Simd<T>;
  const T ninf = -std::numeric_limits<T>::infinity();
  const bool full = cn == S::width;
  auto load = [&](const T* p) { return full ? S::loadu(p) : S::load_partial_or(p, cn, ninf); };
  auto store = [&](T* p, typename S::Reg v) {
    if (full) {
      S::storeu(p, v);
    } else {
      S::store_partial(p, v, cn);
    }
  };
  auto m = S::set1(ninf);
  for (int64_t l = 0; l < len; ++l) m = S::max(load(x + l * inner + c0), m);
  // A NaN column: max skipped it, exp(NaN - m) makes the sum and the column NaN.
  // NOTE: each lane sums a whole column alone; the compensated sum keeps long columns accurate.
  vmath::Kahan<T> s;
  for (int64_t l = 0; l < len; ++l) {
    const auto e = vmath::exp_diff<T>(load(x + l * inner + c0), m);
    store(y + l * inner + c0, e);
    s.add(e);
  }
  const auto inv = S::div(S::set1(T(1)), S::sub(s.s, s.c));
  for (int64_t l = 0; l < len; ++l) {
    T* p = y + l * inner + c0;
    store(p, S::mul(full ? S::loadu(p) : S::load_partial(p, cn), inv));
  }
}

// Two-input map: out = op(a, b) register by register over [begin, end).
template <typename T, typename Op>
inline void map2_range(const T* a, const T* b, T* out, int64_t begin, int64_t end, Op op) {
  using S = Simd<T>;
  int64_t i = begin;
  for (; i + 2 * S::width <= end; i += 2 * S::width) {
    const auto u = op(S::loadu(a + i), S::loadu(b + i));
    const auto v = op(S::loadu(a + i + S::width), S::loadu(b + i + S::width));
    S::storeu(out + i, u);
    S::storeu(out + i + S::width, v);
  }
  for (; i + S::width <= end; i += S::width) S::storeu(out + i, op(S::loadu(a + i), S::loadu(b + i)));
  if (i < end) {
    S::store_partial(out + i, op(S::load_partial(a + i, end - i), S::load_partial(b + i, end - i)),
                     end - i);
  }
}

// Float64 GELU, element by element with the C library's erfc (correctly rounded to within an
// ulp or so): Phi(x) = erfc(-x / sqrt2) / 2, phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
// Beyond |x| = 40 Phi is 0 or 1 and the density 0 in double: the limits, also at +-inf (where
// the formulas would give inf * 0).
constexpr double kGeluTail = 40.0;
inline double gelu_scalar(double x) {
  return x < -kGeluTail ? -0.0 : x * (0.5 * std::erfc(-x * kSqrt1_2));
}
inline double gelu_derivative_scalar(double x) {
  if (x < -kGeluTail) return -0.0;
  if (x > kGeluTail) return 1.0;
  return 0.5 * std::erfc(-x * kSqrt1_2) + x * (kInvSqrt2Pi * std::exp(-0.5 * x * x));
}

}  // namespace

template <typename T>
void activation_output_grad(const T* y, const T* grad_y, T* grad_z, int64_t n, GemmActivation act) {
  using S = Simd<T>;
  auto run = [&](auto tag) {
    constexpr GemmActivation A = decltype(tag)::value;
    runtime::parallel_for(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      map2_range(y, grad_y, grad_z, begin, end, [](typename S::Reg a, typename S::Reg g) {
        return epi::activation_grad<A, T>(a, g, S::zero());
      });
    });
  };
  switch (act) {
    case GemmActivation::relu:
      return run(std::integral_constant<GemmActivation, GemmActivation::relu>{});
    case GemmActivation::sigmoid:
      return run(std::integral_constant<GemmActivation, GemmActivation::sigmoid>{});
    case GemmActivation::tanh:
      return run(std::integral_constant<GemmActivation, GemmActivation::tanh>{});
    default:
      if (grad_z != grad_y) std::copy(grad_y, grad_y + n, grad_z);
  }
}

template <typename T>
void gelu(const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    map_parallel(x, y, n, kMathGrain, [](Simd<float>::Reg v) { return vmath::gelu(v); });
  } else {
    runtime::parallel_for(n, kMathGrain / 4, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y[i] = gelu_scalar(x[i]);
    });
  }
}

template <typename T>
void gelu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    using S = Simd<float>;
    runtime::parallel_for(n, kMathGrain, [&](int64_t begin, int64_t end) {
      map2_range(grad_y, x, grad_x, begin, end,
                 [](S::Reg g, S::Reg v) { return S::mul(g, vmath::gelu_derivative(v)); });
    });
  } else {
    runtime::parallel_for(n, kMathGrain / 4, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) grad_x[i] = grad_y[i] * gelu_derivative_scalar(x[i]);
    });
  }
}

template <typename T>
void leaky_relu(const T* x, T* y, int64_t n, T slope) {
  using S = Simd<T>;
  const auto s = S::set1(slope);
  map_parallel(x, y, n, kElementwiseGrain, [s](typename S::Reg v) {
    return S::select(S::cmp_gt(v, S::zero()), v, S::mul(v, s));
  });
}

template <typename T>
void leaky_relu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n, T slope) {
  using S = Simd<T>;
  const auto s = S::set1(slope);
  runtime::parallel_for(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    map2_range(grad_y, x, grad_x, begin, end, [s](typename S::Reg g, typename S::Reg v) {
      return S::select(S::cmp_gt(v, S::zero()), g, S::mul(g, s));
    });
  });
}

template <typename T>
void relu(const T* x, T* y, int64_t n) {
  using S = Simd<T>;
  // Scalar spec: y = x > 0 ? x : (x != x ? x : 0). max(zero, v) returns v when v is NaN.
  map_parallel(x, y, n, kElementwiseGrain, [](typename S::Reg v) { return S::max(S::zero(), v); });
}

template <typename T>
void sigmoid(const T* x, T* y, int64_t n) {
  map_parallel(x, y, n, kMathGrain, [](typename Simd<T>::Reg v) { return vmath::sigmoid<T>(v); });
}

template <typename T>
void tanh(const T* x, T* y, int64_t n) {
  map_parallel(x, y, n, kMathGrain, [](typename Simd<T>::Reg v) { return vmath::tanh<T>(v); });
}

template <typename T>
void relu_derivative(const T* x, T* y, int64_t n) {
  map_parallel(x, y, n, kElementwiseGrain,
               [](typename Simd<T>::Reg v) { return vmath::relu_derivative<T>(v); });
}

template <typename T>
void sigmoid_derivative(const T* x, T* y, int64_t n) {
  map_parallel(x, y, n, kMathGrain,
               [](typename Simd<T>::Reg v) { return vmath::sigmoid_derivative<T>(v); });
}

template <typename T>
void tanh_derivative(const T* x, T* y, int64_t n) {
  map_parallel(x, y, n, kMathGrain,
               [](typename Simd<T>::Reg v) { return vmath::tanh_derivative<T>(v); });
}

template <typename T>
void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
  if (outer <= 0 || len <= 0 || inner <= 0) return;
  if (inner == 1) {
    for_each_row_block(outer, len, kSoftmaxGrain,
                       [&](int64_t r0, int64_t r1) { softmax_rows(x, y, r0, r1, outer, len); });
    return;
  }
  // Tasks are (slab, register of columns) pairs; each column's result depends only on itself.
  constexpr int64_t W = Simd<T>::width;
  const int64_t strips = (inner + W - 1) / W;
  const int64_t grain = std::max<int64_t>(1, kSoftmaxGrain / (len * W));
  runtime::parallel_for(outer * strips, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / strips, c0 = (t % strips) * W;
      softmax_columns(x + o * len * inner, y + o * len * inner, len, inner, c0,
                      std::min<int64_t>(W, inner - c0));
    }
  });
}

#define NNFAST_INSTANTIATE(T)                                                \
  template void relu<T>(const T*, T*, int64_t);                              \
  template void sigmoid<T>(const T*, T*, int64_t);                           \
  template void tanh<T>(const T*, T*, int64_t);                              \
  template void relu_derivative<T>(const T*, T*, int64_t);                   \
  template void sigmoid_derivative<T>(const T*, T*, int64_t);                \
  template void tanh_derivative<T>(const T*, T*, int64_t);                   \
  template void softmax<T>(const T*, T*, int64_t, int64_t, int64_t);          \
  template void activation_output_grad<T>(const T*, const T*, T*, int64_t,  \
                                           GemmActivation);                  \
  template void gelu<T>(const T*, T*, int64_t);                              \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t);           \
  template void leaky_relu<T>(const T*, T*, int64_t, T);                     \
  template void leaky_relu_backward<T>(const T*, const T*, T*, int64_t, T);
NNFAST_INSTANTIATE(float)
NNFAST_INSTANTIATE(double)
#undef NNFAST_INSTANTIATE

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
