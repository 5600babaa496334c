// Vectorised elementary functions on Simd<T> registers: exp, expm1, log and the activations
// built on them (sigmoid, tanh and their derivatives).
//
// Included only by kernel sources compiled per ISA (after simd.h); everything is inline in the
// ISA's namespace. exp/expm1 use Cody-Waite range reduction x = n ln2 + r (|r| <= ln2/2), a
// Taylor polynomial in r and an exact scaling by 2^n (Simd::ldexp: one rounding, so subnormal
// results are right too). Edges are exact: overflow gives +inf, underflow 0, -inf gives 0 (exp)
// or -1 (expm1), NaN propagates. Measured accuracy: benchmarks/activations_accuracy.py.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/simd.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace vmath {

template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
  // exp(x) rounds to 0 below lo and overflows above hi; clamping there keeps n small.
  static constexpr float lo = -104.0f, hi = 89.0f;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  static constexpr int degree = 7;  // Taylor remainder r^8/8! < 2^-27 on |r| <= ln2/2
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -746.0, hi = 710.0;
  static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  static constexpr int degree = 13;  // r^14/14! < 2^-57
};

// Range reduction shared by exp and expm1: x clamped to [lo, hi] (NaN survives: min/max return
// their second operand when either is NaN) = n ln2 + r. Returns r, writes n.
template <typename T>
inline typename Simd<T>::Reg exp_reduce(typename Simd<T>::Reg x, typename Simd<T>::Reg* n_out) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  x = S::min(S::set1(C::hi), S::max(S::set1(C::lo), x));
  const auto magic = S::set1(C::round_magic);
  const auto n = S::sub(S::fmadd(x, S::set1(T(1.4426950408889634)), magic), magic);
  auto r = S::fnmadd(n, S::set1(C::ln2_hi), x);  // exact: ln2_hi has few bits
  r = S::fnmadd(n, S::set1(C::ln2_lo), r);
  *n_out = n;
  return r;
}

// exp(r) - 1 = r + r * (r/2! + r^2/3! + ...), Horner with Taylor coefficients.
template <typename T>
inline typename Simd<T>::Reg expm1_poly(typename Simd<T>::Reg r) {
  using S = Simd<T>;
  constexpr int d = ExpConst<T>::degree;
  T coef[d + 1];
  coef[0] = T(1);
  for (int i = 1; i <= d; ++i) coef[i] = coef[i - 1] / T(i);
  auto p = S::set1(coef[d]);
  for (int i = d - 1; i >= 2; --i) p = S::fmadd(p, r, S::set1(coef[i]));
  return S::fmadd(S::mul(p, r), r, r);
}

// exp(x).
template <typename T>
inline typename Simd<T>::Reg exp(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  typename S::Reg n;
  const auto r = exp_reduce<T>(x, &n);
  return S::ldexp(S::add(S::set1(T(1)), expm1_poly<T>(r)), n);
}

// exp(x) - 1 without cancellation near 0: 2^n em + (2^n - 1), em = exp(r) - 1, both terms exact
// scalings; for large n the -1 is below rounding and 2^n (em + 1) avoids overflowing 2^n alone.
template <typename T>
inline typename Simd<T>::Reg expm1(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  typename S::Reg n;
  const auto r = exp_reduce<T>(x, &n);
  const auto em = expm1_poly<T>(r);
  const auto one = S::set1(T(1));
  const auto small = S::add(S::ldexp(em, n), S::sub(S::ldexp(one, n), one));
  const auto large = S::ldexp(S::add(em, one), n);
  return S::select(S::cmp_gt(n, S::set1(T(std::numeric_limits<T>::digits + 2))), large, small);
}

// expm1(x) for x <= 0 (or NaN), cheaper than expm1: n <= 0, so 2^n em + (2^n - 1) needs one
// power of two, normal once x is clamped at clamp_lo (where expm1 is -1 in T anyway).
template <typename T>
inline typename Simd<T>::Reg expm1_nonpositive(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  constexpr T clamp_lo = sizeof(T) == 4 ? T(-87) : T(-708);
  x = S::max(S::set1(clamp_lo), x);  // NaN stays (second operand)
  const auto magic = S::set1(ExpConst<T>::round_magic);
  const auto n = S::sub(S::fmadd(x, S::set1(T(1.4426950408889634)), magic), magic);
  auto r = S::fnmadd(n, S::set1(ExpConst<T>::ln2_hi), x);
  r = S::fnmadd(n, S::set1(ExpConst<T>::ln2_lo), r);
  const auto p2 = S::pow2i(n);
  return S::fmadd(p2, expm1_poly<T>(r), S::sub(p2, S::set1(T(1))));
}

// 1 / (1 + exp(-z)) = r or e r with e = exp(-|z|), r = 1 / (1 + e): no overflow, and full
// relative accuracy in the tail where the result is e (1 - e + ...).
template <typename T>
inline typename Simd<T>::Reg sigmoid(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp<T>(S::neg(S::abs(z)));
  const auto r = S::div(S::set1(T(1)), S::add(S::set1(T(1)), e));
  return S::select(S::cmp_lt(z, S::zero()), S::mul(e, r), r);
}

// tanh(z) = sign(z) (-m) / (2 + m) with m = expm1(-2|z|) in [-1, 0]: never overflows, and keeps
// full relative accuracy near 0 (tanh(1e-8) = 1e-8). -0 keeps its sign.
template <typename T>
inline typename Simd<T>::Reg tanh(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto m = expm1_nonpositive<T>(S::mul(S::set1(T(-2)), S::abs(z)));
  const auto t = S::div(S::neg(m), S::add(S::set1(T(2)), m));
  return S::copysign(t, z);
}

// sigmoid'(z) = s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): accurate in both tails, where
// s (1 - s) from a rounded s would give 0.
template <typename T>
inline typename Simd<T>::Reg sigmoid_derivative(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp<T>(S::neg(S::abs(z)));
  const auto d = S::add(S::set1(T(1)), e);
  return S::div(e, S::mul(d, d));
}

// tanh'(z) = 1 - tanh(z)^2 = 1 / cosh(z)^2 = 4 e / (1 + e)^2 with e = exp(-2|z|).
template <typename T>
inline typename Simd<T>::Reg tanh_derivative(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp<T>(S::mul(S::set1(T(-2)), S::abs(z)));
  const auto d = S::add(S::set1(T(1)), e);
  return S::div(S::mul(S::set1(T(4)), e), S::mul(d, d));
}

// relu'(z): 1 where z > 0, else 0 (the tutorial's (z > 0).astype(float); NaN gives 0).
template <typename T>
inline typename Simd<T>::Reg relu_derivative(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  return S::select(S::cmp_gt(z, S::zero()), S::set1(T(1)), S::zero());
}

// exp(x - m) with the rounding error of x - m restored (TwoSum): a rounded difference would cost
// up to |x - m| / 2 ulps of relative error (16 ulps for a logit gap of 32 in float32).
template <typename T>
inline typename Simd<T>::Reg exp_diff(typename Simd<T>::Reg x, typename Simd<T>::Reg m) {
  using S = Simd<T>;
  const auto d = S::sub(x, m);
  const auto xd = S::add(d, m);  // x as rebuilt from d
  auto err = S::add(S::sub(x, xd), S::sub(S::sub(xd, d), m));
  // Infinite x or m make err NaN exactly where exp gives 0 (or NaN on its own); |err| < 1
  // otherwise. max returns its second operand for a NaN, so e + e err stays 0 (or NaN).
  err = S::max(err, S::set1(T(-1)));
  const auto e = exp<T>(d);
  return S::fmadd(e, err, e);
}

// Kahan-compensated running sum of registers: s - c is the sum, c the lost low-order part.
template <typename T>
struct Kahan {
  using S = Simd<T>;
  typename S::Reg s = S::zero(), c = S::zero();
  void add(typename S::Reg v) {
    const auto y = S::sub(v, c);
    const auto t = S::add(s, y);
    c = S::sub(S::sub(t, s), y);
    s = t;
  }
};

// Max of x[0..len), -inf when empty. NOTE: max skips a NaN (x86 max returns its second operand),
// but exp(NaN - m) reaches the sum in row_exp_sum, so a row holding NaN becomes all NaN.
template <typename T>
inline T row_max(const T* x, int64_t len) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  const T ninf = -std::numeric_limits<T>::infinity();
  auto m0 = S::set1(ninf), m1 = m0;
  int64_t j = 0;
  for (; j + 2 * W <= len; j += 2 * W) {
    m0 = S::max(S::loadu(x + j), m0);
    m1 = S::max(S::loadu(x + j + W), m1);
  }
  for (; j + W <= len; j += W) m0 = S::max(S::loadu(x + j), m0);
  if (j < len) m1 = S::max(S::load_partial_or(x + j, len - j, ninf), m1);
  return S::reduce_max(S::max(m0, m1));
}

// y[j] = exp(x[j] - m) for j < len; returns their sum (compensated partial sums, then the
// lanes in a fixed order). y may equal x.
template <typename T>
inline T row_exp_sum(const T* x, T* y, int64_t len, T m) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  const T ninf = -std::numeric_limits<T>::infinity();
  const auto vm = S::set1(m);
  // Plain sums over blocks of 16 registers, blocks added with compensation: as accurate as a
  // compensated sum throughout, at a fraction of its cost (its add chain is long).
  Kahan<T> total;
  int64_t j = 0;
  while (j + 2 * W <= len) {
    const int64_t block_end = std::min(len, j + 16 * W);
    auto s0 = S::zero(), s1 = S::zero();
    for (; j + 2 * W <= block_end; j += 2 * W) {
      const auto e0 = exp_diff<T>(S::loadu(x + j), vm);
      const auto e1 = exp_diff<T>(S::loadu(x + j + W), vm);
      S::storeu(y + j, e0);
      S::storeu(y + j + W, e1);
      s0 = S::add(s0, e0);
      s1 = S::add(s1, e1);
    }
    total.add(S::add(s0, s1));
  }
  auto s = S::zero();
  for (; j + W <= len; j += W) {
    const auto e = exp_diff<T>(S::loadu(x + j), vm);
    S::storeu(y + j, e);
    s = S::add(s, e);
  }
  if (j < len) {
    // Lanes past the end hold exp(-inf) = 0.
    const auto e = exp_diff<T>(S::load_partial_or(x + j, len - j, ninf), vm);
    S::store_partial(y + j, e, len - j);
    s = S::add(s, e);
  }
  total.add(s);
  return S::reduce_add(S::sub(total.s, total.c));
}

// y[j] *= c for j < len.
template <typename T>
inline void row_scale(T* y, int64_t len, T c) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  const auto vc = S::set1(c);
  int64_t j = 0;
  for (; j + W <= len; j += W) S::storeu(y + j, S::mul(S::loadu(y + j), vc));
  if (j < len) S::store_partial(y + j, S::mul(S::load_partial(y + j, len - j), vc), len - j);
}

}  // namespace vmath
}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
