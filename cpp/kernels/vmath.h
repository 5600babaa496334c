// Vectorised elementary functions on Simd<T> registers: exp, expm1, log and the activations
// built on them (sigmoid, tanh and their derivatives).
//
// Included only by kernel sources compiled per ISA (after simd.h); everything is inline in the
// ISA's namespace. exp/expm1 use Cody-Waite range reduction x = n ln2 + r (|r| <= ln2/2), a
// polynomial in r (fitted in float, Taylor in double) and an exact scaling by 2^n (Simd::ldexp: one
// rounding, so subnormal results are right too); float exp on AVX-512 reduces by ln2/16
// instead, with a 16-entry table and a cubic (exp_table16). Edges are exact: overflow gives
// +inf, underflow 0, -inf gives 0 (exp) or -1 (expm1), NaN propagates. Measured accuracy:
// benchmarks/activations_accuracy.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/simd.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace vmath {

// 1 / ln2, rounded to T where used (T(kLog2e)): the range reductions' scale.
inline constexpr double kLog2e = 1.4426950408889634;

template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
  // exp(x) rounds to 0 below lo and overflows above hi; clamping there keeps n small.
  static constexpr float lo = -104.0f, hi = 89.0f;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -746.0, hi = 710.0;
  static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  static constexpr int degree = 13;  // Taylor (exp_poly, expm1_poly): r^14/14! < 2^-57
};

// x (+ lo, a low part of the argument, read only when kWithLo) = n ln2 + r for x in
// [ExpConst::lo, ExpConst::hi] or NaN (no clamp here): returns r, writes n.
template <typename T, bool kWithLo = false>
inline typename Simd<T>::Reg reduce_ln2(typename Simd<T>::Reg x, typename Simd<T>::Reg* n_out,
                                        typename Simd<T>::Reg lo = Simd<T>::zero()) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  const auto magic = S::set1(C::round_magic);
  const auto n = S::sub(S::fmadd(x, S::set1(T(kLog2e)), magic), magic);
  auto r = S::fnmadd(n, S::set1(C::ln2_hi), x);  // exact: ln2_hi has few bits
  if constexpr (kWithLo) r = S::add(r, lo);
  r = S::fnmadd(n, S::set1(C::ln2_lo), r);
  *n_out = n;
  return r;
}

// Range reduction of expm1: x clamped to [lo, hi] (NaN survives: min/max return their second
// operand when either is NaN) = n ln2 + r. Returns r, writes n.
template <typename T>
inline typename Simd<T>::Reg exp_reduce(typename Simd<T>::Reg x, typename Simd<T>::Reg* n_out) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  x = S::min(S::set1(C::hi), S::max(S::set1(C::lo), x));
  return reduce_ln2<T>(x, n_out);
}

// exp(r) - 1 = r + r^2 P(r) for |r| <= ln2/2. float: P of degree 4 fitted for the relative error
// of the whole (coefficients rounded to float in turn, each refitting the rest): 2^-26; double:
// Taylor, P = 1/2! + r/3! + ... to degree 13 (remainder r^14/14! < 2^-57). K (a power of two):
// takes u = r / K and returns (exp(r) - 1) / K, each coefficient scaled by the power of K that
// makes every intermediate K^i times the unscaled one: the same bits, scaled (tanh folds its -2
// into its reduction this way, one multiply fewer).
template <typename T, int K = 1>
inline typename Simd<T>::Reg expm1_poly(typename Simd<T>::Reg u) {
  using S = Simd<T>;
  constexpr T k = T(K), k2 = k * k, k3 = k2 * k;
  typename S::Reg p;  // K P(r)
  if constexpr (sizeof(T) == 4) {
    // Estrin's scheme, not Horner's: a dependency chain of 3 fmas instead of 5 (these kernels
    // are bound by chain latency more than by op count: tanh 1M f32, 1 thread, AVX-512, with
    // the one-op copysign: 0.328 -> 0.294 ms).
    const auto u2 = S::mul(u, u);
    const auto lo = S::fmadd(S::set1(1.666654497e-01f * k2), u, S::set1(4.999999702e-01f * k));
    auto hi = S::fmadd(S::set1(8.366451599e-03f * k2 * k2), u, S::set1(4.166743532e-02f * k3));
    hi = S::fmadd(S::set1(1.387088909e-03f * k3 * k2), u2, hi);
    p = S::fmadd(hi, u2, lo);
    return S::fmadd(p, u2, u);
  } else {
    constexpr int d = ExpConst<T>::degree;
    T coef[d + 1];  // 1 / i! K^(i-1)
    coef[0] = T(1);
    T ki = T(1) / k;
    for (int i = 1; i <= d; ++i) coef[i] = coef[i - 1] / T(i);
    for (int i = 0; i <= d; ++i, ki *= k) coef[i] *= ki;
    p = S::set1(coef[d]);
    for (int i = d - 1; i >= 2; --i) p = S::fmadd(p, u, S::set1(coef[i]));
  }
  return S::fmadd(S::mul(p, u), u, u);
}

// exp(r) for |r| <= ln2/2 + 2^-7. float: degree 6 fitted for relative error (coefficients
// rounded to float in turn, each refitting the rest): 2^-28 before rounding the evaluation.
// double: Taylor to degree 13 (remainder r^14/14! < 2^-57).
template <typename T>
inline typename Simd<T>::Reg exp_poly(typename Simd<T>::Reg r) {
  using S = Simd<T>;
  if constexpr (sizeof(T) == 4) {
    auto p = S::set1(1.381966867e-03f);
    p = S::fmadd(p, r, S::set1(8.369274437e-03f));
    p = S::fmadd(p, r, S::set1(4.166829586e-02f));
    p = S::fmadd(p, r, S::set1(1.666651666e-01f));
    p = S::fmadd(p, r, S::set1(4.999999404e-01f));
    p = S::fmadd(p, r, S::set1(1.0f));
    return S::fmadd(p, r, S::set1(1.0f));
  } else {
    constexpr int d = 13;
    T coef[d + 1];
    coef[0] = T(1);
    for (int i = 1; i <= d; ++i) coef[i] = coef[i - 1] / T(i);
    auto p = S::set1(coef[d]);
    for (int i = d - 1; i >= 0; --i) p = S::fmadd(p, r, S::set1(coef[i]));
    return p;
  }
}

// Whether Simd<T> has a 16-entry table lookup (Simd::lookup16: AVX-512 float).
template <typename T, typename = void>
struct HasLookup16 : std::false_type {};
template <typename T>
struct HasLookup16<T, std::void_t<decltype(&Simd<T>::lookup16)>> : std::true_type {};

// 2^(j/16) rounded to float, j = 0..15.
alignas(64) inline constexpr float kExp2Sixteenths[16] = {
    1.000000000e+00f, 1.044273734e+00f, 1.090507746e+00f, 1.138788581e+00f,
    1.189207077e+00f, 1.241857767e+00f, 1.296839595e+00f, 1.354255557e+00f,
    1.414213538e+00f, 1.476826191e+00f, 1.542210817e+00f, 1.610490322e+00f,
    1.681792855e+00f, 1.756252170e+00f, 1.834008098e+00f, 1.915206552e+00f};

// exp(a + lo) for float where Simd has lookup16, a in [-104, 89] (or NaN), |lo| <= 2^-7 (0 if
// absent): a = (k/16) ln2 + r with |r| <= ln2/32, so exp = 2^floor(k/16) t (1 + q), t = 2^((k mod
// 16)/16) from the table and q = expm1(r + lo) = r + r^2 (c2 + c3 r), fitted for the relative
// error of 1 + q (2^-29 over |r| <= 1.01 ln2/32). Adding 1.5 * 2^19 (ulp 1/16) rounds a / ln2 to
// k/16 and leaves k mod 16 in the low significand bits: the lookup index. A shorter polynomial
// than exp_poly's degree 6 and so a shorter dependency chain, which is what bounds these kernels
// on cores that run AVX-512 on 256-bit halves (sigmoid 1M: 4.9 vs 5.9 ns per register, a
// standalone loop). a - (k/16) ln2_hi is exact (one fma; ln2_hi has 16 bits, a multiple of
// 2^-20 below 2^-5 in magnitude). One more rounding than exp_poly's (t): max 0.99 ulp
// over every float (0.89 before).
// k may come from any (ak, c) with ak c = a / ln2 as rounded (see exp_neg2). kWithLo = false
// drops lo and its add (r + 0 would only turn a -0 into +0, which changes no result).
template <typename T, bool kWithLo>
inline typename Simd<T>::Reg exp_table16_core(typename Simd<T>::Reg a, typename Simd<T>::Reg ak,
                                              typename Simd<T>::Reg c,
                                              typename Simd<T>::Reg lo = Simd<T>::zero()) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  const auto magic = S::set1(786432.0f);  // 1.5 * 2^19
  const auto kf = S::fmadd(ak, c, magic);
  const auto y = S::sub(kf, magic);  // k / 16
  auto r = S::fnmadd(y, S::set1(C::ln2_hi), a);
  if constexpr (kWithLo) r = S::add(r, lo);
  r = S::fnmadd(y, S::set1(C::ln2_lo), r);
  const auto t = S::lookup16(kExp2Sixteenths, kf);
  const auto p = S::fmadd(S::set1(1.66667193e-01f), r, S::set1(5.00016510e-01f));
  const auto q = S::fmadd(p, S::mul(r, r), r);
  return S::ldexp(S::fmadd(t, q, t), y);  // scalef: 2^floor(y)
}

// Whether exp<T> uses exp_table16.
template <typename T>
constexpr bool kExpTable16 = sizeof(T) == 4 && HasLookup16<T>::value;

// exp(x + lo) for x in [ExpConst::lo, ExpConst::hi] (clamped by the caller) or NaN, lo a low part
// of the argument read only when kWithLo (as in exp_table16_core): the one exp below every clamp
// variant.
template <typename T, bool kWithLo = false>
inline typename Simd<T>::Reg exp_unclamped(typename Simd<T>::Reg x,
                                           typename Simd<T>::Reg lo = Simd<T>::zero()) {
  using S = Simd<T>;
  if constexpr (kExpTable16<T>) {
    return exp_table16_core<T, kWithLo>(x, x, S::set1(T(kLog2e)), lo);
  } else {
    typename S::Reg n;
    const auto r = reduce_ln2<T, kWithLo>(x, &n, lo);
    return S::ldexp(exp_poly<T>(r), n);
  }
}

// exp(x).
template <typename T>
inline typename Simd<T>::Reg exp(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  x = S::min(S::set1(C::hi), S::max(S::set1(C::lo), x));
  return exp_unclamped<T>(x);
}

// exp(x) for x <= 0 (or NaN): no overflow clamp.
template <typename T>
inline typename Simd<T>::Reg exp_nonpositive(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  x = S::max(S::set1(ExpConst<T>::lo), x);  // NaN stays
  return exp_unclamped<T>(x);
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

// -expm1(-2a) = 1 - exp(-2a) for a >= 0 (or NaN), cheaper than expm1: with x = -2a = n ln2 + r,
// n <= 0, so (1 - 2^n) - 2^n em needs one power of two, normal once x is clamped at clamp_lo
// (where expm1 is -1 in T anyway). n comes from a and -2/ln2 (exactly 2 (1/ln2) rounded, so the
// same n as from x), and the reduction runs on a: u = a + n ln2/2 = r / -2 (ln2_hi/2 and
// ln2_lo/2 exact halves, so u is exactly r / -2 as rounded), expm1_poly<T, -2> gives em / -2
// and (1 - 2^n) + 2^(n+1) (em / -2) is the same sum: no multiply by -2 at all.
template <typename T>
inline typename Simd<T>::Reg neg_expm1_neg2(typename Simd<T>::Reg a) {
  using S = Simd<T>;
  constexpr T clamp_lo = sizeof(T) == 4 ? T(-87) : T(-708);
  a = S::min(S::set1(clamp_lo / T(-2)), a);  // NaN stays (second operand)
  const auto magic = S::set1(ExpConst<T>::round_magic);
  const auto n = S::sub(S::fmadd(a, S::set1(T(-2) * T(kLog2e)), magic), magic);
  auto u = S::fmadd(n, S::set1(ExpConst<T>::ln2_hi / T(2)), a);
  u = S::fmadd(n, S::set1(ExpConst<T>::ln2_lo / T(2)), u);
  const auto em = expm1_poly<T, -2>(u);
#if defined(NNFAST_SIMD_AVX512)
  // 2^(n+1) in one scalef; 1 - 2^n from it in one fma.
  const auto p2x2 = S::ldexp(S::set1(T(2)), n);
  const auto one_minus = S::fnmadd(p2x2, S::set1(T(0.5)), S::set1(T(1)));
#else
  const auto p2 = S::pow2i(n);  // ldexp is several ops here
  const auto p2x2 = S::add(p2, p2);
  const auto one_minus = S::sub(S::set1(T(1)), p2);
#endif
  return S::fmadd(p2x2, em, one_minus);
}

// exp(-2a) for a >= 0 (or NaN). With exp_table16, k/16 comes from a and -2/ln2 (exactly 2 (1/ln2)
// rounded: the same k as from -2a), which keeps the doubling off the dependency chain.
template <typename T>
inline typename Simd<T>::Reg exp_neg2(typename Simd<T>::Reg a) {
  using S = Simd<T>;
  if constexpr (kExpTable16<T>) {
    a = S::min(S::set1(ExpConst<T>::lo / T(-2)), a);  // NaN stays (second operand)
    return exp_table16_core<T, false>(S::mul(S::set1(T(-2)), a), a, S::set1(T(-2) * T(kLog2e)));
  } else {
    return exp<T>(S::mul(S::set1(T(-2)), a));
  }
}

// 1 / (1 + exp(-z)) = 1 / (1 + e) or e / (1 + e) with e = exp(-|z|): no overflow, and full
// relative accuracy in the tail where the result is e (1 - e + ...). One division of the
// selected numerator (not a reciprocal times e): one rounding fewer, one multiply fewer.
// NOTE: a division, not rcp14 plus a Newton step: on cores running AVX-512 on 256-bit halves the
// divider works beside the busy FMA pipes, and the step's three FMA-pipe ops measured slower
// (4.9 vs 5.3 ns per register, standalone loop, AVX-512).
template <typename T>
inline typename Simd<T>::Reg sigmoid(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp_nonpositive<T>(S::neg(S::abs(z)));
  const auto one = S::set1(T(1));
  return S::div(S::select(S::cmp_lt(z, S::zero()), e, one), S::add(one, e));
}

// tanh(z) = sign(z) q / (2 - q) with q = -expm1(-2|z|) in [0, 1]: never overflows, and keeps
// full relative accuracy near 0 (tanh(1e-8) = 1e-8). -0 keeps its sign.
template <typename T>
inline typename Simd<T>::Reg tanh(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto q = neg_expm1_neg2<T>(S::abs(z));
  const auto t = S::div(q, S::sub(S::set1(T(2)), q));
  return S::copysign(t, z);
}

// sigmoid'(z) = s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): accurate in both tails, where
// s (1 - s) from a rounded s would give 0. (1 + e)^2 as 1 + e (2 + e): one rounding of the sum
// instead of squaring a rounded 1 + e.
template <typename T>
inline typename Simd<T>::Reg sigmoid_derivative(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp_nonpositive<T>(S::neg(S::abs(z)));
  return S::div(e, S::fmadd(e, S::add(S::set1(T(2)), e), S::set1(T(1))));
}

// tanh'(z) = 1 - tanh(z)^2 = 1 / cosh(z)^2 = 4 e / (1 + e)^2 with e = exp(-2|z|).
template <typename T>
inline typename Simd<T>::Reg tanh_derivative(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto e = exp_neg2<T>(S::abs(z));
  const auto d2 = S::fmadd(e, S::add(S::set1(T(2)), e), S::set1(T(1)));
  return S::div(S::mul(S::set1(T(4)), e), d2);
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

// GELU in float32, x Phi(x) with Phi(x) = erfc(-x / sqrt2) / 2 (torch's exact erf form). With
// z = |x| / sqrt2 and t = 1 / (1 + z/2) (the variable of Numerical Recipes' erfcc),
//   erfc(z) = t exp(-z^2) R(t),   R(t) = erfc(z) exp(z^2) / t in [0.33, 1] for t in (0.14, 1],
// R a degree-8 polynomial in t - 0.57 fitted for relative error over t in [0.14, 1] (z from 0 to
// 12.3; coefficients rounded to float one at a time, each refitting the rest: 8e-8), and Phi =
// t exp(-z^2) R / 2 for x < 0, 1 - that for x >= 0. exp(-z^2) = exp(-x^2 / 2) is taken of x^2 kept
// exact as x2 + lo (an fma): a rounded x^2 would cost x^2 2^-25 of relative error (80 ulps at
// x = -13). The same exp is the density gelu' needs. Measured against float64:
// benchmarks/activations_accuracy.py.
struct GeluConst {
  // R / 2's coefficients (the fit's, halved: exact).
  static constexpr float mills_fit[9] = {
      0.28083857893943787f,  0.38365381956100464f,  0.2920869290828705f, 0.046631067991256714f,
      -0.10021672397851944f, -0.02957906201481819f, 0.05550703406333923f, 0.007680266164243221f,
      -0.029798191040754318f};
  static constexpr float mills_center = 0.57f;
  // |x| clamp: beyond, Phi rounds to 0 or 1 and the density to 0 (exp's argument is clamped to
  // ExpConst<float>::lo = -104, where exp rounds to 0).
  static constexpr float x_max = 16.0f;
  static constexpr float half_sqrt1_2 = 0.35355339059327373f;  // 1 / (2 sqrt2)
  static constexpr float inv_sqrt_2pi = 0.3989422804014327f;
};

// x2 - x * x exactly, x2 = x * x rounded: one fma, or Dekker's product where fmadd is a multiply
// and an add (SSE2, scalar). |x| <= 16 here, far from overflow.
inline Simd<float>::Reg square_error(Simd<float>::Reg x, Simd<float>::Reg x2) {
  using S = Simd<float>;
#if defined(NNFAST_SIMD_AVX512) || defined(NNFAST_SIMD_AVX2)
  return S::fnmadd(x, x, x2);
#else
  const auto c = S::mul(S::set1(4097.0f), x);  // Veltkamp: x = xh + xl, 12 bits each
  const auto xh = S::sub(c, S::sub(c, x));
  const auto xl = S::sub(x, xh);
  const auto hh = S::sub(x2, S::mul(xh, xh));
  const auto hl = S::mul(S::add(xh, xh), xl);
  return S::sub(S::sub(hh, hl), S::mul(xl, xl));
#endif
}

// The parts of Phi(x) for x clamped to [-x_max, x_max] (NaN stays): xc, ht = t R / 2 and
// e = exp(-xc^2 / 2), so Phi = ht e for x < 0 and 1 - ht e for x >= 0, and the density is
// e / sqrt(2 pi).
struct GeluParts {
  Simd<float>::Reg xc, ht, e;
};

inline GeluParts gelu_parts(Simd<float>::Reg x) {
  using S = Simd<float>;
  using C = GeluConst;
  x = S::max(S::set1(-C::x_max), S::min(S::set1(C::x_max), x));
  const auto x2 = S::mul(x, x);
  // -x^2 / 2 = a + lo exactly (halving is exact).
  const auto a = S::mul(S::set1(-0.5f), x2);
  const auto lo = S::mul(S::set1(0.5f), square_error(x, x2));
  const auto e = exp_unclamped<float, true>(S::max(S::set1(ExpConst<float>::lo), a), lo);
  const auto den = S::fmadd(S::abs(x), S::set1(C::half_sqrt1_2), S::set1(1.0f));
  const auto t = S::div(S::set1(1.0f), den);
  const auto u = S::sub(t, S::set1(C::mills_center));
  const auto u2 = S::mul(u, u);
  const auto u4 = S::mul(u2, u2);
  auto pair = [&](int k) {
    return S::fmadd(S::set1(C::mills_fit[k + 1]), u, S::set1(C::mills_fit[k]));
  };
  const auto r03 = S::fmadd(pair(2), u2, pair(0));
  const auto r47 = S::fmadd(pair(6), u2, pair(4));
  const auto r = S::fmadd(S::fmadd(S::set1(C::mills_fit[8]), u4, r47), u4, r03);
  return {x, S::mul(t, r), e};
}

// gelu(x) = x Phi(x) as w = xc (t R / 2) e = xc erfc(z) / 2 for x <= 0 and x - w for x > 0: the
// product with xc comes before e joins it (t R e / 2 alone is subnormal below x = -12.5 where
// x Phi(x) is not). gelu(inf) = inf, gelu(-inf) = -0 (the limit; torch's float64 gives NaN).
inline Simd<float>::Reg gelu(Simd<float>::Reg x) {
  using S = Simd<float>;
  const GeluParts p = gelu_parts(x);
  const auto w = S::mul(S::mul(p.xc, p.ht), p.e);
  return S::select(S::cmp_gt(x, S::zero()), S::sub(x, w), w);  // w keeps -0's sign
}

// gelu'(x) = Phi(x) + x exp(-x^2 / 2) / sqrt(2 pi) (x clamped: 1 at inf, 0 at -inf).
inline Simd<float>::Reg gelu_derivative(Simd<float>::Reg x) {
  using S = Simd<float>;
  const GeluParts p = gelu_parts(x);
  const auto h = S::mul(p.ht, p.e);
  const auto phi = S::select(S::cmp_gt(x, S::zero()), S::sub(S::set1(1.0f), h), h);
  return S::fmadd(S::mul(p.xc, S::set1(GeluConst::inv_sqrt_2pi)), p.e, phi);
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

// log(x) in double (fdlibm's method: x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)),
// s = f / (2 + f), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), R minimax; < 1 ulp there).
// x < 0 or NaN give NaN, +inf gives inf; 0 and subnormal x give -inf (callers clamp far above).
inline Simd<double>::Reg log(Simd<double>::Reg x) {
  using S = Simd<double>;
  auto k = S::getexp(x);
  auto m = S::getmant(x);  // [1, 2)
  const auto big = S::cmp_gt(m, S::set1(1.4142135623730951));
  m = S::select(big, S::mul(m, S::set1(0.5)), m);
  k = S::select(big, S::add(k, S::set1(1.0)), k);
  const auto f = S::sub(m, S::set1(1.0));
  const auto s = S::div(f, S::add(S::set1(2.0), f));
  const auto z = S::mul(s, s);
  auto r = S::set1(1.479819860511658591e-01);
  r = S::fmadd(r, z, S::set1(1.531383769920937332e-01));
  r = S::fmadd(r, z, S::set1(1.818357216161805012e-01));
  r = S::fmadd(r, z, S::set1(2.222219843214978396e-01));
  r = S::fmadd(r, z, S::set1(2.857142874366239149e-01));
  r = S::fmadd(r, z, S::set1(3.999999999940941908e-01));
  r = S::fmadd(r, z, S::set1(6.666666666666735130e-01));
  r = S::mul(r, z);
  const auto hfsq = S::mul(S::set1(0.5), S::mul(f, f));
  // k ln2_hi + (f - (hfsq - (s (hfsq + R) + k ln2_lo)))
  const auto lo = S::fmadd(k, S::set1(1.90821492927058770002e-10), S::mul(s, S::add(hfsq, r)));
  auto y = S::fmadd(k, S::set1(6.93147180369123816490e-01), S::sub(f, S::sub(hfsq, lo)));
  const double inf = std::numeric_limits<double>::infinity();
  y = S::select(S::cmp_lt(x, S::set1(std::numeric_limits<double>::min())), S::set1(-inf), y);
  y = S::select(S::cmp_gt(x, S::set1(std::numeric_limits<double>::max())), S::set1(inf), y);
  y = S::select(S::cmp_lt(x, S::zero()), S::set1(std::numeric_limits<double>::quiet_NaN()), y);
  return S::select(S::is_nan(x), x, y);
}

// log(1 + x) in double without losing x when |x| is tiny: u = 1 + x rounded, corrected by the
// rounding error of u (log(1 + x) = log(u) + ((1 + x) - u) / u to first order).
inline Simd<double>::Reg log1p(Simd<double>::Reg x) {
  using S = Simd<double>;
  const auto one = S::set1(1.0);
  const auto u = S::add(one, x);
  const auto c = S::sub(S::sub(u, one), x);  // u - (1 + x)
  const auto corr = S::div(c, u);
  // For u = 0 or inf (x = -1, huge x), the correction would be NaN: log(u) alone is right.
  const auto ok = S::cmp_lt(S::abs(corr), S::set1(1.0));
  return S::select(ok, S::sub(log(u), corr), log(u));
}

// Max of x[0..len), -inf when empty. NOTE: max skips a NaN (x86 max returns its second operand),
// but exp(NaN - s) reaches the sum in row_softmax_exp, so a row holding NaN becomes all NaN. Four
// accumulators: one max chain would cost its latency (4 cycles) per register.
template <typename T>
inline T row_max(const T* x, int64_t len) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  const T ninf = -std::numeric_limits<T>::infinity();
  // NOTE: returning early for len = 0 keeps gcc 12 from folding max(-inf, -inf) into a false
  // -Wuninitialized in _mm512_max_ps (GCC PR 105593).
  if (len <= 0) return ninf;
  auto m0 = S::set1(ninf), m1 = m0, m2 = m0, m3 = m0;
  int64_t j = 0;
  for (; j + 4 * W <= len; j += 4 * W) {
    m0 = S::max(S::loadu(x + j), m0);
    m1 = S::max(S::loadu(x + j + W), m1);
    m2 = S::max(S::loadu(x + j + 2 * W), m2);
    m3 = S::max(S::loadu(x + j + 3 * W), m3);
  }
  for (; j + W <= len; j += W) m0 = S::max(S::loadu(x + j), m0);
  if (j < len) m1 = S::max(S::load_partial_or(x + j, len - j, ninf), m1);
  return S::reduce_max(S::max(S::max(m0, m1), S::max(m2, m3)));
}

// The row a row kernel works on next, prefetched into L1 while the compute-bound exp pass runs on
// this one (so the next row's first pass, a max, does not wait on L2/L3). For a thread working on
// rows [r, r1) of (rows, len) arrays x and y: row r + 1 of x, also past r1 unless x is y (a row
// past r1 may be another thread's to write); nullptr if none. A hint only: results never depend
// on it.
template <typename T>
inline const T* next_row(const T* x, const T* y, int64_t r, int64_t r1, int64_t rows, int64_t len) {
  const int64_t n = r + 1;
  return n < r1 || (n < rows && x != y) ? x + n * len : nullptr;
}

// y[j] = f(x[j]) for j < len (lanes past the end read as -inf, and f(-inf) must be 0); returns
// the sum of the y[j]: plain sums over blocks of 16 registers, blocks added with compensation (as
// accurate as a compensated sum throughout, at a fraction of its cost: its add chain is long),
// then the lanes in a fixed order. y may equal x. next (if set) is a row of at least len elements
// to prefetch, see next_row.
template <typename T, typename F>
inline T row_map_sum(const T* x, T* y, int64_t len, F f, const T* next = nullptr) {
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  constexpr int64_t kLine = 64;
  if (len <= 0) return T(0);  // NOTE: also keeps gcc 12 from a false warning, see row_max
  // Without a next row, this row's own lines (already in L1: a cheap no-op) keep the loop free
  // of branches.
  const char* pf = reinterpret_cast<const char*>(next != nullptr ? next : x);
  const int64_t full = len - len % W;
  Kahan<T> total;
  int64_t j = 0;
  while (j + 2 * W <= full) {
    const int64_t block_end = std::min(full, j + 16 * W);
    auto s0 = S::zero(), s1 = S::zero();
    for (; j + 2 * W <= block_end; j += 2 * W) {
      // Every line of the next row: one per iteration at least (narrow registers cover a line
      // over several iterations).
      for (int64_t b = 0; b < std::max<int64_t>(1, 2 * W * sizeof(T)); b += kLine) {
        prefetch_read(pf + j * static_cast<int64_t>(sizeof(T)) + b);
      }
      const auto e0 = f(S::loadu(x + j));
      const auto e1 = f(S::loadu(x + j + W));
      S::storeu(y + j, e0);
      S::storeu(y + j + W, e1);
      s0 = S::add(s0, e0);
      s1 = S::add(s1, e1);
    }
    total.add(S::add(s0, s1));
  }
  auto s = S::zero();
  if (j < full) {
    s = f(S::loadu(x + j));
    S::storeu(y + j, s);
  }
  if (full < len) {
    const auto e = f(S::load_partial_or(x + full, len - full, -std::numeric_limits<T>::infinity()));
    S::store_partial(y + full, e, len - full);
    s = S::add(s, e);
  }
  total.add(s);
  return S::reduce_add(S::sub(total.s, total.c));
}

// Constants of softmax's split exponential (exp_split): the shift m has |m| <= max_shift, and
// x + split rounds x (>= m + lo) to a multiple of 2^-9 or coarser: x + split stays in
// [2^(p-10), 2^(p-7)) for p significand bits.
template <typename T>
struct SplitExpConst;
template <>
struct SplitExpConst<float> {
  static constexpr float split = 49152.0f;  // 1.5 * 2^15
  static constexpr float max_shift = 16384.0f;
  static constexpr float lo = -104.0f;  // exp(lo) rounds to 0, as does exp of anything below
};
template <>
struct SplitExpConst<double> {
  static constexpr double split = 26388279066624.0;  // 1.5 * 2^44
  static constexpr double max_shift = 16384.0;
  static constexpr double lo = -746.0;
};

// The shift m of exp_split as mh + ml: mh = (m + split) - split, ml = m - mh (both exact).
template <typename T>
struct SplitShift {
  using S = Simd<T>;
  typename S::Reg t, k, ml;  // t = mh + lo (the clamp), k = split + mh, ml
  explicit SplitShift(T m) {
    const auto split = S::set1(SplitExpConst<T>::split);
    const auto vm = S::set1(m);
    const auto mh = S::sub(S::add(vm, split), split);
    t = S::add(mh, S::set1(SplitExpConst<T>::lo));
    k = S::add(split, mh);
    ml = S::sub(vm, mh);
  }
};

// exp(x - m) for x <= m (or NaN) without rounding x - m: x (clamped at mh + lo) = xh + xl with
// xh = (x + split) - split a multiple of 2^-9, so a = xh - mh = (x + split) - k is exact, and so
// is a - n ln2_hi (ln2_hi has 16 significant bits in float, 32 in double: n ln2_hi is exact and
// the difference a short multiple of 2^-16, or 2^-33); xl - ml (|.| <= 2^-7) joins at r's
// precision. For x = m, a = 0 and xl = ml: exactly 1. No overflow branch: n <= 0.
template <typename T>
inline typename Simd<T>::Reg exp_split(typename Simd<T>::Reg x, const SplitShift<T>& sh) {
  using S = Simd<T>;
  const auto split = S::set1(SplitExpConst<T>::split);
  const auto xc = S::max(sh.t, x);  // a NaN x stays (second operand)
  const auto hi = S::add(xc, split);
  const auto a = S::sub(hi, sh.k);
  const auto lo = S::sub(S::sub(xc, S::sub(hi, split)), sh.ml);
  // (exp_table16's reduction by (k/16) ln2_hi is exact here too: a multiple of 2^-20.)
  return exp_unclamped<T, true>(a, lo);
}

// exp(x) for x <= 88 (float) or 709 (double), or NaN: exp without its overflow clamp (x clamped
// below at lo, where exp rounds to 0).
template <typename T>
inline typename Simd<T>::Reg exp_bounded(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  x = S::max(S::set1(SplitExpConst<T>::lo), x);  // a NaN x stays (second operand)
  return exp_unclamped<T>(x);
}

// Lane 0 of v.
template <typename T>
inline T first_lane(typename Simd<T>::Reg v) {
  alignas(64) T lanes[Simd<T>::width];
  Simd<T>::storeu(lanes, v);
  return lanes[0];
}

// Softmax's exponentials of a row: y[j] = exp(x[j] - s) for j < len, returns their sum; y may
// equal x. Optionally writes the row's max m and e_m = exp(m - s) exactly as y holds it for an
// element equal to m. Any s with m - s in [0, g] gives the same softmax, never overflows
// (len exp(g) < T's max) and keeps every element the result holds as a normal number normal in
// y: so when m is in [0, g], s = 0 and x - s is exact (exp_bounded, the cheapest). Other rows:
// s = m with exp_split (x - m exact too), or exp_diff when m is infinite or huge (or the row all
// -inf). With s = m, e_m = 1; with s = 0, a row whose sum is e_m alone (one element, or the others
// below its rounding) is rescaled to e_m = 1, so such a row's softmax is exactly one-hot. next: the
// row to prefetch meanwhile (see next_row).
template <typename T>
inline T row_softmax_exp(const T* x, T* y, int64_t len, T* max = nullptr, T* exp_max = nullptr,
                         const T* next = nullptr) {
  using S = Simd<T>;
  using C = SplitExpConst<T>;
  const T m = row_max(x, len);
  if (max != nullptr) *max = m;
  // g: len exp(g) < T's max with e to spare (ln(len) < bits(len) ln2 <= 44).
  int bits = 0;
  for (int64_t v = len; v > 0; v >>= 1) ++bits;
  const T g = (sizeof(T) == 4 ? T(87) : T(708)) - T(0.6931471805599453) * T(bits);
  if (m >= T(0) && m <= g) {
    auto f = [](typename S::Reg v) { return exp_bounded<T>(v); };
    T e_m = first_lane<T>(f(S::set1(m)));
    T sum = row_map_sum(x, y, len, f, next);
    if (sum == e_m) {
      // e_m is the whole sum: y = 1 there, y / e_m elsewhere (below 2^-24 of it).
      const auto ve = S::set1(e_m), inv = S::set1(T(1) / e_m), one = S::set1(T(1));
      auto fix = [&](typename S::Reg v) {
        return S::select(S::cmp_lt(v, ve), S::mul(v, inv), one);
      };
      constexpr int64_t W = S::width;
      int64_t j = 0;
      for (; j + W <= len; j += W) S::storeu(y + j, fix(S::loadu(y + j)));
      if (j < len) S::store_partial(y + j, fix(S::load_partial(y + j, len - j)), len - j);
      sum = e_m = T(1);
    }
    if (exp_max != nullptr) *exp_max = e_m;
    return sum;
  }
  if (!(m >= -C::max_shift && m <= C::max_shift)) {
    const auto vm = S::set1(m);
    auto f = [&](typename S::Reg v) { return exp_diff<T>(v, vm); };
    if (exp_max != nullptr) *exp_max = first_lane<T>(f(vm));
    return row_map_sum(x, y, len, f, next);
  }
  const SplitShift<T> sh(m);
  if (exp_max != nullptr) *exp_max = T(1);  // exp_split(m) is exactly 1
  auto f = [&](typename S::Reg v) { return exp_split<T>(v, sh); };
  return row_map_sum(x, y, len, f, next);
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
