// Max, average and global average pooling kernels; compiled once per ISA.
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


// Pairs (lo, hi) of registers holding q0 q0 q1 q1 ...: the inverse of deinterleave(v, v).
#if defined(NNFAST_SIMD_AVX512)
inline void duplicate_lanes(__m512 q, __m512* lo, __m512* hi) {
  const __m512i il = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i ih = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  *lo = _mm512_permutexvar_ps(il, q);
  *hi = _mm512_permutexvar_ps(ih, q);
}
inline void duplicate_lanes(__m512d q, __m512d* lo, __m512d* hi) {
  const __m512i il = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
  const __m512i ih = _mm512_setr_epi64(4, 4, 5, 5, 6, 6, 7, 7);
  *lo = _mm512_permutexvar_pd(il, q);
  *hi = _mm512_permutexvar_pd(ih, q);
}
#elif defined(NNFAST_SIMD_AVX2)
inline void duplicate_lanes(__m256 q, __m256* lo, __m256* hi) {
  const __m256 a = _mm256_unpacklo_ps(q, q), b = _mm256_unpackhi_ps(q, q);  // per 128-bit half
  *lo = _mm256_permute2f128_ps(a, b, 0x20);
  *hi = _mm256_permute2f128_ps(a, b, 0x31);
}
inline void duplicate_lanes(__m256d q, __m256d* lo, __m256d* hi) {
  const __m256d a = _mm256_unpacklo_pd(q, q), b = _mm256_unpackhi_pd(q, q);
  *lo = _mm256_permute2f128_pd(a, b, 0x20);
  *hi = _mm256_permute2f128_pd(a, b, 0x31);
}
#elif defined(NNFAST_SIMD_SSE)
inline void duplicate_lanes(__m128 q, __m128* lo, __m128* hi) {
  *lo = _mm_unpacklo_ps(q, q);
  *hi = _mm_unpackhi_ps(q, q);
}
inline void duplicate_lanes(__m128d q, __m128d* lo, __m128d* hi) {
  *lo = _mm_unpacklo_pd(q, q);
  *hi = _mm_unpackhi_pd(q, q);
}
#else
template <typename T>
inline void duplicate_lanes(T q, T* lo, T* hi) {
  *lo = q;
  *hi = q;
}
#endif

// Division by a window's element count n: a multiplication by 1/n where n is a power of two
// (the same bits: both round the exact quotient once), so the common 2x2 window never divides.
template <typename T>
struct CountDivider {
  T n, inv;
  bool pow2;
  explicit CountDivider(int64_t count)
      : n(static_cast<T>(count)), inv(T(1) / static_cast<T>(count)),
        pow2(count > 0 && (count & (count - 1)) == 0) {}
  T operator()(T s) const { return pow2 ? s * inv : s / n; }
  // A register (one lane on the scalar path, where Reg is T and the overload above serves).
  template <typename R, typename = std::enable_if_t<!std::is_same_v<R, T>>>
  R operator()(R s) const {
    return pow2 ? Simd<T>::mul(s, Simd<T>::set1(inv)) : Simd<T>::div(s, Simd<T>::set1(n));
  }
};

// The scalar specification of average pooling: the sum of window (oy, ox), row by row.
template <typename T>
inline T avg_window_sum(const T* plane, const Pool2dGeometry& g, int64_t oy, int64_t ox) {
  const T* p = plane + oy * g.sh * g.w + ox * g.sw;
  T s = T(0);
  for (int64_t di = 0; di < g.ph; ++di, p += g.w) {
    T r = p[0];
    for (int64_t dj = 1; dj < g.pw; ++dj) r += p[dj];
    s = di == 0 ? r : s + r;
  }
  return s;
}

// One output row of average pooling with windows 2 wide at column stride 2 (any height and row
// stride): each window row's 2W inputs deinterleaved and added pairwise, then the rows added, in
// avg_window_sum's order.
template <typename T>
void avg_row_w2s2(const T* plane, const Pool2dGeometry& g, int64_t oy, T* yrow,
                  const CountDivider<T>& div) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  for (int64_t ox = 0; ox < g.wo; ox += W) {
    const int64_t lanes = std::min<int64_t>(W, g.wo - ox);
    const int64_t n_lo = std::min<int64_t>(W, 2 * lanes), n_hi = 2 * lanes - n_lo;
    const T* p = plane + oy * g.sh * g.w + 2 * ox;
    Reg s = S::zero();
    for (int64_t di = 0; di < g.ph; ++di, p += g.w) {
      Reg e, o;
      if (lanes == W) {
        deinterleave(S::loadu(p), S::loadu(p + W), &e, &o);
      } else {
        deinterleave(S::load_partial(p, n_lo), S::load_partial(p + W, n_hi), &e, &o);
      }
      const Reg r = S::add(e, o);
      s = di == 0 ? r : S::add(s, r);
    }
    if (lanes == W) {
      S::storeu(yrow + ox, div(s));
    } else {
      S::store_partial(yrow + ox, div(s), lanes);
    }
  }
}

// One output row of average pooling at column stride 1 (any window): W windows at a time, each
// window element a contiguous load, in avg_window_sum's order.
template <typename T>
void avg_row_s1(const T* plane, const Pool2dGeometry& g, int64_t oy, T* yrow,
                const CountDivider<T>& div) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  for (int64_t ox = 0; ox < g.wo; ox += W) {
    const int64_t lanes = std::min<int64_t>(W, g.wo - ox);
    const auto load = [&](const T* at) {
      return lanes == W ? S::loadu(at) : S::load_partial(at, lanes);
    };
    const T* p = plane + oy * g.sh * g.w + ox;
    Reg s = S::zero();
    for (int64_t di = 0; di < g.ph; ++di, p += g.w) {
      Reg r = load(p);
      for (int64_t dj = 1; dj < g.pw; ++dj) r = S::add(r, load(p + dj));
      s = di == 0 ? r : S::add(s, r);
    }
    if (lanes == W) {
      S::storeu(yrow + ox, div(s));
    } else {
      S::store_partial(yrow + ox, div(s), lanes);
    }
  }
}

// Input row r of one plane's average-pooling gradient, windows 2 wide at column stride 2 that
// do not overlap vertically (sh >= ph): q = 0 + grad_y / n of output row oy, each duplicated into
// its window's two columns (qrow null: the row is in no window), zeros after the last window.
template <typename T>
void avg_backward_row_w2s2(const T* qrow, T* xrow, const Pool2dGeometry& g,
                           const CountDivider<T>& div) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  int64_t covered = 0;
  if (qrow != nullptr) {
    covered = 2 * g.wo;
    for (int64_t ox = 0; ox < g.wo; ox += W) {
      const int64_t lanes = std::min<int64_t>(W, g.wo - ox);
      const Reg gq = lanes == W ? S::loadu(qrow + ox) : S::load_partial(qrow + ox, lanes);
      // NOTE: 0 + q, as the accumulating general path gives (a -0.0 gradient becomes +0.0).
      const Reg q = S::add(S::zero(), div(gq));
      Reg lo, hi;
      duplicate_lanes(q, &lo, &hi);
      T* p = xrow + 2 * ox;
      if (lanes == W) {
        S::storeu(p, lo);
        S::storeu(p + W, hi);
      } else {
        const int64_t n_lo = std::min<int64_t>(W, 2 * lanes), n_hi = 2 * lanes - n_lo;
        S::store_partial(p, lo, n_lo);
        if (n_hi > 0) S::store_partial(p + W, hi, n_hi);
      }
    }
  }
  std::fill(xrow + covered, xrow + g.w, T(0));
}

// Grain of the plane loops: about 32k input elements per task.
inline int64_t plane_grain(int64_t in_plane) {
  return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, in_plane));
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

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dGeometry& g) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  if (g.planes == 0 || out_plane == 0) return;
  const CountDivider<T> div(g.ph * g.pw);
  const bool w2s2 = g.pw == 2 && g.sw == 2, s1 = g.sw == 1;
  // Output rows are independent: split them (not planes) so one large plane uses every thread.
  const int64_t rows = g.planes * g.ho;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, g.ph * g.w));
  runtime::parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t p = r / g.ho, oy = r % g.ho;
      const T* plane = x + p * in_plane;
      T* yrow = y + p * out_plane + oy * g.wo;
      if (w2s2) {
        avg_row_w2s2(plane, g, oy, yrow, div);
      } else if (s1) {
        avg_row_s1(plane, g, oy, yrow, div);
      } else {
        for (int64_t ox = 0; ox < g.wo; ++ox) yrow[ox] = div(avg_window_sum(plane, g, oy, ox));
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward(const T* grad_y, T* grad_x, const Pool2dGeometry& g) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  if (g.planes == 0 || in_plane == 0) return;
  const CountDivider<T> div(g.ph * g.pw);
  const bool w2s2 = g.pw == 2 && g.sw == 2 && g.sh >= g.ph;
  runtime::parallel_for(g.planes, plane_grain(in_plane), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* gp = grad_y + p * out_plane;
      T* xp = grad_x + p * in_plane;
      if (w2s2) {
        for (int64_t r = 0; r < g.h; ++r) {
          const int64_t oy = r / g.sh;
          const bool in_window = oy < g.ho && r - oy * g.sh < g.ph;
          avg_backward_row_w2s2(in_window ? gp + oy * g.wo : nullptr, xp + r * g.w, g, div);
        }
        continue;
      }
      // The specification: zeros, then each window's share added in output order.
      std::fill(xp, xp + in_plane, T(0));
      for (int64_t oy = 0; oy < g.ho; ++oy) {
        for (int64_t ox = 0; ox < g.wo; ++ox) {
          const T q = div(gp[oy * g.wo + ox]);
          T* w0 = xp + oy * g.sh * g.w + ox * g.sw;
          for (int64_t di = 0; di < g.ph; ++di) {
            for (int64_t dj = 0; dj < g.pw; ++dj) w0[di * g.w + dj] += q;
          }
        }
      }
    }
  });
}

template <typename T>
void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t hw) {
  using D = Simd<double>;
  constexpr int W = D::width;
  if (planes == 0) return;
  runtime::parallel_for(planes, plane_grain(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* xp = x + p * hw;
      auto a0 = D::zero(), a1 = D::zero(), a2 = D::zero(), a3 = D::zero();
      int64_t i = 0;
      for (; i + 4 * W <= hw; i += 4 * W) {
        a0 = D::add(a0, D::load_from(xp + i));
        a1 = D::add(a1, D::load_from(xp + i + W));
        a2 = D::add(a2, D::load_from(xp + i + 2 * W));
        a3 = D::add(a3, D::load_from(xp + i + 3 * W));
      }
      for (; i + W <= hw; i += W) a0 = D::add(a0, D::load_from(xp + i));
      if (i < hw) a1 = D::add(a1, D::load_from_partial(xp + i, hw - i));
      const double s = D::reduce_add(D::add(D::add(a0, a1), D::add(a2, a3)));
      y[p] = static_cast<T>(s / static_cast<double>(hw));
    }
  });
}

template <typename T>
void global_avg_pool2d_backward(const T* grad_y, T* grad_x, int64_t planes, int64_t hw) {
  if (planes == 0 || hw == 0) return;
  const CountDivider<T> div(hw);
  runtime::parallel_for(planes, plane_grain(hw), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) std::fill(grad_x + p * hw, grad_x + (p + 1) * hw, div(grad_y[p]));
  });
}

template void avg_pool2d_forward<float>(const float*, float*, const Pool2dGeometry&);
template void avg_pool2d_forward<double>(const double*, double*, const Pool2dGeometry&);
template void avg_pool2d_backward<float>(const float*, float*, const Pool2dGeometry&);
template void avg_pool2d_backward<double>(const double*, double*, const Pool2dGeometry&);
template void global_avg_pool2d_forward<float>(const float*, float*, int64_t, int64_t);
template void global_avg_pool2d_forward<double>(const double*, double*, int64_t, int64_t);
template void global_avg_pool2d_backward<float>(const float*, float*, int64_t, int64_t);
template void global_avg_pool2d_backward<double>(const double*, double*, int64_t, int64_t);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
