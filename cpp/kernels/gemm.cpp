// Packed, cache-blocked GEMM with register-tiled micro-kernels; compiled once per ISA.
//
// Loop nest (Goto/BLIS): for each NC-wide column block of C, for each KC-deep slice of K, pack
// op(B)[KC x NC] into NR-wide micro-panels; for each MC-tall row block, pack op(A)[MC x KC] into
// MR-tall micro-panels; then for each A micro-panel (held in L1), for each B micro-panel
// (streamed from L2) run the micro-kernel on that MR x NR tile of C, which keeps the whole
// MR x NR tile of C in registers for the KC-long dot products and stores it once through the
// epilogue (alpha, beta, bias, activation). Packing zero-pads partial panels, so the micro-kernel
// never has a scalar tail; partial tiles are stored with masked/partial vector stores.
//
// Threads: C is split into a tm x tn grid of MR/NR-aligned parts, one per thread, chosen to
// minimise the largest part's compute plus packing; each thread packs its own panels, except an
// operand that every part needs whole, which the threads pack once together first. Every
// element of C is computed by the same instruction sequence whatever the grid (the K blocking
// depends only on k), so results are bit-identical for any thread count.
#include "kernels/gemm.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/gemm_epilogue.h"
#include "kernels/simd.h"
#include "runtime/threadpool.h"
#include "runtime/tuning.h"
#include "runtime/workspace.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Register tile and cache blocking per ISA and type. MR rows x NRV vectors of C live in
// registers: AVX-512 has 32 registers (24 accumulators + 2 B vectors + broadcasts), AVX2/SSE 16
// (12 accumulators). Loop order (gemm_part), kStreamB: one packed KC x MR micro-panel of A stays
// in L1 (12 x 512 f32 = 24 KiB of 48 KiB) while every KC x NR micro-panel of the packed KC x NC
// block of B streams past it from L2 (512 x 768 f32 = 1.5 MiB of the 2 MiB L2 on the Xeon these
// were measured on). Measured single-thread against the FMA probe, under load, AVX-512: f32
// 1024^3 and 2048^3 64-70 % -> 71-74 % of peak, f64 52-60 % -> 62-66 %, against the other order
// (one B micro-panel reused by every A micro-panel of a row block) with KC = 1024, NC = 3072
// (its 128 KiB B micro-panel overflowed L1 and its B block L2). KC = 384 with NC = 1024 measured
// the same; KC = 256 lost 5-10 % (C re-read per slice, short micro-kernel runs). The AVX2
// kernel (6 x 16) measured 68-72 % with the other order and 47-52 % with kStreamB, so it
// keeps it.
template <typename T>
struct Blocking;

#if defined(NNFAST_SIMD_AVX512)
template <>
struct Blocking<float> {
  static constexpr int MR = 12, NRV = 2;
  static constexpr int64_t KC = 512, MC = 240, NC = 768;
  static constexpr bool kStreamB = true;
};
template <>
struct Blocking<double> {
  static constexpr int MR = 12, NRV = 2;
  static constexpr int64_t KC = 256, MC = 192, NC = 768;
  static constexpr bool kStreamB = true;
};
#elif defined(NNFAST_SIMD_AVX2) || defined(NNFAST_SIMD_SSE)
template <>
struct Blocking<float> {
  static constexpr int MR = 6, NRV = 2;
  static constexpr int64_t KC = 1024, MC = 192, NC = 3072;
  static constexpr bool kStreamB = false;
};
template <>
struct Blocking<double> {
  static constexpr int MR = 6, NRV = 2;
  static constexpr int64_t KC = 512, MC = 192, NC = 2048;
  static constexpr bool kStreamB = false;
};
#else
template <typename T>
struct Blocking {
  static constexpr int MR = 6, NRV = 2;
  static constexpr int64_t KC = 256, MC = 120, NC = 1024;
  static constexpr bool kStreamB = false;
};
#endif

// Edge tiles run a kernel of MR/3, 2MR/3 or MR rows and 1 or NRV vectors, the smallest that
// covers them, so a 256-row or 64-row product wastes no padded rows on a 12-row tile.
template <typename T>
constexpr int kRowStep = Blocking<T>::MR / 3;

// The packed A block (MC x KC) streams through L2 one L1-resident micro-panel at a time; this
// bound keeps it from evicting much of the B block there.
constexpr int64_t kABlockBytes = 384 * 1024;

// Rows per packed A block for K slices of depth kc: MC, or fewer when the slice is deep.
template <typename T>
int64_t max_block_rows(int64_t kc) {
  constexpr int MR = Blocking<T>::MR;
  const int64_t fit = kABlockBytes / (std::max<int64_t>(kc, 1) * static_cast<int64_t>(sizeof(T)));
  return std::max<int64_t>(MR, std::min<int64_t>(Blocking<T>::MC, fit / MR * MR));
}

// Largest operand packed once for all threads (see gemm_run); beyond it each part packs its own.
constexpr int64_t kSharedPackBytes = 8 << 20;

// Problems with at most this many multiply-adds skip packing (the tutorial's 8x2x4 batch).
constexpr int64_t kSmallFlops = 8 * 1024;
// Below this many multiply-adds (~10-20 us on one core) one thread does the whole product: waking
// a pool thread costs several microseconds even on an idle core.
constexpr int64_t kParallelFlops = 1 << 20;

template <typename T>
struct Problem {
  bool trans_a, trans_b;
  int64_t m, n, k;
  T alpha;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T beta;
  T* c;
  int64_t ldc;
  GemmEpilogue<T> ep;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Width of the column blocks that cover `cols` columns of C: equal blocks (whole micro-panels) no
// wider than NC, or up to NC / 8 wider when that saves a block. 784 columns (the dense backward's
// grad_x) made one 768-wide block and a 16-wide one that re-packed all of A for 2 % of the work.
template <typename T>
int64_t block_cols(int64_t cols) {
  constexpr int64_t NR = Blocking<T>::NRV * Simd<T>::width;
  constexpr int64_t NC = Blocking<T>::NC;
  const int64_t blocks = ceil_div(std::max<int64_t>(cols, 1), NC + NC / 8);
  return round_up(ceil_div(std::max<int64_t>(cols, 1), blocks), NR);
}

// The widest block_cols<T>(c) for any c <= cols (packing space for the B block).
template <typename T>
int64_t max_block_cols(int64_t cols) {
  constexpr int64_t NR = Blocking<T>::NRV * Simd<T>::width;
  constexpr int64_t NC = Blocking<T>::NC;
  return std::min(round_up(NC + NC / 8, NR), round_up(std::max<int64_t>(cols, 1), NR));
}

#if defined(NNFAST_SIMD_AVX512) || defined(NNFAST_SIMD_AVX2)
// dst[i * ldd + j] = src[j * lds + i] for an 8 x 8 float block (AVX unpack/shuffle/permute).
inline void transpose_8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    r[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Transposes rows x cols of src (row stride lds) into dst (row stride ldd): dst[p][c] = src[c][p].
template <typename T>
inline void transpose_block(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst,
                            int64_t ldd) {
  int64_t c = 0;
#if defined(NNFAST_SIMD_AVX512) || defined(NNFAST_SIMD_AVX2)
  if constexpr (std::is_same_v<T, float>) {
    for (; c + 8 <= rows; c += 8) {
      int64_t p = 0;
      for (; p + 8 <= cols; p += 8) transpose_8x8(src + c * lds + p, lds, dst + p * ldd + c, ldd);
      for (; p < cols; ++p) {
        for (int64_t cc = c; cc < c + 8; ++cc) dst[p * ldd + cc] = src[cc * lds + p];
      }
    }
    for (; c + 4 <= rows; c += 4) {
      int64_t p = 0;
      for (; p + 4 <= cols; p += 4) {
        const float* s0 = src + c * lds + p;
        __m128 r0 = _mm_loadu_ps(s0), r1 = _mm_loadu_ps(s0 + lds);
        __m128 r2 = _mm_loadu_ps(s0 + 2 * lds), r3 = _mm_loadu_ps(s0 + 3 * lds);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + p * ldd + c, r0);
        _mm_storeu_ps(dst + (p + 1) * ldd + c, r1);
        _mm_storeu_ps(dst + (p + 2) * ldd + c, r2);
        _mm_storeu_ps(dst + (p + 3) * ldd + c, r3);
      }
      for (; p < cols; ++p) {
        for (int64_t cc = c; cc < c + 4; ++cc) dst[p * ldd + cc] = src[cc * lds + p];
      }
    }
  }
#endif
  for (; c < rows; ++c) {
    for (int64_t p = 0; p < cols; ++p) dst[p * ldd + c] = src[c * lds + p];
  }
}

// Rows of op(A) / op(B) along K copied per sweep over the panels when the source's panel slice
// is strided (one cache line or less per source row): a sweep reads each source row in order, so
// the hardware prefetchers follow it, where one panel at a time would touch a new page per row.
constexpr int64_t kPackSweep = 16;

// op(A)[i0:i0+mc, p0:p0+kc] -> MR-row micro-panels, each kc x MR (k-major), zero-padded rows.
template <typename T>
void pack_a_block(const Problem<T>& P, int64_t i0, int64_t mc, int64_t p0, int64_t kc, T* ap) {
  constexpr int MR = Blocking<T>::MR;
  if (!P.trans_a) {
    // Each panel's MR rows of A are contiguous along k: transposed in place into the panel.
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int64_t mr = std::min<int64_t>(MR, mc - ir);
      T* dst = ap + ir * kc;
      transpose_block(P.a + (i0 + ir) * P.lda + p0, P.lda, mr, kc, dst, MR);
      for (int64_t p = 0; mr < MR && p < kc; ++p) {
        for (int64_t r = mr; r < MR; ++r) dst[p * MR + r] = T(0);
      }
    }
    return;
  }
  // A is stored k x m: row p of A holds op(A)[:, p], MR contiguous elements per panel.
  for (int64_t q = 0; q < kc; q += kPackSweep) {
    const int64_t qn = std::min(kPackSweep, kc - q);
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int64_t mr = std::min<int64_t>(MR, mc - ir);
      const T* src = P.a + (p0 + q) * P.lda + i0 + ir;
      T* dst = ap + ir * kc + q * MR;
      if (mr == MR) {
        for (int64_t p = 0; p < qn; ++p) std::memcpy(dst + p * MR, src + p * P.lda, MR * sizeof(T));
      } else {
        for (int64_t p = 0; p < qn; ++p) {
          std::memcpy(dst + p * MR, src + p * P.lda, static_cast<size_t>(mr) * sizeof(T));
          for (int64_t r = mr; r < MR; ++r) dst[p * MR + r] = T(0);
        }
      }
    }
  }
}

// op(B)[p0:p0+kc, j0:j0+nc] -> NR-column micro-panels, each kc x NR (k-major), zero-padded.
template <typename T>
void pack_b_block(const Problem<T>& P, int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* bp) {
  using S = Simd<T>;
  constexpr int W = S::width;
  constexpr int NRV = Blocking<T>::NRV;
  constexpr int NR = NRV * W;
  if (!P.trans_b) {
    for (int64_t q = 0; q < kc; q += kPackSweep) {
      const int64_t qn = std::min(kPackSweep, kc - q);
      for (int64_t jr = 0; jr < nc; jr += NR) {
        const int64_t nr = std::min<int64_t>(NR, nc - jr);
        const T* src = P.b + (p0 + q) * P.ldb + j0 + jr;
        T* dst = bp + jr * kc + q * NR;
        if (nr == NR) {
          for (int64_t p = 0; p < qn; ++p) {
            for (int v = 0; v < NRV; ++v)
              S::storeu(dst + p * NR + v * W, S::loadu(src + p * P.ldb + v * W));
          }
        } else {
          for (int64_t p = 0; p < qn; ++p) {
            for (int v = 0; v < NRV; ++v) {
              const int64_t lanes = nr - v * W;
              const auto x = lanes >= W  ? S::loadu(src + p * P.ldb + v * W)
                             : lanes > 0 ? S::load_partial(src + p * P.ldb + v * W, lanes)
                                         : S::zero();
              S::storeu(dst + p * NR + v * W, x);
            }
          }
        }
      }
    }
    return;
  }
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t nr = std::min<int64_t>(NR, nc - jr);
    T* dst = bp + jr * kc;
    // B is stored n x k: each of the nr rows of B is contiguous along k. Transposed in 16-deep
    // slices so the slice of the panel being written stays in L1.
    const T* src = P.b + (j0 + jr) * P.ldb + p0;
    constexpr int64_t kSlice = 16;
    for (int64_t q = 0; q < kc; q += kSlice) {
      const int64_t qn = std::min(kSlice, kc - q);
      transpose_block(src + q, P.ldb, nr, qn, dst + q * NR, NR);
      for (int64_t c = nr; c < NR; ++c) {
        for (int64_t p = 0; p < qn; ++p) dst[(q + p) * NR + c] = T(0);
      }
    }
  }
}

// K steps ahead that the micro-kernel prefetches its packed panels (a hint: never faults).
constexpr int64_t kPrefetchSteps = 24;

// Finishes one register of C (lanes valid lanes at c): alpha, beta, bias, activation, store.
template <typename T, GemmActivation Act>
inline void finish_reg(typename Simd<T>::Reg acc, T* c, int64_t lanes, T alpha, T beta, bool scale,
                       const T* bias_col, T bias_row, bool last) {
  using S = Simd<T>;
  constexpr int W = S::width;
  const bool full = lanes >= W;
  auto r = scale ? S::mul(S::set1(alpha), acc) : acc;
  if (beta != T(0)) {
    const auto old = full ? S::loadu(c) : S::load_partial(c, lanes);
    r = beta == T(1) ? S::add(r, old) : S::fmadd(S::set1(beta), old, r);
  }
  if (last) {
    if (bias_col != nullptr)
      r = S::add(r, full ? S::loadu(bias_col) : S::load_partial(bias_col, lanes));
    if (bias_row != T(0)) r = S::add(r, S::set1(bias_row));
    r = epi::activate<Act, T>(r);
  }
  if (full) {
    S::storeu(c, r);
  } else {
    S::store_partial(c, r, lanes);
  }
}

// One tile of MRk rows x NRVk vectors: acc = A_panel * B_panel over kc (panels packed with MR /
// NR strides), then the epilogue into C (mr x nr valid).
template <typename T, GemmActivation Act, int MRk, int NRVk>
void micro_tile(int64_t kc, const T* __restrict ap, const T* __restrict bp, T* c, int64_t ldc,
                int64_t mr, int64_t nr, T alpha, T beta, const T* bias_col, const T* bias_row,
                bool last) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  constexpr int MR = Blocking<T>::MR;
  constexpr int NR = Blocking<T>::NRV * W;
  Reg acc[MRk][NRVk];
#pragma GCC unroll 32
  for (int i = 0; i < MRk; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NRVk; ++v) acc[i][v] = S::zero();
  }
  for (int64_t p = 0; p < kc; ++p) {
    // NOTE: the hardware prefetchers alone leave the B micro-panel (up to 128 KiB, beyond L1)
    // short of L1 at the top of each step; fetching kPrefetchSteps ahead measured +3-5 %.
    prefetch_read(bp + kPrefetchSteps * NR);
    if (NRVk * W * sizeof(T) > 64) prefetch_read(bp + kPrefetchSteps * NR + 64 / sizeof(T));
    prefetch_read(ap + kPrefetchSteps * MR);
    Reg bv[NRVk];
#pragma GCC unroll 8
    for (int v = 0; v < NRVk; ++v) bv[v] = S::loadu(bp + v * W);
#pragma GCC unroll 32
    for (int i = 0; i < MRk; ++i) {
      const Reg av = S::set1(ap[i]);
#pragma GCC unroll 8
      for (int v = 0; v < NRVk; ++v) acc[i][v] = S::fmadd(av, bv[v], acc[i][v]);
    }
    ap += MR;
    bp += NR;
  }
  const bool scale = alpha != T(1);
  for (int64_t i = 0; i < mr; ++i) {
    const T brow = bias_row != nullptr && last ? bias_row[i] : T(0);
    for (int v = 0; v < NRVk; ++v) {
      const int64_t lanes = nr - v * W;
      if (lanes <= 0) break;
      finish_reg<T, Act>(acc[i][v], c + i * ldc + v * W, lanes, alpha, beta, scale,
                         bias_col != nullptr ? bias_col + v * W : nullptr, brow, last);
    }
  }
}

template <typename T, GemmActivation Act, int NRVk, typename... Args>
inline void micro_tile_rows(int64_t mr, Args... args) {
  constexpr int step = kRowStep<T>;
  if (mr <= step) {
    micro_tile<T, Act, step, NRVk>(args...);
  } else if (mr <= 2 * step) {
    micro_tile<T, Act, 2 * step, NRVk>(args...);
  } else {
    micro_tile<T, Act, 3 * step, NRVk>(args...);
  }
}

// Runs the smallest tile kernel covering mr rows and nr columns.
template <typename T, GemmActivation Act>
inline void run_tile(int64_t kc, const T* ap, const T* bp, T* c, int64_t ldc, int64_t mr,
                     int64_t nr, T alpha, T beta, const T* bias_col, const T* bias_row, bool last) {
  static_assert(Blocking<T>::NRV == 2 && Blocking<T>::MR % 3 == 0, "tile variants assume these");
  if (nr <= Simd<T>::width) {
    micro_tile_rows<T, Act, 1>(mr, kc, ap, bp, c, ldc, mr, nr, alpha, beta, bias_col, bias_row,
                               last);
  } else {
    micro_tile_rows<T, Act, 2>(mr, kc, ap, bp, c, ldc, mr, nr, alpha, beta, bias_col, bias_row,
                               last);
  }
}

// op(A) or op(B) packed once for every part of C (see gemm_run): K slice pc (kc deep) of the
// micro-panel starting at row / column r is at a + pc * a_rows + r * kc (b, b_cols alike), the
// layout pack_a_block / pack_b_block give one row / column block.
template <typename T>
struct SharedPack {
  const T* a = nullptr;
  int64_t a_rows = 0;  // m rounded up to MR
  const T* b = nullptr;
  int64_t b_cols = 0;  // n rounded up to NR
};

// Computes rows [m0, m1) x columns [n0, n1) of C with packing space ap / bp, or the shared
// packed op(A) / op(B) (then the part spans all rows / columns).
template <typename T, GemmActivation Act>
void gemm_part(const Problem<T>& P, int64_t kc_block, int64_t m0, int64_t m1, int64_t n0,
               int64_t n1, T* ap, T* bp, const SharedPack<T>& shared) {
  constexpr int MR = Blocking<T>::MR;
  constexpr int NR = Blocking<T>::NRV * Simd<T>::width;
  const int64_t NC = block_cols<T>(n1 - n0);
  // Row blocks of equal size (in whole micro-panels) no taller than MC: no thin last block.
  const int64_t panels = ceil_div(m1 - m0, MR);
  const int64_t MC = ceil_div(panels, ceil_div(panels, max_block_rows<T>(kc_block) / MR)) * MR;
  const int64_t k = P.k;
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min(NC, n1 - jc);
    int64_t pc = 0;
    do {
      const int64_t kc = std::min(kc_block, k - pc);
      const bool first = pc == 0;
      const bool last = pc + kc >= k;
      const T beta = first ? P.beta : T(1);
      const T* bpk = bp;
      if (shared.b != nullptr) {
        bpk = shared.b + pc * shared.b_cols + jc * kc;
      } else {
        pack_b_block(P, pc, kc, jc, nc, bp);
      }
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min(MC, m1 - ic);
        const T* apk = ap;
        if (shared.a != nullptr) {
          apk = shared.a + pc * shared.a_rows + ic * kc;
        } else {
          pack_a_block(P, ic, mc, pc, kc, ap);
        }
        const auto tile = [&](int64_t ir, int64_t jr) {
          const int64_t mr = std::min<int64_t>(MR, mc - ir);
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const T* bias_row = P.ep.bias_row != nullptr ? P.ep.bias_row + ic + ir : nullptr;
          const T* bias_col = P.ep.bias_col != nullptr ? P.ep.bias_col + jc + jr : nullptr;
          run_tile<T, Act>(kc, apk + ir * kc, bpk + jr * kc, P.c + (ic + ir) * P.ldc + jc + jr,
                           P.ldc, mr, nr, P.alpha, beta, bias_col, bias_row, last);
        };
        if constexpr (Blocking<T>::kStreamB) {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            for (int64_t jr = 0; jr < nc; jr += NR) tile(ir, jr);
          }
        } else {
          for (int64_t jr = 0; jr < nc; jr += NR) {
            for (int64_t ir = 0; ir < mc; ir += MR) tile(ir, jr);
          }
        }
      }
      pc += kc;
    } while (pc < k);
  }
}

// Direct product without packing, for tiny problems: each row of C is built from vectors of
// op(B)'s rows (or dot products when B is transposed).
template <typename T, GemmActivation Act>
void gemm_small(const Problem<T>& P) {
  using S = Simd<T>;
  constexpr int W = S::width;
  const bool scale = P.alpha != T(1);
  for (int64_t i = 0; i < P.m; ++i) {
    T* crow = P.c + i * P.ldc;
    const T brow = P.ep.bias_row != nullptr ? P.ep.bias_row[i] : T(0);
    for (int64_t j = 0; j < P.n; j += W) {
      const int64_t lanes = std::min<int64_t>(W, P.n - j);
      typename S::Reg acc = S::zero();
      if (!P.trans_b) {
        for (int64_t p = 0; p < P.k; ++p) {
          const T aip = P.trans_a ? P.a[p * P.lda + i] : P.a[i * P.lda + p];
          const T* brow_p = P.b + p * P.ldb + j;
          acc = S::fmadd(S::set1(aip),
                         lanes == W ? S::loadu(brow_p) : S::load_partial(brow_p, lanes), acc);
        }
      } else {
        alignas(64) T tmp[W] = {};
        for (int64_t t = 0; t < lanes; ++t) {
          const T* bcol = P.b + (j + t) * P.ldb;
          T s = T(0);
          for (int64_t p = 0; p < P.k; ++p) {
            const T aip = P.trans_a ? P.a[p * P.lda + i] : P.a[i * P.lda + p];
            s += aip * bcol[p];
          }
          tmp[t] = s;
        }
        acc = S::loadu(tmp);
      }
      finish_reg<T, Act>(acc, crow + j, lanes, P.alpha, P.beta, scale,
                         P.ep.bias_col != nullptr ? P.ep.bias_col + j : nullptr, brow, true);
    }
    if (P.ep.activation == GemmActivation::softmax) epi::softmax_row(crow, P.n);
  }
}

struct Grid {
  int64_t tm, tn;
};

// Largest extent of the parts when `panels` panels of `step` covering `size` are split into
// `parts` contiguous runs as gemm_run does ([panels * t / parts, panels * (t + 1) / parts)).
inline int64_t largest_part(int64_t size, int64_t step, int64_t panels, int64_t parts) {
  int64_t largest = 0;
  for (int64_t t = 0; t < parts; ++t) {
    const int64_t lo = std::min(size, panels * t / parts * step);
    const int64_t hi = std::min(size, panels * (t + 1) / parts * step);
    largest = std::max(largest, hi - lo);
  }
  return largest;
}

// The tm x tn split of C (tm * tn <= threads) whose largest part costs least: its multiply-adds
// (one vector FMA per cycle) plus one unit per packed element; ties go to fewer threads.
template <typename T>
Grid choose_grid(int64_t m, int64_t n, int64_t k, int threads, bool rows_only) {
  constexpr int MR = Blocking<T>::MR;
  constexpr int NR = Blocking<T>::NRV * Simd<T>::width;
  const int64_t pm = ceil_div(m, MR), pn = ceil_div(n, NR);
  Grid best{1, 1};
  double best_cost = -1;
  for (int64_t count = 1; count <= threads; ++count) {
    for (int64_t tm = 1; tm <= count; ++tm) {
      if (count % tm != 0) continue;
      const int64_t tn = count / tm;
      if ((rows_only && tn != 1) || tm > pm || tn > pn) continue;
      // Edge tiles run kernels of MR/3-row and one-vector granularity (see run_tile).
      const double rows = static_cast<double>(round_up(largest_part(m, MR, pm, tm), kRowStep<T>));
      const double cols =
          static_cast<double>(round_up(largest_part(n, NR, pn, tn), Simd<T>::width));
      const double cost = rows * cols * static_cast<double>(k) / Simd<T>::width +
                          static_cast<double>(k) * (rows + cols);
      if (best_cost < 0 || cost < best_cost * 0.999) {
        best_cost = cost;
        best = Grid{tm, tn};
      }
    }
  }
  return best;
}

template <typename T, GemmActivation Act>
void gemm_run(const Problem<T>& P) {
  constexpr int MR = Blocking<T>::MR;
  constexpr int NR = Blocking<T>::NRV * Simd<T>::width;
  const int64_t flops = P.m * P.n * std::max<int64_t>(P.k, 1);
  if (flops <= kSmallFlops && P.k <= Blocking<T>::KC) {
    gemm_small<T, Act>(P);
    return;
  }
  // Balanced K blocks no deeper than KC: depends on k only, never on the thread count.
  const int64_t kb = std::max<int64_t>(1, ceil_div(P.k, Blocking<T>::KC));
  const int64_t kc_block = std::max<int64_t>(1, ceil_div(P.k, kb));
  const int threads = flops >= kParallelFlops ? runtime::num_threads() : 1;
  const bool rows_only = P.ep.activation == GemmActivation::softmax;
  const Grid g = choose_grid<T>(P.m, P.n, P.k, threads, rows_only);
  const int64_t pm = ceil_div(P.m, MR), pn = ceil_div(P.n, NR);
  const int64_t part_rows = ceil_div(pm, g.tm) * MR, part_cols = ceil_div(pn, g.tn) * NR;
  const int64_t m_pad = pm * MR, n_pad = pn * NR;
  // An operand every part packs in full (op(A) when the parts split only the columns, op(B) when
  // they split only the rows), or that one part packs once per column block, is packed once,
  // shared, by all threads first: at 256x784x512 on two threads each part re-packed all of x
  // (0.08 ms of ~1 ms), at 1024^3 all of A (1M elements).
  const int64_t elem_cap = kSharedPackBytes / static_cast<int64_t>(sizeof(T));
  const bool big = flops >= runtime::gemm_shared_pack_min_madds.load(std::memory_order_relaxed);
  const bool share_a = big && P.k > 0 && g.tm == 1 && (g.tn > 1 || block_cols<T>(P.n) < P.n) &&
                       m_pad <= elem_cap / P.k;
  const bool share_b =
      big && P.k > 0 && !share_a && g.tn == 1 && g.tm > 1 && n_pad <= elem_cap / P.k;
  const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t shared_elems = round_up(share_a ? m_pad * P.k : share_b ? n_pad * P.k : 0, line);
  const int64_t a_elems =
      share_a ? 0 : round_up(std::min(max_block_rows<T>(kc_block), part_rows), MR) * kc_block;
  const int64_t b_elems = share_b ? 0 : max_block_cols<T>(part_cols) * kc_block;
  const int64_t per_task = round_up(a_elems + b_elems, line);
  const int64_t tasks = g.tm * g.tn;
  T* ws = static_cast<T*>(
      runtime::thread_workspace(runtime::WorkspaceSlot::gemm,
                                static_cast<size_t>(shared_elems + per_task * tasks) * sizeof(T)));
  SharedPack<T> shared;
  if (share_a || share_b) {
    const int64_t panels = share_a ? pm : pn;
    runtime::parallel_for(panels, ceil_div(panels, tasks), [&](int64_t begin, int64_t end) {
      for (int64_t pc = 0; pc < P.k; pc += kc_block) {
        const int64_t kc = std::min(kc_block, P.k - pc);
        if (share_a) {
          const int64_t i0 = begin * MR, i1 = std::min(P.m, end * MR);
          pack_a_block(P, i0, i1 - i0, pc, kc, ws + pc * m_pad + i0 * kc);
        } else {
          const int64_t j0 = begin * NR, j1 = std::min(P.n, end * NR);
          pack_b_block(P, pc, kc, j0, j1 - j0, ws + pc * n_pad + j0 * kc);
        }
      }
    });
    shared = share_a ? SharedPack<T>{ws, m_pad, nullptr, 0} : SharedPack<T>{nullptr, 0, ws, n_pad};
  }
  ws += shared_elems;
  runtime::parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t / g.tn, tj = t % g.tn;
      const int64_t m0 = std::min(P.m, pm * ti / g.tm * MR);
      const int64_t m1 = std::min(P.m, pm * (ti + 1) / g.tm * MR);
      const int64_t n0 = std::min(P.n, pn * tj / g.tn * NR);
      const int64_t n1 = std::min(P.n, pn * (tj + 1) / g.tn * NR);
      if (m0 >= m1 || n0 >= n1) continue;
      T* ap = ws + t * per_task;
      gemm_part<T, Act>(P, kc_block, m0, m1, n0, n1, ap, ap + a_elems, shared);
      if (P.ep.activation == GemmActivation::softmax) {
        for (int64_t i = m0; i < m1; ++i) epi::softmax_row(P.c + i * P.ldc, P.n);
      }
    }
  });
}

}  // namespace

template <typename T>
void gemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
             int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
             const GemmEpilogue<T>& epilogue) {
  if (m <= 0 || n <= 0) return;
  Problem<T> P{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue};
  // NOTE: like BLAS, alpha == 0 means A and B are not read (their NaNs do not propagate).
  if (alpha == T(0)) P.k = 0;
  if (P.k <= 0) P.k = 0;
  switch (epilogue.activation) {
    case GemmActivation::relu:
      return gemm_run<T, GemmActivation::relu>(P);
    case GemmActivation::sigmoid:
      return gemm_run<T, GemmActivation::sigmoid>(P);
    case GemmActivation::tanh:
      return gemm_run<T, GemmActivation::tanh>(P);
    default:
      return gemm_run<T, GemmActivation::linear>(P);
  }
}

template void gemm_ex<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                             const float*, int64_t, float, float*, int64_t,
                             const GemmEpilogue<float>&);
template void gemm_ex<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                              const double*, int64_t, double, double*, int64_t,
                              const GemmEpilogue<double>&);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
