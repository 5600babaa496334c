// Vector math used by the GEMM and dense epilogues (exp, sigmoid, tanh), per ISA.
//
// Included only by kernel sources compiled per ISA (after simd.h); everything is inline in the
// ISA namespace. exp/expm1 use Cody-Waite range reduction, a Taylor polynomial on |r| <= ln2/2
// and an exact scaling by 2^n; sigmoid and tanh measure <= 1.5 ulp relative error (tested).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gemm.h"
#include "kernels/simd.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace epi {

// x * 2^n for integer-valued n with 2^n a normal number.
#if defined(NNFAST_SIMD_AVX512)
inline __m512 scale_pow2(__m512 x, __m512 n) { return _mm512_scalef_ps(x, n); }
inline __m512d scale_pow2(__m512d x, __m512d n) { return _mm512_scalef_pd(x, n); }
#elif defined(NNFAST_SIMD_AVX2)
inline __m256 scale_pow2(__m256 x, __m256 n) {
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(x, _mm256_castsi256_ps(e));
}
inline __m256d scale_pow2(__m256d x, __m256d n) {
  const __m128i e32 = _mm_add_epi32(_mm256_cvtpd_epi32(n), _mm_set1_epi32(1023));
  const __m256i e = _mm256_slli_epi64(_mm256_cvtepu32_epi64(e32), 52);
  return _mm256_mul_pd(x, _mm256_castsi256_pd(e));
}
#elif defined(NNFAST_SIMD_SSE)
inline __m128 scale_pow2(__m128 x, __m128 n) {
  const __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
  return _mm_mul_ps(x, _mm_castsi128_ps(e));
}
inline __m128d scale_pow2(__m128d x, __m128d n) {
  // Biased exponents are positive, so zero-extending the two int32 lanes to int64 is exact.
  const __m128i e32 = _mm_add_epi32(_mm_cvtpd_epi32(n), _mm_set1_epi32(1023));
  const __m128i e = _mm_slli_epi64(_mm_unpacklo_epi32(e32, _mm_setzero_si128()), 52);
  return _mm_mul_pd(x, _mm_castsi128_pd(e));
}
#else
template <typename T>
inline T scale_pow2(T x, T n) {
  return std::ldexp(x, static_cast<int>(n));
}
#endif

template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
  static constexpr float lo = -87.0f, hi = 88.0f;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
  static constexpr int degree = 7;
};
template <>
struct ExpConst<double> {
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  static constexpr int degree = 13;
};

// Range reduction shared by exp and expm1: x = n ln2 + r with |r| <= ln2 / 2, x clamped to the
// range where 2^n is a normal number (NaN survives the clamp: max/min return their second
// operand when either is NaN). Returns r; n is written to *n_out.
template <typename T>
inline typename Simd<T>::Reg exp_reduce(typename Simd<T>::Reg x, typename Simd<T>::Reg* n_out) {
  using S = Simd<T>;
  using C = ExpConst<T>;
  x = S::min(S::set1(C::hi), S::max(S::set1(C::lo), x));
  const auto magic = S::set1(C::round_magic);
  const auto n = S::sub(S::add(S::mul(x, S::set1(T(1.4426950408889634))), magic), magic);
  auto r = S::fnmadd(n, S::set1(C::ln2_hi), x);
  r = S::fnmadd(n, S::set1(C::ln2_lo), r);
  *n_out = n;
  return r;
}

// (exp(r) - 1) / r - 1 = r/2! + r^2/3! + ... by Horner (Taylor coefficients at compile time).
template <typename T>
inline typename Simd<T>::Reg expm1_tail(typename Simd<T>::Reg r) {
  using S = Simd<T>;
  constexpr int d = ExpConst<T>::degree;
  T coef[d + 1];
  coef[0] = T(1);
  for (int i = 1; i <= d; ++i) coef[i] = coef[i - 1] / T(i);
  auto p = S::set1(coef[d]);
  for (int i = d - 1; i >= 2; --i) p = S::fmadd(p, r, S::set1(coef[i]));
  return S::mul(p, r);
}

// exp(x); NaN propagates, results saturate at the clamp range.
template <typename T>
inline typename Simd<T>::Reg exp(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  typename S::Reg n;
  const auto r = exp_reduce<T>(x, &n);
  // exp(r) = 1 + r + r * tail(r)
  const auto p = S::add(S::set1(T(1)), S::fmadd(r, expm1_tail<T>(r), r));
  return scale_pow2(p, n);
}

// exp(x) - 1 without cancellation near 0: 2^n (r + r tail(r)) + (2^n - 1).
template <typename T>
inline typename Simd<T>::Reg expm1(typename Simd<T>::Reg x) {
  using S = Simd<T>;
  typename S::Reg n;
  const auto r = exp_reduce<T>(x, &n);
  const auto em = S::fmadd(r, expm1_tail<T>(r), r);
  const auto one = S::set1(T(1));
  return S::add(scale_pow2(em, n), S::sub(scale_pow2(one, n), one));
}

// 1 / (1 + exp(-z)).
template <typename T>
inline typename Simd<T>::Reg sigmoid(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto one = S::set1(T(1));
  return S::div(one, S::add(one, exp<T>(S::sub(S::zero(), z))));
}

// tanh(z) = sign(z) * -m / (2 + m) with m = expm1(-2|z|): never overflows, and keeps full
// relative accuracy near 0.
template <typename T>
inline typename Simd<T>::Reg tanh(typename Simd<T>::Reg z) {
  using S = Simd<T>;
  const auto neg = S::sub(S::zero(), z);
  const auto az = S::max(neg, z);
  const auto m = expm1<T>(S::mul(S::set1(T(-2)), az));
  const auto t = S::div(S::sub(S::zero(), m), S::add(S::set1(T(2)), m));
  return S::select(S::cmp_lt(z, S::zero()), S::sub(S::zero(), t), t);
}

// The element-wise part of an activation (softmax is a row pass, done elsewhere).
template <GemmActivation Act, typename T>
inline typename Simd<T>::Reg activate(typename Simd<T>::Reg v) {
  using S = Simd<T>;
  if constexpr (Act == GemmActivation::relu) {
    return S::max(S::zero(), v);
  } else if constexpr (Act == GemmActivation::sigmoid) {
    return sigmoid<T>(v);
  } else if constexpr (Act == GemmActivation::tanh) {
    return tanh<T>(v);
  } else {
    return v;
  }
}

// Softmax of one row of n elements, in place; the sum is taken in a fixed order.
template <typename T>
inline void softmax_row(T* row, int64_t n) {
  using S = Simd<T>;
  constexpr int W = S::width;
  if (n <= 0) return;
  auto mx = S::set1(-INFINITY);
  int64_t j = 0;
  for (; j + W <= n; j += W) mx = S::max(S::loadu(row + j), mx);
  T m = S::reduce_max(mx);
  // NOTE: a NaN may be skipped here, but it still reaches the sum below and the row becomes NaN.
  for (; j < n; ++j) m = row[j] > m ? row[j] : m;
  const auto vm = S::set1(m);
  auto sum = S::zero();
  j = 0;
  for (; j + W <= n; j += W) {
    const auto e = exp<T>(S::sub(S::loadu(row + j), vm));
    S::storeu(row + j, e);
    sum = S::add(sum, e);
  }
  if (j < n) {
    const auto e = exp<T>(S::sub(S::load_partial(row + j, n - j), vm));
    S::store_partial(row + j, e, n - j);
    // Lanes past n hold exp(0 - m): mask them out of the sum.
    T buf[W] = {};
    S::storeu(buf, e);
    for (int64_t t = n - j; t < W; ++t) buf[t] = T(0);
    sum = S::add(sum, S::loadu(buf));
  }
  const auto inv = S::div(S::set1(T(1)), S::set1(S::reduce_add(sum)));
  j = 0;
  for (; j + W <= n; j += W) S::storeu(row + j, S::mul(S::loadu(row + j), inv));
  if (j < n) S::store_partial(row + j, S::mul(S::load_partial(row + j, n - j), inv), n - j);
}

}  // namespace epi
}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
