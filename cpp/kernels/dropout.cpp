// Dropout kernels (Philox4x32-10 masks, see dropout.h); compiled once per ISA.
#include "kernels/dropout.h"

#include <algorithm>
#include <cstring>

#include "kernels/simd.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// Lanes of 32-bit unsigned integers: the operations Philox needs. `Keep` is a lane mask of
// r >= t; keep_scale<T>(keep, part, scale) gives the T register (part of the lanes, for double)
// holding scale where kept and 0 elsewhere.
#if defined(NNFAST_SIMD_AVX512)
struct U32 {
  using V = __m512i;
  using Keep = __mmask16;
  static constexpr int lanes = 16;
  static V set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static V iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static V add(V a, V b) { return _mm512_add_epi32(a, b); }
  static V bxor(V a, V b) { return _mm512_xor_si512(a, b); }
  // High and low words of a * m per lane: even lanes from one 32x32->64 product, odd from another.
  static void mulhilo(V a, uint32_t m, V* hi, V* lo) {
    const V mv = set1(m);
    const V even = _mm512_mul_epu32(a, mv);
    const V odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), mv);
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  }
  static Keep ge(V a, uint32_t t) { return _mm512_cmpge_epu32_mask(a, set1(t)); }
};
inline __m512 keep_scale(U32::Keep k, int, float scale) {
  return _mm512_maskz_mov_ps(k, _mm512_set1_ps(scale));
}
inline __m512d keep_scale(U32::Keep k, int part, double scale) {
  return _mm512_maskz_mov_pd(static_cast<__mmask8>(k >> (8 * part)), _mm512_set1_pd(scale));
}
#elif defined(NNFAST_SIMD_AVX2)
struct U32 {
  using V = __m256i;
  using Keep = __m256i;
  static constexpr int lanes = 8;
  static V set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
  static V iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static V add(V a, V b) { return _mm256_add_epi32(a, b); }
  static V bxor(V a, V b) { return _mm256_xor_si256(a, b); }
  static void mulhilo(V a, uint32_t m, V* hi, V* lo) {
    const V mv = set1(m);
    const V even = _mm256_mul_epu32(a, mv);
    const V odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mv);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  }
  // Unsigned a >= t as all-ones lanes: max(a, t) == a.
  static Keep ge(V a, uint32_t t) { return _mm256_cmpeq_epi32(_mm256_max_epu32(a, set1(t)), a); }
};
inline __m256 keep_scale(U32::Keep k, int, float scale) {
  return _mm256_and_ps(_mm256_castsi256_ps(k), _mm256_set1_ps(scale));
}
inline __m256d keep_scale(U32::Keep k, int part, double scale) {
  const __m128i half = part == 0 ? _mm256_castsi256_si128(k) : _mm256_extracti128_si256(k, 1);
  return _mm256_and_pd(_mm256_castsi256_pd(_mm256_cvtepi32_epi64(half)), _mm256_set1_pd(scale));
}
#elif defined(NNFAST_SIMD_SSE)
// NOTE: SSE4.1 (x86-64-v2, the baseline's flags): _mm_max_epu32, _mm_blend_epi16, _mm_cvtepi32_epi64.
struct U32 {
  using V = __m128i;
  using Keep = __m128i;
  static constexpr int lanes = 4;
  static V set1(uint32_t v) { return _mm_set1_epi32(static_cast<int>(v)); }
  static V iota() { return _mm_setr_epi32(0, 1, 2, 3); }
  static V add(V a, V b) { return _mm_add_epi32(a, b); }
  static V bxor(V a, V b) { return _mm_xor_si128(a, b); }
  static void mulhilo(V a, uint32_t m, V* hi, V* lo) {
    const V mv = set1(m);
    const V even = _mm_mul_epu32(a, mv);
    const V odd = _mm_mul_epu32(_mm_srli_epi64(a, 32), mv);
    *hi = _mm_blend_epi16(_mm_srli_epi64(even, 32), odd, 0xCC);
    *lo = _mm_blend_epi16(even, _mm_slli_epi64(odd, 32), 0xCC);
  }
  static Keep ge(V a, uint32_t t) { return _mm_cmpeq_epi32(_mm_max_epu32(a, set1(t)), a); }
};
inline __m128 keep_scale(U32::Keep k, int, float scale) {
  return _mm_and_ps(_mm_castsi128_ps(k), _mm_set1_ps(scale));
}
inline __m128d keep_scale(U32::Keep k, int part, double scale) {
  const __m128i half = part == 0 ? k : _mm_srli_si128(k, 8);
  return _mm_and_pd(_mm_castsi128_pd(_mm_cvtepi32_epi64(half)), _mm_set1_pd(scale));
}
#else
// One lane: the executable specification.
struct U32 {
  using V = uint32_t;
  using Keep = bool;
  static constexpr int lanes = 1;
  static V set1(uint32_t v) { return v; }
  static V iota() { return 0; }
  static V add(V a, V b) { return a + b; }
  static V bxor(V a, V b) { return a ^ b; }
  static void mulhilo(V a, uint32_t m, V* hi, V* lo) {
    const uint64_t p = static_cast<uint64_t>(a) * m;
    *hi = static_cast<uint32_t>(p >> 32);
    *lo = static_cast<uint32_t>(p);
  }
  static Keep ge(V a, uint32_t t) { return a >= t; }
};
template <typename T>
inline T keep_scale(bool k, int, T scale) {
  return k ? scale : T(0);
}
#endif

// Philox4x32-10 on U32::lanes counters at once (c updated in place; the key is the same for all).
inline void philox4x32_10(U32::V c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    U32::V hi0, lo0, hi1, lo1;
    U32::mulhilo(c[0], kPhiloxM0, &hi0, &lo0);
    U32::mulhilo(c[2], kPhiloxM1, &hi1, &lo1);
    c[0] = U32::bxor(U32::bxor(hi1, c[1]), U32::set1(k0));
    c[1] = lo1;
    c[2] = U32::bxor(U32::bxor(hi0, c[3]), U32::set1(k1));
    c[3] = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

constexpr int64_t kBlock = 64;  // elements per block: 16 counters x 4 words

// One full block b: y[e] = x[e] * m[e] (x null: m[e]) for e in [64 b, 64 b + 64) of x and y
// (pointers to the block's first element).
template <typename T>
inline void dropout_block(const T* x, T* y, uint64_t b, uint64_t seed, uint32_t threshold,
                          T scale) {
  using S = Simd<T>;
  constexpr int L = U32::lanes, W = S::width, parts = L / W;
  static_assert(parts * W == L, "a dtype's register holds a whole number of mask lanes");
  const uint64_t c = 16 * b;  // the block's first counter; its low 4 bits are zero
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int s = 0; s < 16 / L; ++s) {
    U32::V ctr[4] = {U32::add(U32::set1(static_cast<uint32_t>(c) + static_cast<uint32_t>(s * L)),
                              U32::iota()),
                     U32::set1(static_cast<uint32_t>(c >> 32)), U32::set1(0), U32::set1(0)};
    philox4x32_10(ctr, k0, k1);
    for (int k = 0; k < 4; ++k) {
      const U32::Keep keep = U32::ge(ctr[k], threshold);
      for (int part = 0; part < parts; ++part) {
        const int64_t e = 16 * k + s * L + part * W;
        const auto m = keep_scale(keep, part, scale);
        S::storeu(y + e, x != nullptr ? S::mul(S::loadu(x + e), m) : m);
      }
    }
  }
}

}  // namespace

template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, T scale) {
  if (n <= 0) return;
  if (threshold == 0 && scale == T(1) && x != nullptr) {
    if (x != y) {
      runtime::parallel_for(n, int64_t(1) << 16, [&](int64_t begin, int64_t end) {
        std::memcpy(y + begin, x + begin, static_cast<size_t>(end - begin) * sizeof(T));
      });
    }
    return;
  }
  const int64_t full = n / kBlock, rest = n - full * kBlock;
  // About 8k elements per task: the hash, not memory, is the cost.
  runtime::parallel_for(full, (int64_t(1) << 13) / kBlock, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      dropout_block(x != nullptr ? x + b * kBlock : nullptr, y + b * kBlock,
                    static_cast<uint64_t>(b), seed, threshold, scale);
    }
  });
  if (rest > 0) {
    // The last, partial block through a buffer (the mask of an element never depends on n).
    alignas(64) T xb[kBlock] = {}, yb[kBlock];
    const int64_t at = full * kBlock;
    if (x != nullptr) std::memcpy(xb, x + at, static_cast<size_t>(rest) * sizeof(T));
    dropout_block(x != nullptr ? xb : nullptr, yb, static_cast<uint64_t>(full), seed, threshold,
                  scale);
    std::memcpy(y + at, yb, static_cast<size_t>(rest) * sizeof(T));
  }
}

template void dropout<float>(const float*, float*, int64_t, uint64_t, uint32_t, float);
template void dropout<double>(const double*, double*, int64_t, uint64_t, uint32_t, double);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
