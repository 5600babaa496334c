// Inverted dropout with a counter-based generator, declared for every ISA.
//
// The mask depends only on (seed, p, element index), never on the thread count, the ISA or the
// dtype. Element i of the flat array (C order) is kept when
//
//   B = i >> 6, k = (i >> 4) & 3, c = 16 * B + (i & 15)                (c: a 64-bit counter)
//   (r0, r1, r2, r3) = Philox4x32-10(counter (lo32(c), hi32(c), 0, 0), key (lo32(seed), hi32(seed)))
//   keep = r_k >= t,   t = floor(p * 2^32) (exact in double; p in [0, 1) gives t <= 2^32 - 1)
//
// so each block of 64 elements takes the 4 words of 16 consecutive counters, word k for elements
// 16k..16k+15 of the block (a layout every vector width reads contiguously). Philox4x32-10 is
// Salmon et al.'s (SC11, Random123): 10 rounds of
//   (hi0, lo0) = 0xD2511F53 * c0, (hi1, lo1) = 0xCD9E8D57 * c2 (32 x 32 -> 64-bit products),
//   (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0),
// the key bumped by (0x9E3779B9, 0xBB67AE85) after each round (mod 2^32).
//
// The scaled mask is m = keep ? scale : 0 with scale = T(1 / (1 - p)) (computed in double,
// rounded to T once), and y = x * m (as torch's x * mask: a dropped NaN or inf gives NaN).
// dropout_backward is the same product with grad_y. nnfast.reference.dropout_keep is this rule
// in NumPy.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#define NNFAST_DECLARE_DROPOUT(isa)                                                            \
  namespace isa {                                                                              \
  /* y[i] = x[i] * m[i] (x null: y[i] = m[i]); threshold 0 with scale 1 (p = 0) copies x. x    \
     may equal y. */                                                                           \
  template <typename T>                                                                        \
  void dropout(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, T scale);       \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_DROPOUT)

template <typename T>
void dropout(const T* x, T* y, int64_t n, uint64_t seed, uint32_t threshold, T scale) {
  NNFAST_DISPATCH(dropout<T>, x, y, n, seed, threshold, scale);
}

}  // namespace nnfast
