// Max pooling kernels; compiled once per ISA.
#include "kernels/pool.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <type_traits>

#include "kernels/simd.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Lane-wise OR of two comparison masks (integer masks on AVX-512, vector masks elsewhere).
template <typename M>
inline M mask_or(M a, M b) {
  return a | b;
}
#if defined(NNFAST_SIMD_AVX2)
inline __m256 mask_or(__m256 a, __m256 b) { return _mm256_or_ps(a, b); }
inline __m256d mask_or(__m256d a, __m256d b) { return _mm256_or_pd(a, b); }
#elif defined(NNFAST_SIMD_SSE)
inline __m128 mask_or(__m128 a, __m128 b) { return _mm_or_ps(a, b); }
inline __m128d mask_or(__m128d a, __m128d b) { return _mm_or_pd(a, b); }
#endif

// Splits 2W consecutive elements (lo = first W, hi = next W) into the even- and odd-numbered ones.
#if defined(NNFAST_SIMD_AVX512)
inline void deinterleave(__m512 lo, __m512 hi, __m512* even, __m512* odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  *even = _mm512_permutex2var_ps(lo, ie, hi);
  *odd = _mm512_permutex2var_ps(lo, io, hi);
}
inline void deinterleave(__m512d lo, __m512d hi, __m512d* even, __m512d* odd) {
  const __m512i ie = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i io = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  *even = _mm512_permutex2var_pd(lo, ie, hi);
  *odd = _mm512_permutex2var_pd(lo, io, hi);
}
#elif defined(NNFAST_SIMD_AVX2)
inline void deinterleave(__m256 lo, __m256 hi, __m256* even, __m256* odd) {
  // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs reordered to lo.., hi..
  const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline void deinterleave(__m256d lo, __m256d hi, __m256d* even, __m256d* odd) {
  *even = _mm256_permute4x64_pd(_mm256_unpacklo_pd(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
  *odd = _mm256_permute4x64_pd(_mm256_unpackhi_pd(lo, hi), _MM_SHUFFLE(3, 1, 2, 0));
}
#elif defined(NNFAST_SIMD_SSE)
inline void deinterleave(__m128 lo, __m128 hi, __m128* even, __m128* odd) {
  *even = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  *odd = _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}
inline void deinterleave(__m128d lo, __m128d hi, __m128d* even, __m128d* odd) {
  *even = _mm_unpacklo_pd(lo, hi);
  *odd = _mm_unpackhi_pd(lo, hi);
}
#else
template <typename T>
inline void deinterleave(T lo, T hi, T* even, T* odd) {
  *even = lo;
  *odd = hi;
}
#endif

// The scalar specification: one output element, window scanned row-major, "greater or NaN"
// replaces the running max.
template <typename T>
inline void pool_one(const T* plane, const Pool2dGeometry& g, int64_t oy, int64_t ox, T* y,
                     int64_t* idx) {
  const int64_t r0 = oy * g.sh, c0 = ox * g.sw;
  T m = plane[r0 * g.w + c0];
  int64_t at = r0 * g.w + c0;
  for (int64_t di = 0; di < g.ph; ++di) {
    const T* row = plane + (r0 + di) * g.w;
    for (int64_t dj = 0; dj < g.pw; ++dj) {
      const T v = row[c0 + dj];
      if (v > m || v != v) {
        m = v;
        at = (r0 + di) * g.w + c0 + dj;
      }
    }
  }
  *y = m;
  if (idx != nullptr) *idx = at;
}

// One output row of a plane, windows 2 wide with column stride 2 (the common 2x2/2 pooling, any
// height and row stride): W outputs per step from 2W consecutive inputs per window row,
// deinterleaved into the window's left and right columns; the same comparisons in the same order
// as pool_one, lane-wise.
template <typename T>
void pool_row_w2s2(const T* plane, const Pool2dGeometry& g, int64_t oy, T* yrow, int64_t* irow) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  const int64_t r0 = oy * g.sh;
  for (int64_t ox = 0; ox < g.wo; ox += W) {
    // A short last vector (or row) reads only its 2 * lanes inputs (2 * wo <= w).
    const int64_t lanes = std::min<int64_t>(W, g.wo - ox);
    const int64_t n_lo = std::min<int64_t>(W, 2 * lanes), n_hi = 2 * lanes - n_lo;
    const T* p = plane + r0 * g.w + 2 * ox;
    const auto load2 = [&](const T* at, Reg* even, Reg* odd) {
      if (lanes == W) {
        deinterleave(S::loadu(at), S::loadu(at + W), even, odd);
      } else {
        deinterleave(S::load_partial(at, n_lo), S::load_partial(at + W, n_hi), even, odd);
      }
    };
    Reg m, m1, k = S::zero();
    load2(p, &m, &m1);
    // Window position 1 (row 0, right column), then rows 1.. of the window.
    auto upd = mask_or(S::cmp_gt(m1, m), S::is_nan(m1));
    m = S::select(upd, m1, m);
    if (irow != nullptr) k = S::select(upd, S::set1(T(1)), k);
    for (int64_t di = 1; di < g.ph; ++di) {
      Reg e0, e1;
      p += g.w;
      load2(p, &e0, &e1);
      upd = mask_or(S::cmp_gt(e0, m), S::is_nan(e0));
      m = S::select(upd, e0, m);
      if (irow != nullptr) k = S::select(upd, S::set1(T(2 * di)), k);
      upd = mask_or(S::cmp_gt(e1, m), S::is_nan(e1));
      m = S::select(upd, e1, m);
      if (irow != nullptr) k = S::select(upd, S::set1(T(2 * di + 1)), k);
    }
    if (lanes == W) {
      S::storeu(yrow + ox, m);
    } else {
      S::store_partial(yrow + ox, m, lanes);
    }
    if (irow != nullptr) {
#if defined(NNFAST_SIMD_AVX512)
      // irow[ox + l] = (r0 + k / 2) * w + 2 * (ox + l) + k % 2, eight int64 lanes at a time.
      if constexpr (std::is_same_v<T, float>) {
        const __m512i k32 = _mm512_cvttps_epi32(k);
        const __m512i base = _mm512_set1_epi64(r0 * g.w + 2 * ox);
        const __m512i two_l = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i wv = _mm512_set1_epi64(g.w), one = _mm512_set1_epi64(1);
        for (int h = 0; h < 2 && 8 * h < lanes; ++h) {
          const __m512i kk = _mm512_cvtepi32_epi64(h == 0 ? _mm512_castsi512_si256(k32)
                                                          : _mm512_extracti64x4_epi64(k32, 1));
          __m512i v = _mm512_add_epi64(base, _mm512_add_epi64(two_l, _mm512_set1_epi64(16 * h)));
          v = _mm512_add_epi64(v, _mm512_mullo_epi64(_mm512_srli_epi64(kk, 1), wv));
          v = _mm512_add_epi64(v, _mm512_and_si512(kk, one));
          const int64_t n = std::min<int64_t>(8, lanes - 8 * h);
          _mm512_mask_storeu_epi64(irow + ox + 8 * h, static_cast<__mmask8>((1u << n) - 1u), v);
        }
        continue;
      }
#endif
      alignas(64) T kb[W];
      S::storeu(kb, k);
      for (int64_t l = 0; l < lanes; ++l) {
        const int64_t kk = static_cast<int64_t>(kb[l]);
        irow[ox + l] = (r0 + (kk >> 1)) * g.w + 2 * (ox + l) + (kk & 1);
      }
    }
  }
}

}  // namespace

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  if (g.planes == 0 || out_plane == 0) return;
  // Window positions are tracked as exact small floats in the vector path.
  const bool fast = g.pw == 2 && g.sw == 2 && g.ph <= 1024;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, in_plane));
  runtime::parallel_for(g.planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* plane = x + p * in_plane;
      T* yp = y + p * out_plane;
      int64_t* ip = indices != nullptr ? indices + p * out_plane : nullptr;
      for (int64_t oy = 0; oy < g.ho; ++oy) {
        T* yrow = yp + oy * g.wo;
        int64_t* irow = ip != nullptr ? ip + oy * g.wo : nullptr;
        if (fast) {
          pool_row_w2s2(plane, g, oy, yrow, irow);
        } else {
          for (int64_t ox = 0; ox < g.wo; ++ox) {
            pool_one(plane, g, oy, ox, yrow + ox, irow != nullptr ? irow + ox : nullptr);
          }
        }
      }
    }
  });
}

template <typename T>
int64_t max_pool2d_backward(const T* grad_y, const int64_t* indices, T* grad_x,
                            const Pool2dGeometry& g, bool check_window) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  std::fill(grad_x, grad_x + g.planes * in_plane, T(0));
  if (g.planes == 0 || out_plane == 0) return -1;
  // First invalid position per plane run; the smallest over all runs is reported.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, in_plane));
  const int64_t none = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> first_bad{none};
  runtime::parallel_for(g.planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t* ip = indices + p * out_plane;
      const T* gp = grad_y + p * out_plane;
      T* xp = grad_x + p * in_plane;
      for (int64_t oy = 0; oy < g.ho; ++oy) {
        for (int64_t ox = 0; ox < g.wo; ++ox) {
          const int64_t q = oy * g.wo + ox;
          const int64_t at = ip[q];
          bool ok = at >= 0 && at < in_plane;
          if (ok && check_window) {
            const int64_t r = at / g.w, c = at % g.w;
            ok = r >= oy * g.sh && r < oy * g.sh + g.ph && c >= ox * g.sw && c < ox * g.sw + g.pw;
          }
          if (!ok) {
            const int64_t pos = p * out_plane + q;
            int64_t cur = first_bad.load();
            while (pos < cur && !first_bad.compare_exchange_weak(cur, pos)) {
            }
            return;
          }
          xp[at] += gp[q];
        }
      }
    }
  });
  const int64_t bad = first_bad.load();
  return bad == none ? -1 : bad;
}

template void max_pool2d_forward<float>(const float*, float*, int64_t*, const Pool2dGeometry&);
template void max_pool2d_forward<double>(const double*, double*, int64_t*, const Pool2dGeometry&);
template int64_t max_pool2d_backward<float>(const float*, const int64_t*, float*,
                                            const Pool2dGeometry&, bool);
template int64_t max_pool2d_backward<double>(const double*, const int64_t*, double*,
                                             const Pool2dGeometry&, bool);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
