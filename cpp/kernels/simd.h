// A thin SIMD layer over one ISA's registers, used by kernel sources compiled per ISA.
//
// Simd<T> has the register type Reg, its lane count `width`, and static operations. Which
// registers it wraps follows the compiler flags of the translation unit: AVX-512, AVX2+FMA, SSE4
// (x86-64-v2) or, elsewhere, one scalar lane (the executable specification of every kernel).
// Everything here lives in the ISA's own namespace so no inline function compiled for one ISA can
// be linked into code that runs on another.
//
// min/max follow x86 semantics on every path: max(a, b) returns b when either is NaN, so
// max(zero, x) propagates a NaN in x.
//
// Beyond arithmetic: abs/neg/copysign (sign-bit operations), pow2i(n) = 2^n and ldexp(x, n) =
// x * 2^n with one rounding for integer-valued float registers n (used by vmath.h's exp),
// load_partial_or (tail lanes filled with a value) and, on Simd<double>, load_from(float*), which
// widens floats so reductions can accumulate in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if !defined(NNFAST_FORCE_SCALAR) && \
    (defined(__AVX512F__) || defined(__AVX2__) || defined(__SSE2__) || defined(_M_X64))
#include <immintrin.h>
#endif

#ifndef NNFAST_ISA_NS
#error "simd.h is for kernel sources compiled per ISA (NNFAST_ISA_NS undefined)"
#endif

#if defined(NNFAST_FORCE_SCALAR)
#define NNFAST_SIMD_SCALAR 1
#elif defined(__AVX512F__)
#define NNFAST_SIMD_AVX512 1
#elif defined(__AVX2__) && (defined(__FMA__) || defined(_MSC_VER))
#define NNFAST_SIMD_AVX2 1
#elif defined(__SSE2__) || defined(_M_X64)
#define NNFAST_SIMD_SSE 1
#else
#define NNFAST_SIMD_SCALAR 1
#endif

namespace nnfast {
namespace NNFAST_ISA_NS {

template <typename T>
struct Simd;

// Loads n < width elements, zero-filling the rest, via a stack buffer (paths without masked
// memory operations).
template <typename S, typename T>
inline typename S::Reg load_partial_buffered(const T* p, int64_t n) {
  alignas(64) T buf[S::width] = {};
  std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(T));
  return S::loadu(buf);
}

template <typename S, typename T>
inline typename S::Reg load_partial_or_buffered(const T* p, int64_t n, T fill) {
  alignas(64) T buf[S::width];
  for (int i = 0; i < S::width; ++i) buf[i] = fill;
  std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(T));
  return S::loadu(buf);
}

template <typename S, typename T>
inline void store_partial_buffered(T* p, typename S::Reg v, int64_t n) {
  alignas(64) T buf[S::width];
  S::storeu(buf, v);
  std::memcpy(p, buf, static_cast<size_t>(n) * sizeof(T));
}

#if defined(NNFAST_SIMD_AVX512)
template <>
struct Simd<float> {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int width = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float x) { return _mm512_set1_ps(x); }
  static Reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Mask first(int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
  static Reg load_partial(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store_partial(float* p, Reg v, int64_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg sqrt(Reg a) { return _mm512_sqrt_ps(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask is_nan(Reg a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm512_mask_blend_ps(m, b, a); }
  static Reg load_partial_or(const float* p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(set1(fill), first(n), p);
  }
  static Reg abs(Reg a) { return _mm512_abs_ps(a); }
  static Reg neg(Reg a) { return _mm512_xor_ps(a, set1(-0.0f)); }
  // One ternary-logic op: bitwise m ? sign : mag (0xB8 for operands mag, m, sign) with m the sign
  // bit. NOTE: mag first, as the operand the instruction overwrites: with the constant m there,
  // every call copied m to a fresh register first.
  static Reg copysign(Reg mag, Reg sign) {
    const __m512i m = _mm512_castps_si512(set1(-0.0f));
    return _mm512_castsi512_ps(
        _mm512_ternarylogic_epi32(_mm512_castps_si512(mag), m, _mm512_castps_si512(sign), 0xB8));
  }
  static Reg pow2i(Reg n) { return _mm512_scalef_ps(set1(1.0f), n); }
  static Reg ldexp(Reg x, Reg n) { return _mm512_scalef_ps(x, n); }
  // table[i & 15] per lane, i the low bits of each lane's bit pattern (one permute: a 16-entry
  // table fits one register). Only this path has it; vmath.h's exp uses it where it exists.
  static Reg lookup16(const float* table, Reg i) {
    return _mm512_permutexvar_ps(_mm512_castps_si512(i), _mm512_loadu_ps(table));
  }
  // NOTE: not _mm512_reduce_*: gcc 12's versions trip -Wmaybe-uninitialized.
  static float reduce_add(Reg a) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(Reg a) {
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Simd<double> {
  using Reg = __m512d;
  using Mask = __mmask8;
  static constexpr int width = 8;
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg set1(double x) { return _mm512_set1_pd(x); }
  static Reg loadu(const double* p) { return _mm512_loadu_pd(p); }
  static void storeu(double* p, Reg v) { _mm512_storeu_pd(p, v); }
  static Mask first(int64_t n) { return static_cast<Mask>((1u << n) - 1u); }
  static Reg load_partial(const double* p, int64_t n) { return _mm512_maskz_loadu_pd(first(n), p); }
  static void store_partial(double* p, Reg v, int64_t n) { _mm512_mask_storeu_pd(p, first(n), v); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_pd(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_pd(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_pd(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_pd(a, b, c); }
  static Reg max(Reg a, Reg b) { return _mm512_max_pd(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_pd(a, b); }
  static Reg sqrt(Reg a) { return _mm512_sqrt_pd(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static Mask is_nan(Reg a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm512_mask_blend_pd(m, b, a); }
  static Reg load_partial_or(const double* p, int64_t n, double fill) {
    return _mm512_mask_loadu_pd(set1(fill), first(n), p);
  }
  static Reg abs(Reg a) { return _mm512_abs_pd(a); }
  static Reg neg(Reg a) { return _mm512_xor_pd(a, set1(-0.0)); }
  // One ternary-logic op: bitwise m ? sign : mag (0xB8 for operands mag, m, sign) with m the sign
  // bit; mag first, as Simd<float>::copysign.
  static Reg copysign(Reg mag, Reg sign) {
    const __m512i m = _mm512_castpd_si512(set1(-0.0));
    return _mm512_castsi512_pd(
        _mm512_ternarylogic_epi64(_mm512_castpd_si512(mag), m, _mm512_castpd_si512(sign), 0xB8));
  }
  static Reg pow2i(Reg n) { return _mm512_scalef_pd(set1(1.0), n); }
  static Reg ldexp(Reg x, Reg n) { return _mm512_scalef_pd(x, n); }
  static Reg getexp(Reg x) { return _mm512_getexp_pd(x); }
  static Reg getmant(Reg x) { return _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero); }
  static Reg load_from(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static Reg load_from(const double* p) { return loadu(p); }
  static Reg load_from_partial(const float* p, int64_t n) {
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(first(n), p));
  }
  static Reg load_from_partial(const double* p, int64_t n) { return load_partial(p, n); }
  static double reduce_add(Reg a) {
    const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static double reduce_max(Reg a) {
    const __m256d h = _mm256_max_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    const __m128d s = _mm_max_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

#elif defined(NNFAST_SIMD_AVX2)
template <>
struct Simd<float> {
  using Reg = __m256;
  using Mask = __m256;
  static constexpr int width = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float x) { return _mm256_set1_ps(x); }
  static Reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg load_partial(const float* p, int64_t n) {
    return load_partial_buffered<Simd<float>>(p, n);
  }
  static void store_partial(float* p, Reg v, int64_t n) {
    store_partial_buffered<Simd<float>>(p, v, n);
  }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg sqrt(Reg a) { return _mm256_sqrt_ps(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask is_nan(Reg a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm256_blendv_ps(b, a, m); }
  static Reg load_partial_or(const float* p, int64_t n, float fill) {
    return load_partial_or_buffered<Simd<float>>(p, n, fill);
  }
  static Reg abs(Reg a) { return _mm256_andnot_ps(set1(-0.0f), a); }
  static Reg neg(Reg a) { return _mm256_xor_ps(a, set1(-0.0f)); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = set1(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sign));
  }
  // 2^n for integer-valued n with 2^n normal: n + magic puts n in the low mantissa bits, and the
  // shift moves (n + bias) into the exponent field (the magic's own bits shift out).
  static Reg pow2i(Reg n) {
    const Reg t = add(n, set1(float(12582912.0 + 127)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
  }
  // x * 2^n with one rounding (subnormal results included) for integer-valued n whose halves give
  // normal powers of two.
  static Reg ldexp(Reg x, Reg n) {
    const Reg magic = set1(float(12582912.0));
    const Reg h = sub(add(mul(n, set1(float(0.5))), magic), magic);
    return mul(mul(x, pow2i(h)), pow2i(sub(n, h)));
  }
  static float reduce_add(Reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(Reg a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Simd<double> {
  using Reg = __m256d;
  using Mask = __m256d;
  static constexpr int width = 4;
  static Reg zero() { return _mm256_setzero_pd(); }
  static Reg set1(double x) { return _mm256_set1_pd(x); }
  static Reg loadu(const double* p) { return _mm256_loadu_pd(p); }
  static void storeu(double* p, Reg v) { _mm256_storeu_pd(p, v); }
  static Reg load_partial(const double* p, int64_t n) {
    return load_partial_buffered<Simd<double>>(p, n);
  }
  static void store_partial(double* p, Reg v, int64_t n) {
    store_partial_buffered<Simd<double>>(p, v, n);
  }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_pd(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_pd(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_pd(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_pd(a, b, c); }
  static Reg max(Reg a, Reg b) { return _mm256_max_pd(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_pd(a, b); }
  static Reg sqrt(Reg a) { return _mm256_sqrt_pd(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static Mask is_nan(Reg a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg a, Reg b) { return _mm256_blendv_pd(b, a, m); }
  static Reg load_partial_or(const double* p, int64_t n, double fill) {
    return load_partial_or_buffered<Simd<double>>(p, n, fill);
  }
  static Reg abs(Reg a) { return _mm256_andnot_pd(set1(-0.0), a); }
  static Reg neg(Reg a) { return _mm256_xor_pd(a, set1(-0.0)); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = set1(-0.0);
    return _mm256_or_pd(_mm256_andnot_pd(m, mag), _mm256_and_pd(m, sign));
  }
  // 2^n for integer-valued n with 2^n normal: n + magic puts n in the low mantissa bits, and the
  // shift moves (n + bias) into the exponent field (the magic's own bits shift out).
  static Reg pow2i(Reg n) {
    const Reg t = add(n, set1(double(6755399441055744.0 + 1023)));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
  }
  // x * 2^n with one rounding (subnormal results included) for integer-valued n whose halves give
  // normal powers of two.
  static Reg ldexp(Reg x, Reg n) {
    const Reg magic = set1(double(6755399441055744.0));
    const Reg h = sub(add(mul(n, set1(double(0.5))), magic), magic);
    return mul(mul(x, pow2i(h)), pow2i(sub(n, h)));
  }
  static Reg load_from(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static Reg load_from(const double* p) { return loadu(p); }
  static Reg load_from_partial(const float* p, int64_t n) {
    alignas(16) float buf[4] = {};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
    return load_from(buf);
  }
  static Reg load_from_partial(const double* p, int64_t n) { return load_partial(p, n); }
  // floor(log2|x|) and |x| / 2^floor(log2|x|) in [1, 2) for normal x, from the exponent field.
  static Reg getexp(Reg x) {
    const auto e =
        _mm256_and_si256(_mm256_srli_epi64(_mm256_castpd_si256(x), 52), _mm256_set1_epi64x(0x7FF));
    const Reg d =
        _mm256_castsi256_pd(_mm256_or_si256(e, _mm256_set1_epi64x(0x4330000000000000LL)));
    return sub(d, set1(4503599627370496.0 + 1023.0));  // 2^52 + e - (2^52 + 1023)
  }
  static Reg getmant(Reg x) {
    const auto m =
        _mm256_and_si256(_mm256_castpd_si256(x), _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL));
    return _mm256_castsi256_pd(_mm256_or_si256(m, _mm256_set1_epi64x(0x3FF0000000000000LL)));
  }
  static double reduce_add(Reg a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static double reduce_max(Reg a) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

#elif defined(NNFAST_SIMD_SSE)
// NOTE: select uses and/andnot/or rather than SSE4.1 blendv so MSVC's default x64 target builds it.
template <>
struct Simd<float> {
  using Reg = __m128;
  using Mask = __m128;
  static constexpr int width = 4;
  static Reg zero() { return _mm_setzero_ps(); }
  static Reg set1(float x) { return _mm_set1_ps(x); }
  static Reg loadu(const float* p) { return _mm_loadu_ps(p); }
  static void storeu(float* p, Reg v) { _mm_storeu_ps(p, v); }
  static Reg load_partial(const float* p, int64_t n) {
    return load_partial_buffered<Simd<float>>(p, n);
  }
  static void store_partial(float* p, Reg v, int64_t n) {
    store_partial_buffered<Simd<float>>(p, v, n);
  }
  static Reg add(Reg a, Reg b) { return _mm_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm_sub_ps(c, _mm_mul_ps(a, b)); }
  static Reg max(Reg a, Reg b) { return _mm_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm_min_ps(a, b); }
  static Reg sqrt(Reg a) { return _mm_sqrt_ps(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm_cmpgt_ps(a, b); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm_cmplt_ps(a, b); }
  static Mask is_nan(Reg a) { return _mm_cmpunord_ps(a, a); }
  static Reg select(Mask m, Reg a, Reg b) {
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
  }
  static Reg load_partial_or(const float* p, int64_t n, float fill) {
    return load_partial_or_buffered<Simd<float>>(p, n, fill);
  }
  static Reg abs(Reg a) { return _mm_andnot_ps(set1(-0.0f), a); }
  static Reg neg(Reg a) { return _mm_xor_ps(a, set1(-0.0f)); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = set1(-0.0f);
    return _mm_or_ps(_mm_andnot_ps(m, mag), _mm_and_ps(m, sign));
  }
  // 2^n for integer-valued n with 2^n normal: n + magic puts n in the low mantissa bits, and the
  // shift moves (n + bias) into the exponent field (the magic's own bits shift out).
  static Reg pow2i(Reg n) {
    const Reg t = add(n, set1(float(12582912.0 + 127)));
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_castps_si128(t), 23));
  }
  // x * 2^n with one rounding (subnormal results included) for integer-valued n whose halves give
  // normal powers of two.
  static Reg ldexp(Reg x, Reg n) {
    const Reg magic = set1(float(12582912.0));
    const Reg h = sub(add(mul(n, set1(float(0.5))), magic), magic);
    return mul(mul(x, pow2i(h)), pow2i(sub(n, h)));
  }
  static float reduce_add(Reg a) {
    __m128 s = _mm_add_ps(a, _mm_movehl_ps(a, a));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(Reg a) {
    __m128 s = _mm_max_ps(a, _mm_movehl_ps(a, a));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

template <>
struct Simd<double> {
  using Reg = __m128d;
  using Mask = __m128d;
  static constexpr int width = 2;
  static Reg zero() { return _mm_setzero_pd(); }
  static Reg set1(double x) { return _mm_set1_pd(x); }
  static Reg loadu(const double* p) { return _mm_loadu_pd(p); }
  static void storeu(double* p, Reg v) { _mm_storeu_pd(p, v); }
  static Reg load_partial(const double* p, int64_t n) {
    return load_partial_buffered<Simd<double>>(p, n);
  }
  static void store_partial(double* p, Reg v, int64_t n) {
    store_partial_buffered<Simd<double>>(p, v, n);
  }
  static Reg add(Reg a, Reg b) { return _mm_add_pd(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm_sub_pd(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm_mul_pd(a, b); }
  static Reg div(Reg a, Reg b) { return _mm_div_pd(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm_add_pd(_mm_mul_pd(a, b), c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm_sub_pd(c, _mm_mul_pd(a, b)); }
  static Reg max(Reg a, Reg b) { return _mm_max_pd(a, b); }
  static Reg min(Reg a, Reg b) { return _mm_min_pd(a, b); }
  static Reg sqrt(Reg a) { return _mm_sqrt_pd(a); }
  static Mask cmp_gt(Reg a, Reg b) { return _mm_cmpgt_pd(a, b); }
  static Mask cmp_lt(Reg a, Reg b) { return _mm_cmplt_pd(a, b); }
  static Mask is_nan(Reg a) { return _mm_cmpunord_pd(a, a); }
  static Reg select(Mask m, Reg a, Reg b) {
    return _mm_or_pd(_mm_and_pd(m, a), _mm_andnot_pd(m, b));
  }
  static Reg load_partial_or(const double* p, int64_t n, double fill) {
    return load_partial_or_buffered<Simd<double>>(p, n, fill);
  }
  static Reg abs(Reg a) { return _mm_andnot_pd(set1(-0.0), a); }
  static Reg neg(Reg a) { return _mm_xor_pd(a, set1(-0.0)); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = set1(-0.0);
    return _mm_or_pd(_mm_andnot_pd(m, mag), _mm_and_pd(m, sign));
  }
  // 2^n for integer-valued n with 2^n normal: n + magic puts n in the low mantissa bits, and the
  // shift moves (n + bias) into the exponent field (the magic's own bits shift out).
  static Reg pow2i(Reg n) {
    const Reg t = add(n, set1(double(6755399441055744.0 + 1023)));
    return _mm_castsi128_pd(_mm_slli_epi64(_mm_castpd_si128(t), 52));
  }
  // x * 2^n with one rounding (subnormal results included) for integer-valued n whose halves give
  // normal powers of two.
  static Reg ldexp(Reg x, Reg n) {
    const Reg magic = set1(double(6755399441055744.0));
    const Reg h = sub(add(mul(n, set1(double(0.5))), magic), magic);
    return mul(mul(x, pow2i(h)), pow2i(sub(n, h)));
  }
  static Reg load_from(const float* p) {
    // NOTE: movq through __m128i is an unaligned-safe 8-byte load; _mm_load_sd on a float* is a
    // misaligned double load (undefined behaviour, caught by UBSan).
    return _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static Reg load_from(const double* p) { return loadu(p); }
  static Reg load_from_partial(const float* p, int64_t n) {
    alignas(16) float buf[2] = {};
    std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(float));
    return load_from(buf);
  }
  static Reg load_from_partial(const double* p, int64_t n) { return load_partial(p, n); }
  // floor(log2|x|) and |x| / 2^floor(log2|x|) in [1, 2) for normal x, from the exponent field.
  static Reg getexp(Reg x) {
    const auto e =
        _mm_and_si128(_mm_srli_epi64(_mm_castpd_si128(x), 52), _mm_set1_epi64x(0x7FF));
    const Reg d =
        _mm_castsi128_pd(_mm_or_si128(e, _mm_set1_epi64x(0x4330000000000000LL)));
    return sub(d, set1(4503599627370496.0 + 1023.0));  // 2^52 + e - (2^52 + 1023)
  }
  static Reg getmant(Reg x) {
    const auto m =
        _mm_and_si128(_mm_castpd_si128(x), _mm_set1_epi64x(0x000FFFFFFFFFFFFFLL));
    return _mm_castsi128_pd(_mm_or_si128(m, _mm_set1_epi64x(0x3FF0000000000000LL)));
  }
  static double reduce_add(Reg a) { return _mm_cvtsd_f64(_mm_add_sd(a, _mm_unpackhi_pd(a, a))); }
  static double reduce_max(Reg a) { return _mm_cvtsd_f64(_mm_max_sd(a, _mm_unpackhi_pd(a, a))); }
};

#else
// One scalar lane: the executable specification each SIMD path must match.
template <typename T>
struct Simd {
  using Reg = T;
  using Mask = bool;
  static constexpr int width = 1;
  static Reg zero() { return T(0); }
  static Reg set1(T x) { return x; }
  static Reg loadu(const T* p) { return *p; }
  static void storeu(T* p, Reg v) { *p = v; }
  static Reg load_partial(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
  static void store_partial(T* p, Reg v, int64_t n) {
    if (n > 0) *p = v;
  }
  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg sub(Reg a, Reg b) { return a - b; }
  static Reg mul(Reg a, Reg b) { return a * b; }
  static Reg div(Reg a, Reg b) { return a / b; }
  static Reg fmadd(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return c - a * b; }
  static Reg max(Reg a, Reg b) { return a > b ? a : b; }
  static Reg min(Reg a, Reg b) { return a < b ? a : b; }
  static Reg sqrt(Reg a) { return std::sqrt(a); }
  static Mask cmp_gt(Reg a, Reg b) { return a > b; }
  static Mask cmp_lt(Reg a, Reg b) { return a < b; }
  static Mask is_nan(Reg a) { return a != a; }
  static Reg select(Mask m, Reg a, Reg b) { return m ? a : b; }
  static Reg load_partial_or(const T* p, int64_t n, T fill) { return n > 0 ? *p : fill; }
  static Reg abs(Reg a) { return std::fabs(a); }
  static Reg neg(Reg a) { return -a; }
  static Reg copysign(Reg mag, Reg sign) { return std::copysign(mag, sign); }
  // NOTE: converting a NaN to int is undefined; NaN n propagates instead.
  static Reg pow2i(Reg n) { return n == n ? std::ldexp(T(1), static_cast<int>(n)) : n; }
  static Reg ldexp(Reg x, Reg n) { return n == n ? std::ldexp(x, static_cast<int>(n)) : x + n; }
  static Reg load_from(const float* p) { return static_cast<T>(*p); }
  static Reg load_from(const double* p) { return static_cast<T>(*p); }
  static Reg load_from_partial(const float* p, int64_t n) { return n > 0 ? T(*p) : T(0); }
  static Reg load_from_partial(const double* p, int64_t n) { return n > 0 ? T(*p) : T(0); }
  static Reg getexp(Reg x) {
    int e = 0;
    std::frexp(x, &e);
    return T(e - 1);
  }
  static Reg getmant(Reg x) {
    int e = 0;
    return std::fabs(std::frexp(x, &e)) * T(2);
  }
  static T reduce_add(Reg a) { return a; }
  static T reduce_max(Reg a) { return a; }
};
#endif

// Cache-line prefetch hint for reading (never faults; a no-op where the compiler has no builtin).
inline void prefetch_read(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
