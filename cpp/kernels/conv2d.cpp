// Convolution kernels (direct and im2col + GEMM), forward and backward; compiled once per ISA.
#include "kernels/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemm_epilogue.h"
#include "kernels/simd.h"
#include "runtime/threadpool.h"
#include "runtime/workspace.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Elements of one unfolded (im2col) chunk or padded input block: output rows are taken in
// chunks so a task's scratch stays near L2 size whatever the image size (at least one row).
constexpr int64_t kChunkElems = int64_t(1) << 18;
// Weight-gradient partial sums: at most this many groups of images (fixed by the shape, never by
// the thread count), and at most this many elements of partials in all.
constexpr int64_t kMaxGroups = 8;
constexpr int64_t kPartialElems = int64_t(1) << 22;
// Padded images (x and grad_y) per batch of the direct weight gradient: about half a 1 MiB L2.
constexpr int64_t kWgradBatchElems = int64_t(1) << 17;
// Forward convolutions of fewer multiply-adds than this run on the calling thread, in one row
// block. NOTE: measured 1 vs 2 threads (Xeon, 2 cores, shared): with the worker awake (back-to-
// back calls) 2 threads break even at 2^18-2^18.8 (0.74-1.29x at 2^17.8, 0.76-1.35x at 2^18.8,
// a gain of at most 4 us there); with it asleep the wake-up added ~50 us to every size up to
// 2^22.8. 2^19 gives up those few microseconds to spare small calls the wake-up.
constexpr int64_t kSerialMacs = int64_t(1) << 19;

// ceil(a / b) for b > 0, without forming a + b (a stride near 2^63 must not overflow).
inline int64_t ceil_div(int64_t a, int64_t b) { return a > 0 ? (a - 1) / b + 1 : -(-a / b); }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Runs f(u) for every unit u in [0, units) not yet taken from `next`, claiming `claim` units at a
// time, rather than a fixed share per task: a task that starts late (a worker's wake-up) or is
// slowed (another process on its core) takes fewer. Where a unit runs never changes its bits.
template <typename F>
inline void claim_units(std::atomic<int64_t>& next, int64_t units, int64_t claim, F&& f) {
  for (int64_t u0; (u0 = next.fetch_add(claim, std::memory_order_relaxed)) < units;) {
    const int64_t u1 = std::min(units, u0 + claim);
    for (int64_t u = u0; u < u1; ++u) f(u);
  }
}

// Output channels per register block of the direct kernel and vectors of output positions (24 or
// 12 accumulators); a single output channel (the tutorial's image) gets four vectors instead.
#if defined(NNFAST_SIMD_AVX512)
constexpr int kDirectOB = 8;
#else
constexpr int kDirectOB = 4;
#endif
constexpr int kDirectNV = 3;
constexpr int kSingleNV = 4;
// The row-wise variant's vectors per row, and the most taps per output it is used for.
constexpr int kRowwiseNV = 2;
constexpr int64_t kRowwiseTaps = 32;

// Output columns [lo, hi) whose input column ox*sw + j - pl lies inside [0, w).
inline void valid_cols(const Conv2dGeometry& g, int64_t j, int64_t* lo, int64_t* hi) {
  const int64_t first = g.pl - j;  // ox*sw >= first
  *lo = first <= 0 ? 0 : std::min(g.wo, ceil_div(first, g.sw));
  const int64_t last = g.w - 1 + g.pl - j;  // ox*sw <= last
  *hi = last < 0 ? 0 : std::min(g.wo, last / g.sw + 1);
  if (*hi < *lo) *hi = *lo;
}

// col[(ci*kh + i)*kw + j][(oy - oy0)*wo + ox] = x[ci, oy*sh + i - pt, ox*sw + j - pl] (0 outside)
// for output rows [oy0, oy1) of one image.
template <typename T>
void im2col(const T* x, const Conv2dGeometry& g, int64_t oy0, int64_t oy1, T* col) {
  const int64_t pc = (oy1 - oy0) * g.wo;
  for (int64_t ci = 0; ci < g.c; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        T* dst = col + ((ci * g.kh + i) * g.kw + j) * pc;
        int64_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        for (int64_t oy = oy0; oy < oy1; ++oy, dst += g.wo) {
          const int64_t iy = oy * g.sh + i - g.pt;
          if (iy < 0 || iy >= g.h || lo >= hi) {
            std::fill(dst, dst + g.wo, T(0));
            continue;
          }
          const T* src = x + (ci * g.h + iy) * g.w + j - g.pl;
          // NOTE: plain loops, not memcpy/fill calls: rows are short (14-28 elements).
          for (int64_t ox = 0; ox < lo; ++ox) dst[ox] = T(0);
          if (g.sw == 1) {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox * g.sw];
          }
          for (int64_t ox = hi; ox < g.wo; ++ox) dst[ox] = T(0);
        }
      }
    }
  }
}

// gx[ci, oy*sh + i - pt, ox*sw + j - pl] += col[...] for output rows [oy0, oy1) (inverse of
// im2col), in a fixed order.
template <typename T>
void col2im_add(const T* col, const Conv2dGeometry& g, int64_t oy0, int64_t oy1, T* gx) {
  const int64_t pc = (oy1 - oy0) * g.wo;
  for (int64_t ci = 0; ci < g.c; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = col + ((ci * g.kh + i) * g.kw + j) * pc;
        int64_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        for (int64_t oy = oy0; oy < oy1; ++oy, src += g.wo) {
          const int64_t iy = oy * g.sh + i - g.pt;
          if (iy < 0 || iy >= g.h) continue;
          T* dst = gx + (ci * g.h + iy) * g.w + j - g.pl;
          if (g.sw == 1) {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] += src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox * g.sw] += src[ox];
          }
        }
      }
    }
  }
}

// Output rows per im2col chunk: the unfolded chunk (K x rows*wo) stays within kChunkElems.
inline int64_t chunk_rows(const Conv2dGeometry& g) {
  const int64_t k = std::max<int64_t>(1, g.c * g.kh * g.kw);
  return std::max<int64_t>(1, std::min(g.ho, kChunkElems / (k * g.wo)));
}

// acc = 0 for a whole register tile (unrolled: the tile stays in registers).
template <typename T, int R, int NV>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline void zero_tile(typename Simd<T>::Reg (&acc)[R][NV]) {
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = Simd<T>::zero();
  }
}

// acc[k][v] += s[k] * p[v * W .. v * W + W) for the R scalars s and the NV vectors at p: one
// rank-1 update of a register tile, every direct kernel's inner step.
template <typename T, int R, int NV>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline void rank1_update(typename Simd<T>::Reg (&acc)[R][NV], const T* s, const T* p) {
  using S = Simd<T>;
  typename S::Reg vec[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) vec[v] = S::loadu(p + v * S::width);
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k) {
    const auto sk = S::set1(s[k]);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = S::fmadd(sk, vec[v], acc[k][v]);
  }
}

// Weights in blocks of ob output channels, as the direct kernels read them: wpack[(blk * taps +
// t) * ob + q] = w[blk * ob + q][tap t] (0 past the last channel). The taps t run over (ci, i, j),
// or over (i, j, ci) with spatial_first.
template <typename T>
void pack_weight_blocks(const T* w, const Conv2dGeometry& g, int64_t ob, bool spatial_first,
                        T* wpack) {
  const int64_t kk = g.kh * g.kw, taps = g.c * kk;
  // Tap t = a * inner + b is w's tap column a * sa + b * sb.
  const int64_t inner = spatial_first ? g.c : kk;
  const int64_t sa = spatial_first ? 1 : kk, sb = spatial_first ? kk : 1;
  for (int64_t blk = 0; blk < ceil_div(g.o, ob); ++blk) {
    T* dst = wpack + blk * taps * ob;
    for (int64_t t = 0; t < taps; ++t, dst += ob) {
      const int64_t src = t / inner * sa + t % inner * sb;
      for (int64_t q = 0; q < ob; ++q) {
        const int64_t o = blk * ob + q;
        dst[q] = o < g.o ? w[o * taps + src] : T(0);
      }
    }
  }
}

// ---------------------------------------------------------------------------- direct kernel
//
// Stride 1. The input rows a unit of output rows needs are copied, zero-padded, into planes of
// wp = wo + kw - 1 columns, so output (oy, ox) at tap (i, j) reads position (oy*wp + ox) +
// (i*wp + j): consecutive positions q = oy*wp + ox are consecutive in memory for every tap. The
// kernel computes vectors along q (the kw - 1 columns per row past wo are computed and dropped),
// so a 14-wide output row does not waste most of a 16-lane vector.

// Stores lanes [l0, l1) of v at p + l0 .. p + l1 - 1.
template <typename T>
inline void store_lanes(T* p, typename Simd<T>::Reg v, int l0, int l1) {
  using S = Simd<T>;
#if defined(NNFAST_SIMD_AVX512)
  const auto mask = static_cast<typename S::Mask>(((1u << l1) - 1u) & ~((1u << l0) - 1u));
  if constexpr (std::is_same_v<T, float>) {
    _mm512_mask_storeu_ps(p, mask, v);
  } else {
    _mm512_mask_storeu_pd(p, mask, v);
  }
#else
  alignas(64) T buf[S::width];
  S::storeu(buf, v);
  std::memcpy(p + l0, buf + l0, static_cast<size_t>(l1 - l0) * sizeof(T));
#endif
}

// Layout of one unit's padded input: rows [oy0, oy0 + rows) of output need rows + kh - 1 input
// rows; each channel holds them as a plane of wp columns plus zero slack for the last vectors.
struct DirectUnit {
  int64_t wp;   // padded row width, wo + kw - 1
  int64_t nq;   // positions computed: rows * wp
  int64_t cs;   // channel stride in the buffer
};

template <typename T, int NV>
DirectUnit direct_unit(const Conv2dGeometry& g, int64_t rows) {
  constexpr int64_t V = NV * Simd<T>::width;
  DirectUnit u;
  u.wp = g.wo + g.kw - 1;
  u.nq = rows * u.wp;
  u.cs = round_up(round_up(u.nq, V) + (g.kh - 1) * u.wp + g.kw - 1, 16);
  return u;
}

template <typename T>
void pad_unit(const T* x, const Conv2dGeometry& g, int64_t oy0, int64_t rows, const DirectUnit& u,
              T* xp) {
  std::fill(xp, xp + g.c * u.cs, T(0));
  const int64_t q0 = std::max<int64_t>(0, g.pl);           // first padded column holding x
  const int64_t q1 = std::min<int64_t>(u.wp, g.pl + g.w);  // one past the last
  if (q1 <= q0) return;
  using S = Simd<T>;
  constexpr int64_t W = S::width;
  const int64_t n = q1 - q0;
  for (int64_t ci = 0; ci < g.c; ++ci) {
    for (int64_t r = 0; r < rows + g.kh - 1; ++r) {
      const int64_t iy = oy0 + r - g.pt;
      if (iy < 0 || iy >= g.h) continue;
      T* dst = xp + ci * u.cs + r * u.wp + q0;
      const T* src = x + (ci * g.h + iy) * g.w + q0 - g.pl;
      if (n < W) {
        std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
        continue;
      }
      // NOTE: whole vectors, the last one overlapping the one before (no call, no mask: the
      // rows are short, e.g. 28 floats of grad_y for the C=1 layer's grad_x, 60k rows a batch).
      for (int64_t k = 0; k + W < n; k += W) S::storeu(dst + k, S::loadu(src + k));
      S::storeu(dst + n - W, S::loadu(src + n - W));
    }
  }
}

// Output rows [oy0, oy0 + rows) of one image: for each block of OB output channels and NV vectors
// of positions, the products over every tap (ci, i, j) accumulate in registers, each input vector
// reused for the whole channel block. wpack holds the weights as [block][tap][OB].
template <typename T, GemmActivation Act, int OB, int NV>
void direct_unit_rows(const T* xp, const DirectUnit& u, const T* wpack, const T* b,
                      const Conv2dGeometry& g, int64_t oy0, int64_t rows, T* y) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  const int64_t taps = g.c * g.kh * g.kw;
  const int64_t plane = g.ho * g.wo;
  for (int64_t o0 = 0; o0 < g.o; o0 += OB) {
    const int64_t ob = std::min<int64_t>(OB, g.o - o0);
    const T* wb = wpack + (o0 / OB) * taps * OB;
    for (int64_t q0 = 0; q0 < u.nq; q0 += NV * W) {
      Reg acc[OB][NV];
      zero_tile<T>(acc);
      const T* wt = wb;
      for (int64_t ci = 0; ci < g.c; ++ci) {
        const T* xc = xp + ci * u.cs + q0;
        for (int64_t i = 0; i < g.kh; ++i) {
          const T* xr = xc + i * u.wp;
          for (int64_t j = 0; j < g.kw; ++j, wt += OB) rank1_update<T>(acc, wt, xr + j);
        }
      }
      // The lanes of each vector fall in one or more output rows: the runs of real columns
      // (padding columns dropped), found once per block for all its channels.
      int nseg[NV] = {};
      int seg_l0[NV][W + 1], seg_l1[NV][W + 1];
      int64_t seg_off[NV][W + 1];
      int64_t row = q0 / u.wp;
      for (int v = 0; v < NV; ++v) {
        const int64_t qs = q0 + v * W;
        while ((row + 1) * u.wp <= qs) ++row;
        for (int64_t r = row; r < rows && r * u.wp < qs + W; ++r) {
          const int64_t l0 = std::max<int64_t>(0, r * u.wp - qs);
          const int64_t l1 = std::min<int64_t>(W, r * u.wp + g.wo - qs);
          if (l1 > l0) {
            seg_l0[v][nseg[v]] = static_cast<int>(l0);
            seg_l1[v][nseg[v]] = static_cast<int>(l1);
            seg_off[v][nseg[v]] = r * g.wo + (qs - r * u.wp);
            ++nseg[v];
          }
        }
      }
      for (int64_t q = 0; q < ob; ++q) {
        T* yp = y + (o0 + q) * plane + oy0 * g.wo;
        const Reg bias = b != nullptr ? S::set1(b[o0 + q]) : S::zero();
        for (int v = 0; v < NV; ++v) {
          if (nseg[v] == 0) continue;
          Reg r = acc[q][v];
          if (b != nullptr) r = S::add(r, bias);
          r = epi::activate<Act, T>(r);
          for (int k = 0; k < nseg[v]; ++k) {
            store_lanes<T>(yp + seg_off[v][k], r, seg_l0[v][k], seg_l1[v][k]);
          }
        }
      }
    }
  }
}

template <typename T, GemmActivation Act, int OB, int NV>
void forward_direct(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g) {
  const int64_t taps = g.c * g.kh * g.kw;
  const int64_t blocks = ceil_div(g.o, OB);
  // Row blocks per image: enough units for every thread, and padded blocks of bounded size.
  const int threads = runtime::num_threads();
  // Small problems stay on one thread, in one row block (kSerialMacs).
  const int64_t macs = g.n * g.o * g.ho * g.wo * std::max<int64_t>(taps, 1);
  const bool serial = macs < kSerialMacs;
  int64_t r_blocks = serial || g.n >= threads ? 1 : ceil_div(threads, std::max<int64_t>(g.n, 1));
  const DirectUnit whole = direct_unit<T, NV>(g, g.ho);
  r_blocks = std::max(r_blocks, ceil_div(g.c * whole.cs, kChunkElems));
  r_blocks = std::min(r_blocks, g.ho);
  const int64_t rows_per = ceil_div(g.ho, r_blocks);
  r_blocks = ceil_div(g.ho, rows_per);
  const int64_t units = g.n * r_blocks;
  const int64_t tasks = serial ? 1 : std::min<int64_t>(units, threads);
  const DirectUnit unit = direct_unit<T, NV>(g, rows_per);
  const int64_t pad_elems = round_up(g.c * unit.cs, 16);
  const int64_t wpack_elems = round_up(blocks * taps * OB, 16);
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv,
      static_cast<size_t>(wpack_elems + tasks * pad_elems) * sizeof(T)));
  T* wpack = ws;
  pack_weight_blocks(w, g, OB, false, wpack);
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xp = ws + wpack_elems + t * pad_elems;
      for (int64_t un = units * t / tasks; un < units * (t + 1) / tasks; ++un) {
        const int64_t n = un / r_blocks;
        const int64_t oy0 = (un % r_blocks) * rows_per;
        const int64_t rows = std::min(g.ho, oy0 + rows_per) - oy0;
        const DirectUnit u = direct_unit<T, NV>(g, rows);
        pad_unit(x + n * g.c * g.h * g.w, g, oy0, rows, u, xp);
        direct_unit_rows<T, Act, OB, NV>(xp, u, wpack, b, g, oy0, rows,
                                         y + n * g.o * g.ho * g.wo);
      }
    }
  });
}

// ---- row-wise variant: vectors along each output row, plain stores (few taps per output)

// Padded input rows of one image for output rows [oy0, oy1), for the direct kernel (sw == 1):
// rows_p rows of wr columns per channel, column q holding x column q - pl (0 outside). xp must
// have a vector width of slack past the c * rows_p * wr elements.
template <typename T>
void pad_rows(const T* x, const Conv2dGeometry& g, int64_t oy0, int64_t rows_p, int64_t wr,
              T* xp) {
  using S = Simd<T>;
  constexpr int W = S::width;
  const int64_t q0 = std::min<int64_t>(wr, std::max<int64_t>(0, g.pl));  // first column of x
  const int64_t q1 = std::max(q0, std::min<int64_t>(wr, g.pl + g.w));    // one past the last
  // NOTE: each row written once, with vector copies: the rows are short (14-28 elements), so
  // a fill of the whole block plus a memcpy call per row cost ~5% of the 32->64 layer.
  for (int64_t ci = 0; ci < g.c; ++ci) {
    for (int64_t r = 0; r < rows_p; ++r) {
      T* dst = xp + (ci * rows_p + r) * wr;
      const int64_t iy = oy0 * g.sh + r - g.pt;
      if (iy < 0 || iy >= g.h || q1 <= q0) {
        std::fill(dst, dst + wr, T(0));
        continue;
      }
      const T* src = x + (ci * g.h + iy) * g.w + q0 - g.pl;
#if defined(NNFAST_SIMD_AVX512)
      // Whole vectors of the padded row, x's lanes loaded under a mask (the rest zero); a
      // vector running past the row is overwritten by the next row (the block has W of slack).
      // Only the vectors holding a border load under a mask (no lane outside x is touched).
      for (int64_t q = 0; q < wr; q += W) {
        if (q >= q0 && q + W <= q1) {
          S::storeu(dst + q, S::loadu(src - q0 + q));
        } else if (q + W <= q0 || q >= q1) {
          S::storeu(dst + q, S::zero());
        } else {
          const int64_t a = std::max<int64_t>(q0 - q, 0), e = std::min<int64_t>(q1 - q, W);
          const auto mask = static_cast<typename S::Mask>(((1u << e) - 1u) & ~((1u << a) - 1u));
          if constexpr (std::is_same_v<T, float>) {
            S::storeu(dst + q, _mm512_maskz_loadu_ps(mask, src - q0 + q));
          } else {
            S::storeu(dst + q, _mm512_maskz_loadu_pd(mask, src - q0 + q));
          }
        }
      }
      continue;
#endif
      for (int64_t q = 0; q < q0; ++q) dst[q] = T(0);
      int64_t q = q0;
      for (; q + W <= q1; q += W) S::storeu(dst + q, S::loadu(src + (q - q0)));
      if (q < q1) S::store_partial(dst + q, S::load_partial(src + (q - q0), q1 - q), q1 - q);
      for (q = q1; q < wr; ++q) dst[q] = T(0);
    }
  }
}

// Row-wise direct convolution (few taps per output, stride_w 1) of output rows [oy0, oy1) of one
// image: for each block of OB output channels and NV vectors along the row, the products over
// every tap (ci, i, j) accumulate in registers, each input vector reused for the channel block.
// wpack holds the weights per channel block as [block][tap][OB] (zero-padded channels).
template <typename T, GemmActivation Act, int OB, int NV, int K>
void direct_rows(const T* xp, int64_t rows_p, int64_t wr, const T* wpack, const T* b,
                 const Conv2dGeometry& g, int64_t oy0, int64_t oy1, T* y) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  // K > 0: the kernel is K x K, known at compile time (its tap loops unrolled).
  const int64_t kh = K > 0 ? K : g.kh, kw = K > 0 ? K : g.kw;
  const int64_t taps = g.c * kh * kw;
  const int64_t plane = g.ho * g.wo, wo = g.wo;  // locals: the stores to y cannot alias them
  for (int64_t o0 = 0; o0 < g.o; o0 += OB) {
    const int64_t ob = std::min<int64_t>(OB, g.o - o0);
    const T* wb = wpack + (o0 / OB) * taps * OB;
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const T* xrow = xp + (oy - oy0) * g.sh * wr;
      for (int64_t ox0 = 0; ox0 < g.wo; ox0 += NV * W) {
        Reg acc[OB][NV];
        zero_tile<T>(acc);
        const T* wt = wb;
        for (int64_t ci = 0; ci < g.c; ++ci) {
          const T* xc = xrow + ci * rows_p * wr + ox0;
          for (int64_t i = 0; i < kh; ++i) {
            const T* xr = xc + i * wr;
            for (int64_t j = 0; j < kw; ++j, wt += OB) rank1_update<T>(acc, wt, xr + j);
          }
        }
        // NOTE: fully unrolled (constant indices), so the accumulators stay in registers: with
        // 9 taps per output (the C=1 layer) a spilled epilogue cost as much as the products.
#pragma GCC unroll 16
        for (int q = 0; q < OB; ++q) {
          if (q >= ob) break;
          T* yrow = y + (o0 + q) * plane + oy * wo + ox0;
          const Reg bias = b != nullptr ? S::set1(b[o0 + q]) : S::zero();
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            const int64_t lanes = wo - ox0 - v * W;
            if (lanes <= 0) break;
            Reg r = acc[q][v];
            if (b != nullptr) r = S::add(r, bias);
            r = epi::activate<Act, T>(r);
            if (lanes >= W) {
              S::storeu(yrow + v * W, r);
            } else {
              S::store_partial(yrow + v * W, r, lanes);
            }
          }
        }
      }
    }
  }
}

template <typename T, GemmActivation Act, int OB, int NV, int K = 0>
void forward_direct_rows(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g) {
  constexpr int W = Simd<T>::width;
  const int64_t taps = g.c * g.kh * g.kw;
  const int64_t blocks = ceil_div(g.o, OB);
  // Padded rows of whole vectors, so each starts on a 64-byte boundary: pad_rows' stores and the
  // first tap's loads split no cache line (they did on every row of the tutorial's 28x28 image).
  const int64_t wr = round_up(round_up(g.wo, NV * W) + g.kw - 1, W);
  // Row blocks per image: enough units for every thread, and padded blocks of bounded size.
  const int threads = runtime::num_threads();
  const int64_t rows_all = (g.ho - 1) * g.sh + g.kh;
  // Small problems stay on one thread, in one row block (kSerialMacs).
  const int64_t macs = g.n * g.o * g.ho * g.wo * std::max<int64_t>(taps, 1);
  const bool serial = macs < kSerialMacs;
  int64_t r_blocks = serial || g.n >= threads ? 1 : ceil_div(threads, std::max<int64_t>(g.n, 1));
  r_blocks = std::max(r_blocks, ceil_div(g.c * rows_all * wr, kChunkElems));
  r_blocks = std::min(r_blocks, g.ho);
  const int64_t rows_per = ceil_div(g.ho, r_blocks);
  r_blocks = ceil_div(g.ho, rows_per);
  const int64_t units = g.n * r_blocks;
  const int64_t tasks = serial ? 1 : std::min<int64_t>(units, threads);
  const int64_t rows_p = (rows_per - 1) * g.sh + g.kh;
  const int64_t pad_elems = round_up(g.c * rows_p * wr + 16, 16);
  const int64_t wpack_elems = round_up(blocks * taps * OB, 16);
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv,
      static_cast<size_t>(wpack_elems + tasks * pad_elems) * sizeof(T)));
  T* wpack = ws;
  pack_weight_blocks(w, g, OB, false, wpack);
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xp = ws + wpack_elems + t * pad_elems;
      for (int64_t u = units * t / tasks; u < units * (t + 1) / tasks; ++u) {
        const int64_t n = u / r_blocks;
        const int64_t oy0 = (u % r_blocks) * rows_per;
        const int64_t oy1 = std::min(g.ho, oy0 + rows_per);
        const int64_t rows = (oy1 - oy0 - 1) * g.sh + g.kh;
        pad_rows(x + n * g.c * g.h * g.w, g, oy0, rows, wr, xp);
        direct_rows<T, Act, OB, NV, K>(xp, rows, wr, wpack, b, g, oy0, oy1,
                                       y + n * g.o * g.ho * g.wo);
      }
    }
  });
}

// ---- channel-vector variant: output channels along the vectors (wide layers)
//
// An implicit GEMM: y^T[pos][o] = sum over taps of x[pos + tap] * w[tap][o], with the zero-padded
// input rows (pad_rows) read in place as the broadcast operand and the weights packed [tap][o] as
// the vector operand: P output positions of one row x NV vectors of channels in registers. No
// lane is spent on padding columns or row ends (a block is any run of one output row); only the
// channels past o in the last block are zero weights. A unit's tiles are collected position-major
// and transposed into y's channel planes, with bias and activation fused into that pass.

// Positions per register tile: NV * P accumulators, NV weight vectors and a broadcast.
#if defined(NNFAST_SIMD_AVX512)
constexpr int kOchanP = 14;
#elif defined(NNFAST_SIMD_SCALAR)
constexpr int kOchanP = 4;
#else
constexpr int kOchanP = 6;
#endif
constexpr int kOchanNV = 2;

#if defined(NNFAST_SIMD_AVX512)
// Transposes the 16 x 16 floats in r (row i = r[i]) in place: 64 in-lane and lane shuffles.
inline void transpose_16x16(__m512 r[16]) {
  // NOTE: the zero-masked forms with every lane selected: gcc 12's unmasked ones start from an
  // undefined register and trip -Wuninitialized (GCC PR 105593); the same instructions result.
  constexpr __mmask16 kAll16 = 0xFFFF;
  constexpr __mmask8 kAll8 = 0xFF;
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(kAll16, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll16, r[i], r[i + 1]);
  }
  // u[4G + c], lane L: column 4L + c of rows 4G .. 4G + 3.
  __m512 u[16];
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    u[i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, a, c));
    u[i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, a, c));
    u[i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, b, d));
    u[i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, b, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 lo01 = _mm512_maskz_shuffle_f32x4(kAll16, u[c], u[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi01 = _mm512_maskz_shuffle_f32x4(kAll16, u[c], u[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
    const __m512 lo23 =
        _mm512_maskz_shuffle_f32x4(kAll16, u[8 + c], u[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi23 =
        _mm512_maskz_shuffle_f32x4(kAll16, u[8 + c], u[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
    r[c] = _mm512_maskz_shuffle_f32x4(kAll16, lo01, lo23, _MM_SHUFFLE(2, 0, 2, 0));
    r[4 + c] = _mm512_maskz_shuffle_f32x4(kAll16, lo01, lo23, _MM_SHUFFLE(3, 1, 3, 1));
    r[8 + c] = _mm512_maskz_shuffle_f32x4(kAll16, hi01, hi23, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_maskz_shuffle_f32x4(kAll16, hi01, hi23, _MM_SHUFFLE(3, 1, 3, 1));
  }
}
#endif

// The activation of every accumulator (one switch per tile, not per element).
template <typename T, typename Reg, int P, int NV>
inline void activate_all(Reg (&acc)[P][NV], GemmActivation act) {
  switch (act) {
    case GemmActivation::relu:
      for (int k = 0; k < P; ++k) {
        for (int v = 0; v < NV; ++v) acc[k][v] = epi::activate<GemmActivation::relu, T>(acc[k][v]);
      }
      break;
    case GemmActivation::sigmoid:
      for (int k = 0; k < P; ++k) {
        for (int v = 0; v < NV; ++v) {
          acc[k][v] = epi::activate<GemmActivation::sigmoid, T>(acc[k][v]);
        }
      }
      break;
    case GemmActivation::tanh:
      for (int k = 0; k < P; ++k) {
        for (int v = 0; v < NV; ++v) acc[k][v] = epi::activate<GemmActivation::tanh, T>(acc[k][v]);
      }
      break;
    default:
      break;
  }
}

// y[l * ld + k] = act(bias[l] + sum over taps (i, j, ci) of xr[ci * cs + i * wr + j + k] *
// wb[tap][l]) for the P positions k and the first ob of the NV * W channels l of one block (wb
// packed by pack_weight_blocks, spatial taps first, so the innermost loop walks the input
// channels with fixed strides; bias holds NV * W values, or is null). The accumulators start
// from the bias and are transposed in registers into the channel rows of y.
template <typename T, int P>
void ochan_tile(const T* xr, int64_t cs, int64_t wr, const T* wb, const T* bias,
                const Conv2dGeometry& g, GemmActivation act, int64_t ob, T* y, int64_t ld) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width, NV = kOchanNV;
  Reg acc[P][NV];
#pragma GCC unroll 16
  for (int k = 0; k < P; ++k) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = bias != nullptr ? S::loadu(bias + v * W) : S::zero();
  }
  const T* wt = wb;
  for (int64_t i = 0; i < g.kh; ++i) {
    for (int64_t j = 0; j < g.kw; ++j) {
      const T* xt = xr + i * wr + j;
      for (int64_t ci = 0; ci < g.c; ++ci, xt += cs, wt += NV * W) rank1_update<T>(acc, xt, wt);
    }
  }
  activate_all<T>(acc, act);
#if defined(NNFAST_SIMD_AVX512)
  if constexpr (std::is_same_v<T, float> && P <= W) {
    for (int v = 0; v < NV && v * W < ob; ++v) {
      __m512 r[W];
      for (int k = 0; k < W; ++k) r[k] = k < P ? acc[k][v] : S::zero();
      transpose_16x16(r);
      const int64_t lanes = std::min<int64_t>(W, ob - v * W);
      for (int l = 0; l < lanes; ++l) S::store_partial(y + (v * W + l) * ld, r[l], P);
    }
    return;
  }
#endif
  alignas(64) T tmp[P][NV * W];
  for (int k = 0; k < P; ++k) {
    for (int v = 0; v < NV; ++v) S::storeu(&tmp[k][v * W], acc[k][v]);
  }
  for (int64_t l = 0; l < ob; ++l) {
    for (int k = 0; k < P; ++k) y[l * ld + k] = tmp[k][l];
  }
}

// ochan_tile for p <= P positions (the register tile compiled for exactly p).
template <typename T, int P = kOchanP>
void ochan_tile_n(int64_t p, const T* xr, int64_t cs, int64_t wr, const T* wb, const T* bias,
                  const Conv2dGeometry& g, GemmActivation act, int64_t ob, T* y, int64_t ld) {
  if constexpr (P > 1) {
    if (p < P) return ochan_tile_n<T, P - 1>(p, xr, cs, wr, wb, bias, g, act, ob, y, ld);
  }
  ochan_tile<T, P>(xr, cs, wr, wb, bias, g, act, ob, y, ld);
}

// Lanes doing useful work: the channel-vector kernel (channels padded to whole blocks) against
// the flat kernel (padding columns and the last block's tail computed and dropped, channels
// padded to whole register blocks).
template <typename T>
bool ochan_preferred(const Conv2dGeometry& g) {
  constexpr int W = Simd<T>::width;
  const double ochan = double(g.o) / double(round_up(g.o, kOchanNV * W));
  const int64_t wp = g.wo + g.kw - 1;
  const double flat = double(g.o) / double(round_up(g.o, kDirectOB)) * double(g.ho * g.wo) /
                      double(round_up(g.ho * wp, kDirectNV * W));
  return ochan >= flat;
}

template <typename T>
void forward_direct_ochan(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g,
                          GemmActivation act) {
  constexpr int NW = kOchanNV * Simd<T>::width;
  const int64_t taps = g.c * g.kh * g.kw;
  const int64_t blocks = ceil_div(g.o, NW);
  const int64_t wr = g.wo + g.kw - 1;
  const int64_t plane = g.ho * g.wo;
  // Row blocks per image: enough units for every thread, and padded input of bounded size.
  const int threads = runtime::num_threads();
  // Small problems stay on one thread, in one row block (kSerialMacs).
  const int64_t macs = g.n * g.o * plane * std::max<int64_t>(taps, 1);
  const bool serial = macs < kSerialMacs;
  int64_t r_blocks = serial || g.n >= threads ? 1 : ceil_div(threads, std::max<int64_t>(g.n, 1));
  r_blocks = std::max(r_blocks, ceil_div(g.c * (g.ho + g.kh - 1) * wr, kChunkElems));
  r_blocks = std::min(r_blocks, g.ho);
  const int64_t rows_per = ceil_div(g.ho, r_blocks);
  r_blocks = ceil_div(g.ho, rows_per);
  const int64_t units = g.n * r_blocks;
  const int64_t tasks = serial ? 1 : std::min<int64_t>(units, threads);
  const int64_t pad_elems = round_up(g.c * (rows_per + g.kh - 1) * wr + 16, 16);
  const int64_t wpack_elems = round_up(blocks * (taps + 1) * NW, 16);
  T* ws = static_cast<T*>(
      runtime::thread_workspace(runtime::WorkspaceSlot::conv,
                                static_cast<size_t>(wpack_elems + tasks * pad_elems) * sizeof(T)));
  T* wpack = ws;
  pack_weight_blocks(w, g, NW, true, wpack);
  // The bias in blocks of NW (zero past the last channel), after the weights.
  T* bpack = b != nullptr ? wpack + blocks * taps * NW : nullptr;
  if (bpack != nullptr) {
    for (int64_t o = 0; o < blocks * NW; ++o) bpack[o] = o < g.o ? b[o] : T(0);
  }
  // Each output row in runs of at most kOchanP positions, of balanced widths.
  const int64_t runs = ceil_div(g.wo, kOchanP);
  // Units are claimed one at a time.
  std::atomic<int64_t> next{0};
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xp = ws + wpack_elems + t * pad_elems;
      claim_units(next, units, 1, [&](int64_t un) {
        const int64_t n = un / r_blocks;
        const int64_t oy0 = (un % r_blocks) * rows_per;
        const int64_t rows = std::min(g.ho, oy0 + rows_per) - oy0;
        const int64_t cs = (rows + g.kh - 1) * wr;
        pad_rows(x + n * g.c * g.h * g.w, g, oy0, rows + g.kh - 1, wr, xp);
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t o0 = blk * NW, ob = std::min<int64_t>(NW, g.o - o0);
          const T* wb = wpack + blk * taps * NW;
          const T* bb = bpack != nullptr ? bpack + o0 : nullptr;
          T* yb = y + (n * g.o + o0) * plane;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t k = 0; k < runs; ++k) {
              const int64_t ox0 = g.wo * k / runs, ox1 = g.wo * (k + 1) / runs;
              ochan_tile_n<T>(ox1 - ox0, xp + r * wr + ox0, cs, wr, wb, bb, g, act, ob,
                              yb + (oy0 + r) * g.wo + ox0, plane);
            }
          }
        }
      });
    }
  });
}

// ---- line-aligned variant: vectors along each output plane, whole cache lines stored
//
// Few taps and output rows as wide as the input ("same" padding, the C=1 MNIST layer): the
// row-wise kernel's stores of 28-wide rows split cache lines and mask their tails, and those
// stores, not the FMAs, bound it (a store-only loop with its pattern took as long as the whole
// layer; the same bytes as aligned whole lines took 0.72 of that). Here vectors run along the
// flattened positions q = oy * wo + ox of a plane, on a grid aligned to y's cache lines: every
// store is a whole aligned line but a plane's masked first and last. Tap (ci, i, j) of position
// q reads shifted[ci][j][q + i * wo], channel ci of the zero-padded input moved left by j
// columns and cut to wo columns, so consecutive positions are consecutive for every tap, row
// ends included. Each output element is the same sum, in the same order, as the row-wise
// kernel's (bit-identical results).

// Elements of one shifted copy: W zeros before row 0 (vectors starting before the plane), the
// padded rows, then zeros for the vectors running past the plane.
template <typename T, int NV>
int64_t lines_span(const Conv2dGeometry& g) {
  constexpr int64_t W = Simd<T>::width;
  return round_up(W + (g.ho + g.kh - 1) * g.wo + NV * W + W, 16);
}

// Whether the line-aligned variant applies: few taps, rows as wide as the input (so a shifted
// copy is one bulk copy), several output channels, copies of bounded size.
template <typename T>
bool lines_ok(const Conv2dGeometry& g) {
  return g.c * g.kh * g.kw <= kRowwiseTaps && g.wo == g.w && g.o > 1 && g.wo >= Simd<T>::width &&
         g.c * g.kw * lines_span<T, kRowwiseNV>(g) <= kChunkElems;
}

// The kw shifted copies of each channel of one image (lines_ok holds: wo == w).
template <typename T>
void shift_copies(const T* x, const Conv2dGeometry& g, int64_t span, T* xs) {
  constexpr int64_t W = Simd<T>::width;
  const int64_t wo = g.wo, hw = g.h * g.w;
  const int64_t rows_p = g.ho + g.kh - 1;
  const int64_t top = g.pt * wo;                           // first element of x's row 0
  const int64_t bottom = std::min(rows_p * wo, top + hw);  // one past x's last row
  for (int64_t ci = 0; ci < g.c; ++ci) {
    const T* xc = x + ci * hw;
    for (int64_t j = 0; j < g.kw; ++j) {
      T* s = xs + (ci * g.kw + j) * span;
      T* s0 = s + W;
      const int64_t d = j - g.pl;  // shifted[q] = x_flat[q - top + d], within x's rows
      std::fill(s, s0 + top, T(0));
      // x's rows as one run, then the columns that fell off a row's edge (ox + d outside
      // [0, w)) set to zero.
      const int64_t lo = std::max<int64_t>(top, top - d), hi = std::min(bottom, top + hw - d);
      std::fill(s0 + top, s0 + std::max(top, lo), T(0));
      if (hi > lo) {
        std::memcpy(s0 + lo, xc + lo - top + d, static_cast<size_t>(hi - lo) * sizeof(T));
      }
      std::fill(s0 + std::max(lo, hi), s + span, T(0));
      if (d != 0) {
        const int64_t c0 = d < 0 ? 0 : wo - d, c1 = d < 0 ? std::min(wo, -d) : wo;
        for (int64_t r = top; r < bottom; r += wo) {
          for (int64_t ox = std::max<int64_t>(c0, 0); ox < c1; ++ox) s0[r + ox] = T(0);
        }
      }
    }
  }
}

// K > 0: the kernel is K x K, known at compile time (its tap loops unrolled).
template <typename T, GemmActivation Act, int OB, int NV, int K>
void forward_lines(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  const int64_t kh = K > 0 ? K : g.kh, kw = K > 0 ? K : g.kw;
  const int64_t taps = g.c * kh * kw;
  const int64_t blocks = ceil_div(g.o, OB);
  const int64_t plane = g.ho * g.wo, wo = g.wo;
  const int64_t span = lines_span<T, NV>(g);
  const int64_t copy_elems = round_up(g.c * g.kw * span, 16);
  // Units: (image, block of OB channels), image-major, so a task rebuilds an image's shifted
  // copies only when its image changes; several blocks let a single image use every thread.
  const int64_t units = g.n * blocks;
  const int threads = runtime::num_threads();
  const int64_t macs = g.n * g.o * plane * std::max<int64_t>(taps, 1);
  const int64_t tasks = macs < kSerialMacs ? 1 : std::min<int64_t>(units, threads);
  const int64_t wpack_elems = round_up(blocks * taps * OB, 16);
  T* ws = static_cast<T*>(
      runtime::thread_workspace(runtime::WorkspaceSlot::conv,
                                static_cast<size_t>(wpack_elems + tasks * copy_elems) * sizeof(T)));
  T* wpack = ws;
  pack_weight_blocks(w, g, OB, false, wpack);
  // Units are claimed as they go, an image's blocks together when there are images enough for
  // every task (one copy per image).
  const int64_t claim = g.n >= 2 * tasks ? blocks : 1;
  std::atomic<int64_t> next{0};
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xs = ws + wpack_elems + t * copy_elems;
      int64_t copied = -1;  // the image whose copies xs holds
      claim_units(next, units, claim, [&](int64_t un) {
        const int64_t n = un / blocks, blk = un % blocks;
        if (n != copied) {
          shift_copies(x + n * g.c * g.h * g.w, g, span, xs);
          copied = n;
        }
        const int64_t o0 = blk * OB, ob = std::min<int64_t>(OB, g.o - o0);
        const T* wb = wpack + blk * taps * OB;
        T* yb = y + (n * g.o + o0) * plane;
        // NOTE: locals, not the lambdas' captures: the compiler cannot tell that the stores to y
        // leave the captures unchanged, and reloaded them for every store (a scalar epilogue as
        // long as the tile's FMAs, on the ports the 512-bit FMAs leave).
        const int64_t c = g.c, pl = plane, wl = wo, sp = span;
        const T* const xl = xs;
        const bool has_bias = b != nullptr;
        T bias[OB];
        for (int q = 0; q < OB; ++q) bias[q] = has_bias && q < ob ? b[o0 + q] : T(0);
        // The grid of vectors starts a lines before the plane, so vector starts are aligned.
        const int64_t a = static_cast<int64_t>(reinterpret_cast<uintptr_t>(yb) / sizeof(T) % W);
        const int64_t nvec = ceil_div(pl + a, W);
        for (int64_t k0 = 0; k0 < nvec; k0 += NV) {
          const int64_t q0 = k0 * W - a;
          Reg acc[OB][NV];
          zero_tile<T>(acc);
          const T* wt = wb;
          for (int64_t ci = 0; ci < c; ++ci) {
            for (int64_t i = 0; i < kh; ++i) {
              const T* xr = xl + ci * kw * sp + W + q0 + i * wl;
              for (int64_t j = 0; j < kw; ++j, wt += OB) rank1_update<T>(acc, wt, xr + j * sp);
            }
          }
#if defined(__GNUC__)
          // NOTE: the lines of the tile after next requested now, for writing: y outgrows L2 on
          // the MNIST layer (6.4 MB) and its stores bound the kernel there (-6..-7 % measured;
          // 3 tiles ahead gained less, 6 lost).
          if (q0 + 3 * NV * W <= pl) {
#pragma GCC unroll 16
            for (int q = 0; q < OB; ++q) {
              if (q >= ob) break;
#pragma GCC unroll 4
              for (int v = 0; v < NV; ++v) {
                __builtin_prefetch(yb + q * pl + q0 + (2 * NV + v) * W, 1, 3);
              }
            }
          }
#endif
          if (ob == OB && q0 >= 0 && q0 + NV * W <= pl) {
            // Inside the plane, a whole channel block: plain stores, no per-vector checks.
#pragma GCC unroll 16
            for (int q = 0; q < OB; ++q) {
              const Reg bq = S::set1(bias[q]);
#pragma GCC unroll 4
              for (int v = 0; v < NV; ++v) {
                Reg r = acc[q][v];
                if (has_bias) r = S::add(r, bq);
                S::storeu(yb + q * pl + q0 + v * W, epi::activate<Act, T>(r));
              }
            }
            continue;
          }
#pragma GCC unroll 16
          for (int q = 0; q < OB; ++q) {
            if (q >= ob) break;
            T* yq = yb + q * pl;
            const Reg bq = S::set1(bias[q]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) {
              const int64_t pos = q0 + v * W;
              if (pos >= pl) break;
              Reg r = acc[q][v];
              if (has_bias) r = S::add(r, bq);
              r = epi::activate<Act, T>(r);
              if (pos >= 0 && pos + W <= pl) {
                S::storeu(yq + pos, r);
              } else {
                store_lanes<T>(yq + pos, r, static_cast<int>(std::max<int64_t>(0, -pos)),
                               static_cast<int>(std::min<int64_t>(W, pl - pos)));
              }
            }
          }
        }
      });
    }
  });
}

// The direct kernel variants (stride 1).
enum class DirectKernel { rowwise, lines, ochan, flat };

template <typename T>
DirectKernel direct_kernel(const Conv2dGeometry& g) {
  // NOTE: with few taps per output the flat kernel's stores (runs split at row ends, masked)
  // cost more than its saved lanes; measured 1.2 vs 2.2 ms on the C=1 MNIST layer.
  if (lines_ok<T>(g)) return DirectKernel::lines;
  if (g.c * g.kh * g.kw <= kRowwiseTaps && g.wo >= Simd<T>::width) return DirectKernel::rowwise;
  if (g.o > 1 && ochan_preferred<T>(g)) return DirectKernel::ochan;
  return DirectKernel::flat;
}

// Runs the direct kernel chosen for this shape, with the register tile for its channel count.
template <typename T, GemmActivation Act>
void run_direct(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g) {
  // NOTE: the kernels' unit sizing assumes output rows and columns (ceil_div(ho, r_blocks) with
  // r_blocks = min(.., ho) divides by zero). grad_x runs here too, with ho = h and wo = w of an x
  // that padding alone gave a non-empty output (SIGFPE, tests/fuzz seed 11678).
  if (g.n == 0 || g.o == 0 || g.ho == 0 || g.wo == 0) return;
  const bool k3 = g.kh == 3 && g.kw == 3;
  switch (direct_kernel<T>(g)) {
    case DirectKernel::rowwise:
      if (g.o == 1 && k3) {
        forward_direct_rows<T, Act, 1, kSingleNV, 3>(x, w, b, y, g);
      } else if (g.o == 1) {
        forward_direct_rows<T, Act, 1, kSingleNV>(x, w, b, y, g);
      } else if (k3) {
        forward_direct_rows<T, Act, kDirectOB, kRowwiseNV, 3>(x, w, b, y, g);
      } else {
        forward_direct_rows<T, Act, kDirectOB, kRowwiseNV>(x, w, b, y, g);
      }
      return;
    case DirectKernel::lines:
      if (k3) {
        forward_lines<T, Act, kDirectOB, kRowwiseNV, 3>(x, w, b, y, g);
      } else {
        forward_lines<T, Act, kDirectOB, kRowwiseNV, 0>(x, w, b, y, g);
      }
      return;
    case DirectKernel::ochan:
      forward_direct_ochan<T>(x, w, b, y, g, Act);
      return;
    default:
      if (g.o == 1) {
        forward_direct<T, Act, 1, kSingleNV>(x, w, b, y, g);
      } else {
        forward_direct<T, Act, kDirectOB, kDirectNV>(x, w, b, y, g);
      }
  }
}

inline const char* direct_kernel_name(DirectKernel k) {
  return k == DirectKernel::rowwise ? "direct row-wise"
         : k == DirectKernel::lines ? "direct line-aligned"
         : k == DirectKernel::ochan ? "direct channel-vector"
                                    : "direct flat";
}

// ---------------------------------------------------------------------------- im2col + GEMM

template <typename T>
void forward_im2col(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g,
                    GemmActivation act) {
  const int64_t k = g.c * g.kh * g.kw;
  const int64_t plane = g.ho * g.wo;
  const int64_t rc = chunk_rows(g);
  const int64_t col_elems = round_up(std::max<int64_t>(1, k) * rc * g.wo, 16);
  const int threads = runtime::num_threads();
  // Enough images for every thread: one per task, GEMMs single-threaded; else the GEMM threads.
  const int64_t tasks = g.n >= threads ? threads : 1;
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv, static_cast<size_t>(tasks * col_elems) * sizeof(T)));
  GemmEpilogue<T> ep;
  ep.bias_row = b;
  ep.activation = act;
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* col = ws + t * col_elems;
      for (int64_t n = g.n * t / tasks; n < g.n * (t + 1) / tasks; ++n) {
        const T* xn = x + n * g.c * g.h * g.w;
        T* yn = y + n * g.o * plane;
        for (int64_t oy0 = 0; oy0 < g.ho; oy0 += rc) {
          const int64_t oy1 = std::min(g.ho, oy0 + rc);
          const int64_t pc = (oy1 - oy0) * g.wo;
          im2col(xn, g, oy0, oy1, col);
          NNFAST_ISA_NS::gemm_ex<T>(false, false, g.o, pc, k, T(1), w, k, col, pc, T(0),
                                    yn + oy0 * g.wo, plane, ep);
        }
      }
    }
  });
}

template <typename T, GemmActivation Act>
Conv2dAlgorithm forward_act(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g,
                            Conv2dAlgorithm algo) {
  if (algo == Conv2dAlgorithm::automatic) algo = conv2d_choose_algorithm(g);
  if (algo == Conv2dAlgorithm::direct && (g.sh != 1 || g.sw != 1)) algo = Conv2dAlgorithm::im2col;
  if (algo == Conv2dAlgorithm::direct) {
    run_direct<T, Act>(x, w, b, y, g);
  } else {
    forward_im2col<T>(x, w, b, y, g, Act);
  }
  return algo;
}

// ---------------------------------------------------------------------------- backward

template <typename T>
void bias_grad(const T* gy, T* gb, const Conv2dGeometry& g) {
  using S = Simd<T>;
  constexpr int W = S::width;
  const int64_t plane = g.ho * g.wo;
  const int64_t grain =
      std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, g.n * plane));
  runtime::parallel_for(g.o, grain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      auto acc = S::zero();
      T tail = T(0);
      for (int64_t n = 0; n < g.n; ++n) {
        const T* p = gy + (n * g.o + o) * plane;
        int64_t q = 0;
        for (; q + W <= plane; q += W) acc = S::add(acc, S::loadu(p + q));
        for (; q < plane; ++q) tail += p[q];
      }
      gb[o] = S::reduce_add(acc) + tail;
    }
  });
}

// Weight-gradient register tile: OB output channels x TB taps.
#if defined(NNFAST_SIMD_AVX512)
constexpr int kWgradOB = 4, kWgradTB = 6;
#else
constexpr int kWgradOB = 2, kWgradTB = 5;
#endif

// grad_w[o][t] over a batch of images held in padded layouts (stride 1): x as pad_unit builds it
// (xstride elements per image) and grad_y as planes of u.wp columns with zeros in the dropped
// columns (nqp positions per channel, channels padded with zero planes to a multiple of OB).
// Each (o, tap) is a dot product over positions, summed lane-wise over every image of the batch,
// then across lanes; the batch's sums are stored (first) or added to part (o x taps).
// With `valid` (1 at real positions, 0 at dropped columns and the tail), x is zeroed at dropped
// positions first: their grad_y is 0, and 0 * inf would put a NaN into grad_w.
template <typename T>
void wgrad_batch(const T* xps, const T* gyps, int64_t nimg, int64_t xstride, int64_t gstride,
                 int64_t nqp, const int64_t* tap_off, const Conv2dGeometry& g, bool first,
                 const T* valid, T* part) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  constexpr int OB = kWgradOB, TB = kWgradTB;
  const int64_t taps = g.c * g.kh * g.kw;
  for (int64_t o0 = 0; o0 < g.o; o0 += OB) {
    for (int64_t t0 = 0; t0 < taps; t0 += TB) {
      int64_t off[TB];
      for (int k = 0; k < TB; ++k) off[k] = t0 + k < taps ? tap_off[t0 + k] : 0;
      Reg acc[OB][TB];
#pragma GCC unroll 8
      for (int a = 0; a < OB; ++a) {
#pragma GCC unroll 8
        for (int k = 0; k < TB; ++k) acc[a][k] = S::zero();
      }
      for (int64_t n = 0; n < nimg; ++n) {
        const T* gp = gyps + n * gstride + o0 * nqp;
        const T* xb = xps + n * xstride;
        for (int64_t q = 0; q < nqp; q += W) {
          const auto keep = S::cmp_gt(valid != nullptr ? S::loadu(valid + q) : S::set1(T(1)),
                                      S::zero());
          Reg gv[OB];
#pragma GCC unroll 8
          for (int a = 0; a < OB; ++a) gv[a] = S::loadu(gp + a * nqp + q);
#pragma GCC unroll 8
          for (int k = 0; k < TB; ++k) {
            Reg xv = S::loadu(xb + off[k] + q);
            if (valid != nullptr) xv = S::select(keep, xv, S::zero());
#pragma GCC unroll 8
            for (int a = 0; a < OB; ++a) acc[a][k] = S::fmadd(gv[a], xv, acc[a][k]);
          }
        }
      }
      for (int a = 0; a < OB && o0 + a < g.o; ++a) {
        for (int k = 0; k < TB && t0 + k < taps; ++k) {
          const T v = S::reduce_add(acc[a][k]);
          T& dst = part[(o0 + a) * taps + t0 + k];
          dst = first ? v : dst + v;
        }
      }
    }
  }
}

// grad_w for stride 1 without unfolding: images in fixed groups (partials summed in group order,
// so any thread count gives the same bits), each group in batches that fit the scratch budget.
template <typename T>
void wgrad_direct(const T* x, const T* gy, T* gw, const Conv2dGeometry& g) {
  constexpr int W = Simd<T>::width;
  const int64_t taps = g.c * g.kh * g.kw;
  const DirectUnit u = direct_unit<T, kDirectNV>(g, g.ho);
  const int64_t nqp = round_up(u.nq, W);
  const int64_t opad = round_up(g.o, kWgradOB);
  const int64_t xstride = round_up(g.c * u.cs, 16);
  const int64_t gstride = round_up(opad * nqp, 16);
  const int64_t per_image = xstride + gstride;
  int64_t groups = std::min(g.n, kMaxGroups);
  groups = std::max<int64_t>(1, std::min(groups, kPartialElems / (taps * g.o)));
  const int64_t group_max = ceil_div(g.n, groups);
  // NOTE: every (channel block, tap block) of wgrad_batch streams the whole batch, so the batch
  // must stay in L2: with 4x the chunk (4 MB) a 64x16x28x28 grad_w re-read L3 96 times.
  const int64_t batch = std::max<int64_t>(1, std::min(group_max, kWgradBatchElems / per_image));
  const int threads = runtime::num_threads();
  const int64_t tasks = std::min<int64_t>(groups, threads);
  const int64_t part_elems = round_up(taps * g.o, 16);
  const int64_t offs = round_up(taps, 8);
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv,
      static_cast<size_t>(groups * part_elems + tasks * batch * per_image) * sizeof(T) +
          static_cast<size_t>(offs) * sizeof(int64_t)));
  T* parts = ws;
  int64_t* tap_off =
      reinterpret_cast<int64_t*>(ws + groups * part_elems + tasks * batch * per_image);
  for (int64_t ci = 0, t = 0; ci < g.c; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j, ++t) tap_off[t] = ci * u.cs + i * u.wp + j;
    }
  }
  // Only an infinite or NaN x needs the dropped positions masked (same bits otherwise).
  bool finite = true;
  const int64_t xn = g.n * g.c * g.h * g.w;
  for (int64_t e = 0; e < xn && finite; ++e) finite = std::isfinite(x[e]);
  std::vector<T> valid_mask;
  const T* valid = nullptr;
  if (!finite) {
    valid_mask.assign(static_cast<size_t>(nqp), T(0));
    for (int64_t q = 0; q < u.nq; ++q) valid_mask[static_cast<size_t>(q)] = q % u.wp < g.wo;
    valid = valid_mask.data();
  }
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xps = ws + groups * part_elems + t * batch * per_image;
      T* gyps = xps + batch * xstride;
      for (int64_t grp = groups * t / tasks; grp < groups * (t + 1) / tasks; ++grp) {
        const int64_t n0 = g.n * grp / groups, n1 = g.n * (grp + 1) / groups;
        for (int64_t b0 = n0; b0 < n1; b0 += batch) {
          const int64_t nb = std::min(batch, n1 - b0);
          for (int64_t k = 0; k < nb; ++k) {
            const int64_t n = b0 + k;
            pad_unit(x + n * g.c * g.h * g.w, g, 0, g.ho, u, xps + k * xstride);
            T* gp = gyps + k * gstride;
            std::fill(gp, gp + opad * nqp, T(0));
            for (int64_t o = 0; o < g.o; ++o) {
              for (int64_t oy = 0; oy < g.ho; ++oy) {
                const T* src = gy + ((n * g.o + o) * g.ho + oy) * g.wo;
                T* dst = gp + o * nqp + oy * u.wp;
                for (int64_t ox = 0; ox < g.wo; ++ox) dst[ox] = src[ox];
              }
            }
          }
          wgrad_batch(xps, gyps, nb, xstride, gstride, nqp, tap_off, g, b0 == n0, valid,
                      parts + grp * part_elems);
        }
      }
    }
  });
  for (int64_t e = 0; e < g.o * taps; ++e) {
    T sum = parts[e];
    for (int64_t grp = 1; grp < groups; ++grp) sum += parts[grp * part_elems + e];
    gw[e] = sum;
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (both at most the vector width).
template <typename T>
inline void transpose_tile(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst,
                           int64_t ldd) {
#if defined(NNFAST_SIMD_AVX512)
  if constexpr (std::is_same_v<T, float>) {
    using S = Simd<T>;
    __m512 r[16];
    for (int l = 0; l < 16; ++l) r[l] = l < rows ? S::load_partial(src + l * lds, cols) : S::zero();
    transpose_16x16(r);
    for (int l = 0; l < cols; ++l) S::store_partial(dst + l * ldd, r[l], rows);
    return;
  }
#endif
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) dst[c * ldd + r] = src[r * lds + c];
  }
}

// ---- channel-vector weight gradient (stride 1, wide layers)
//
// grad_w^T[tap][o] = sum over positions of x[pos + tap] * grad_y^T[pos][o]: per image, grad_y is
// transposed position-major (channels padded to whole blocks with zeros) and x into padded
// channel-last rows (xil[(r * wr + q) * c + ci]), so the taps (i, j, ci0 .. ci0 + R) of a register
// tile are R consecutive floats broadcast at every position, and NV vectors of channels
// accumulate over every position of every image with no horizontal sums and no padding columns.

// acc[k][l] (+)= sum over the images and output positions of xil[pix + k] * gyt[pos][l], where xil
// and gyt point at the tile's first tap and channel; part (R rows of NV * W, row stride ldp) is
// stored (first) or added.
template <typename T, int R>
void wgrad_ochan_tile(const T* xil, const T* gyt, int64_t nimg, int64_t xstride, int64_t gstride,
                      int64_t gld, int64_t wr, const Conv2dGeometry& g, bool first, T* part,
                      int64_t ldp) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width, NV = kOchanNV;
  Reg acc[R][NV];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[k][v] = S::zero();
  }
  for (int64_t n = 0; n < nimg; ++n) {
    const T* gp = gyt + n * gstride;
    for (int64_t oy = 0; oy < g.ho; ++oy) {
      const T* xp = xil + n * xstride + oy * wr * g.c;
      for (int64_t ox = 0; ox < g.wo; ++ox, xp += g.c, gp += gld) rank1_update<T>(acc, xp, gp);
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      T* dst = part + k * ldp + v * W;
      S::storeu(dst, first ? acc[k][v] : S::add(S::loadu(dst), acc[k][v]));
    }
  }
}

// wgrad_ochan_tile for r <= R taps.
template <typename T, int R = kOchanP>
void wgrad_ochan_tile_n(int64_t r, const T* xil, const T* gyt, int64_t nimg, int64_t xstride,
                        int64_t gstride, int64_t gld, int64_t wr, const Conv2dGeometry& g,
                        bool first, T* part, int64_t ldp) {
  if constexpr (R > 1) {
    if (r < R) {
      return wgrad_ochan_tile_n<T, R - 1>(r, xil, gyt, nimg, xstride, gstride, gld, wr, g, first,
                                          part, ldp);
    }
  }
  wgrad_ochan_tile<T, R>(xil, gyt, nimg, xstride, gstride, gld, wr, g, first, part, ldp);
}

// Whether the channel-vector weight gradient does more useful lanes than wgrad_direct (whose
// positions include the padding columns): at least 8 input channels make its tap runs long.
template <typename T>
bool wgrad_ochan_preferred(const Conv2dGeometry& g) {
  constexpr int W = Simd<T>::width;
  if (g.c < 8) return false;
  const double ochan = double(g.o) / double(round_up(g.o, kOchanNV * W));
  const int64_t wp = g.wo + g.kw - 1;
  const double direct = double(g.o) / double(round_up(g.o, kWgradOB)) * double(g.ho * g.wo) /
                        double(round_up(g.ho * wp, W));
  return ochan >= direct;
}

template <typename T>
void wgrad_ochan(const T* x, const T* gy, T* gw, const Conv2dGeometry& g) {
  constexpr int W = Simd<T>::width, NW = kOchanNV * W;
  const int64_t kk = g.kh * g.kw, taps = g.c * kk;
  const int64_t plane = g.ho * g.wo;
  const int64_t wr = g.wo + g.kw - 1, hr = g.ho + g.kh - 1;
  const int64_t opad = round_up(g.o, NW);
  const int64_t xstride = round_up(hr * wr * g.c, 16);
  const int64_t gstride = round_up(plane * opad, 16);
  const int64_t per_image = xstride + gstride;
  int64_t groups = std::min(g.n, kMaxGroups);
  groups = std::max<int64_t>(1, std::min(groups, kPartialElems / (taps * opad)));
  const int64_t group_max = ceil_div(g.n, groups);
  const int64_t batch = std::max<int64_t>(1, std::min(group_max, kChunkElems * 4 / per_image));
  const int threads = runtime::num_threads();
  const int64_t tasks = std::min<int64_t>(groups, threads);
  const int64_t part_elems = round_up(taps * opad, 16);
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv,
      static_cast<size_t>(groups * part_elems + tasks * batch * per_image) * sizeof(T)));
  T* parts = ws;
  // Each tap (i, j) in runs of at most kOchanP input channels, of balanced lengths.
  const int64_t runs = ceil_div(g.c, kOchanP);
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* xils = ws + groups * part_elems + t * batch * per_image;
      T* gyts = xils + batch * xstride;
      for (int64_t grp = groups * t / tasks; grp < groups * (t + 1) / tasks; ++grp) {
        const int64_t n0 = g.n * grp / groups, n1 = g.n * (grp + 1) / groups;
        T* part = parts + grp * part_elems;  // [tap (i, j, ci)][opad]
        for (int64_t b0 = n0; b0 < n1; b0 += batch) {
          const int64_t nb = std::min(batch, n1 - b0);
          for (int64_t k = 0; k < nb; ++k) {
            const T* xn = x + (b0 + k) * g.c * g.h * g.w;
            T* xil = xils + k * xstride;
            std::fill(xil, xil + hr * wr * g.c, T(0));
            const int64_t q0 = std::max<int64_t>(0, g.pl), q1 = std::min(wr, g.pl + g.w);
            for (int64_t r = 0; r < hr; ++r) {
              const int64_t iy = r - g.pt;
              if (iy < 0 || iy >= g.h || q1 <= q0) continue;
              for (int64_t c0 = 0; c0 < g.c; c0 += W) {
                for (int64_t qa = q0; qa < q1; qa += W) {
                  transpose_tile(xn + (c0 * g.h + iy) * g.w + qa - g.pl, g.h * g.w,
                                 std::min<int64_t>(W, g.c - c0), std::min<int64_t>(W, q1 - qa),
                                 xil + (r * wr + qa) * g.c + c0, g.c);
                }
              }
            }
            const T* gyn = gy + (b0 + k) * g.o * plane;
            T* gyt = gyts + k * gstride;
            for (int64_t o0 = 0; o0 < opad; o0 += W) {
              for (int64_t p0 = 0; p0 < plane; p0 += W) {
                const int64_t pn = std::min<int64_t>(W, plane - p0);
                if (o0 < g.o) {
                  transpose_tile(gyn + o0 * plane + p0, plane, std::min<int64_t>(W, g.o - o0), pn,
                                 gyt + p0 * opad + o0, opad);
                }
                for (int64_t p = p0; p < p0 + pn; ++p) {
                  for (int64_t o = std::max(o0, g.o); o < o0 + W; ++o) gyt[p * opad + o] = T(0);
                }
              }
            }
          }
          for (int64_t o0 = 0; o0 < opad; o0 += NW) {
            for (int64_t ij = 0; ij < kk; ++ij) {
              const int64_t i = ij / g.kw, j = ij % g.kw;
              for (int64_t run = 0; run < runs; ++run) {
                const int64_t c0 = g.c * run / runs, c1 = g.c * (run + 1) / runs;
                wgrad_ochan_tile_n<T>(c1 - c0, xils + (i * wr + j) * g.c + c0, gyts + o0, nb,
                                      xstride, gstride, opad, wr, g, b0 == n0,
                                      part + (ij * g.c + c0) * opad + o0, opad);
              }
            }
          }
        }
      }
    }
  });
  // gw[o][ci, i, j] = the sum over the groups, in group order.
  for (int64_t grp = 1; grp < groups; ++grp) {
    const T* src = parts + grp * part_elems;
    for (int64_t e = 0; e < taps * opad; ++e) parts[e] += src[e];
  }
  for (int64_t ij = 0; ij < kk; ++ij) {
    for (int64_t ci = 0; ci < g.c; ++ci) {
      const T* src = parts + (ij * g.c + ci) * opad;
      for (int64_t o = 0; o < g.o; ++o) gw[(o * g.c + ci) * kk + ij] = src[o];
    }
  }
}

// Stride 1 with padding no wider than the kernel: grad_x is the convolution of grad_y with the
// flipped, transposed kernel and the complementary padding (grad_x_geometry).
inline bool grad_x_direct(const Conv2dGeometry& g) {
  return g.sh == 1 && g.sw == 1 && g.pt <= g.kh - 1 && g.pl <= g.kw - 1;
}

inline Conv2dGeometry grad_x_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry gt = g;
  gt.c = g.o;
  gt.h = g.ho;
  gt.w = g.wo;
  gt.o = g.c;
  gt.pt = g.kh - 1 - g.pt;
  gt.pl = g.kw - 1 - g.pl;
  gt.ho = g.h;
  gt.wo = g.w;
  return gt;
}

template <typename T>
void backward_impl(const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb,
                   const Conv2dGeometry& g) {
  const int64_t k = g.c * g.kh * g.kw;
  const int64_t plane = g.ho * g.wo;
  bias_grad(gy, gb, g);
  // No images, taps or output channels: the weight-gradient kernels size their partials by
  // taps * o and leave them unwritten without images. (An x with no rows or columns needs no
  // case here: its zero padding gives grad_w = 0 and its grad_x is empty.)
  if (g.n == 0 || k == 0 || g.o == 0) {
    std::fill(gw, gw + g.o * k, T(0));
    if (gx != nullptr) std::fill(gx, gx + g.n * g.c * g.h * g.w, T(0));
    return;
  }
  // Stride 1: grad_x is the convolution of grad_y with the flipped, transposed kernel and the
  // complementary padding, so it runs on the direct forward kernel (no col2im scatter).
  // NOTE: not with a NaN/inf in w: the padding zeros it meets would give 0 * inf = NaN at the
  // border, where the reference (and col2im) add only the taps that exist.
  bool w_finite = true;
  for (int64_t e = 0; e < g.o * k && w_finite; ++e) w_finite = std::isfinite(w[e]);
  if (gx != nullptr && w_finite && grad_x_direct(g)) {
    const int64_t kk = g.kh * g.kw;
    T* wflip = static_cast<T*>(runtime::thread_workspace(
        runtime::WorkspaceSlot::misc, static_cast<size_t>(g.c * g.o * kk) * sizeof(T)));
    for (int64_t o = 0; o < g.o; ++o) {
      for (int64_t ci = 0; ci < g.c; ++ci) {
        for (int64_t t = 0; t < kk; ++t) {
          wflip[(ci * g.o + o) * kk + t] = w[(o * g.c + ci) * kk + (kk - 1 - t)];
        }
      }
    }
    run_direct<T, GemmActivation::linear>(gy, wflip, static_cast<const T*>(nullptr), gx,
                                          grad_x_geometry(g));
    gx = nullptr;
  }
  // NOTE: grad_w never depends on need_grad_x: stride 1 always takes the direct path for it.
  const bool gw_done = g.sh == 1 && g.sw == 1;
  if (gw_done) {
    if (wgrad_ochan_preferred<T>(g)) {
      wgrad_ochan(x, gy, gw, g);
    } else {
      wgrad_direct(x, gy, gw, g);
    }
    if (gx == nullptr) return;
  }
  // Images are split into `groups` fixed runs, each summing its grad_w^T (k x o) partial; the
  // partials are then added in group order, so the result is the same for any thread count.
  int64_t groups = std::min(g.n, kMaxGroups);
  groups = std::max<int64_t>(1, std::min(groups, kPartialElems / (k * g.o)));
  const int64_t rc = chunk_rows(g);
  const int64_t col_elems = round_up(k * rc * g.wo, 16);
  const int64_t part_elems = round_up(k * g.o, 16);
  const int threads = runtime::num_threads();
  const int64_t tasks = std::min<int64_t>(groups, threads);
  const int64_t per_task = col_elems * (gx != nullptr ? 2 : 1);
  T* ws = static_cast<T*>(runtime::thread_workspace(
      runtime::WorkspaceSlot::conv,
      static_cast<size_t>(groups * part_elems + tasks * per_task) * sizeof(T)));
  T* parts = ws;
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T* col = ws + groups * part_elems + t * per_task;
      T* dcol = col + col_elems;
      for (int64_t grp = groups * t / tasks; grp < groups * (t + 1) / tasks; ++grp) {
        T* part = parts + grp * part_elems;
        bool first = true;
        for (int64_t n = g.n * grp / groups; n < g.n * (grp + 1) / groups; ++n) {
          const T* xn = x + n * g.c * g.h * g.w;
          const T* gyn = gy + n * g.o * plane;
          T* gxn = gx != nullptr ? gx + n * g.c * g.h * g.w : nullptr;
          if (gxn != nullptr) std::fill(gxn, gxn + g.c * g.h * g.w, T(0));
          for (int64_t oy0 = 0; oy0 < g.ho; oy0 += rc) {
            const int64_t oy1 = std::min(g.ho, oy0 + rc);
            const int64_t pc = (oy1 - oy0) * g.wo;
            if (!gw_done) {
              im2col(xn, g, oy0, oy1, col);
              // grad_w^T (k x o) += col (k x pc) gy_chunk^T (gy_chunk: o x pc, row stride plane)
              NNFAST_ISA_NS::gemm_ex<T>(false, true, k, g.o, pc, T(1), col, pc, gyn + oy0 * g.wo,
                                        plane, first ? T(0) : T(1), part, g.o, GemmEpilogue<T>{});
              first = false;
            }
            if (gxn != nullptr) {
              // dcol (k x pc) = w^T (k x o) gy_chunk (o x pc), then folded back onto grad_x.
              NNFAST_ISA_NS::gemm_ex<T>(true, false, k, pc, g.o, T(1), w, k, gyn + oy0 * g.wo,
                                        plane, T(0), dcol, pc, GemmEpilogue<T>{});
              col2im_add(dcol, g, oy0, oy1, gxn);
            }
          }
        }
      }
    }
  });
  if (gw_done) return;
  runtime::parallel_for(g.o, std::max<int64_t>(1, 4096 / (k * groups)),
                        [&](int64_t begin, int64_t end) {
                          for (int64_t o = begin; o < end; ++o) {
                            for (int64_t t = 0; t < k; ++t) {
                              T s = parts[t * g.o + o];
                              for (int64_t grp = 1; grp < groups; ++grp) {
                                s += parts[grp * part_elems + t * g.o + o];
                              }
                              gw[o * k + t] = s;
                            }
                          }
                        });
}

}  // namespace

template <typename T>
Conv2dAlgorithm conv2d_forward(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g,
                               GemmActivation act, Conv2dAlgorithm algo) {
  if (g.n == 0 || g.o == 0 || g.ho == 0 || g.wo == 0) return algo;
  switch (act) {
    case GemmActivation::relu:
      return forward_act<T, GemmActivation::relu>(x, w, b, y, g, algo);
    case GemmActivation::sigmoid:
      return forward_act<T, GemmActivation::sigmoid>(x, w, b, y, g, algo);
    case GemmActivation::tanh:
      return forward_act<T, GemmActivation::tanh>(x, w, b, y, g, algo);
    default:
      return forward_act<T, GemmActivation::linear>(x, w, b, y, g, algo);
  }
}

template <typename T>
void conv2d_backward(const T* x, const T* w, const T* gy, T* grad_x, T* grad_w, T* grad_b,
                     const Conv2dGeometry& g) {
  backward_impl(x, w, gy, grad_x, grad_w, grad_b, g);
}

template <typename T>
std::string conv2d_kernels(const Conv2dGeometry& g) {
  const bool stride1 = g.sh == 1 && g.sw == 1;
  const bool direct = conv2d_choose_algorithm(g) == Conv2dAlgorithm::direct && stride1;
  std::string s = "forward ";
  s += direct ? direct_kernel_name(direct_kernel<T>(g)) : "im2col + GEMM";
  s += "; grad_x ";
  s +=
      grad_x_direct(g) ? direct_kernel_name(direct_kernel<T>(grad_x_geometry(g))) : "GEMM + col2im";
  s += "; grad_w ";
  s += !stride1 ? "im2col + GEMM" : wgrad_ochan_preferred<T>(g) ? "channel-vector" : "direct";
  return s;
}

template Conv2dAlgorithm conv2d_forward<float>(const float*, const float*, const float*, float*,
                                               const Conv2dGeometry&, GemmActivation,
                                               Conv2dAlgorithm);
template Conv2dAlgorithm conv2d_forward<double>(const double*, const double*, const double*,
                                                double*, const Conv2dGeometry&, GemmActivation,
                                                Conv2dAlgorithm);
template void conv2d_backward<float>(const float*, const float*, const float*, float*, float*,
                                     float*, const Conv2dGeometry&);
template void conv2d_backward<double>(const double*, const double*, const double*, double*, double*,
                                      double*, const Conv2dGeometry&);
template std::string conv2d_kernels<float>(const Conv2dGeometry&);
template std::string conv2d_kernels<double>(const Conv2dGeometry&);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
