// General matrix multiply, C = act(alpha * op(A) * op(B) + beta * C + bias), declared for every
// ISA.
//
// Row-major throughout: op(A) is m x k, op(B) is k x n, C is m x n with leading dimensions (row
// strides, in elements) lda, ldb, ldc. trans_a means A is stored k x m (op(A) = A^T, read in
// place, never materialised); likewise trans_b with B stored n x k. beta == 0 means C is not
// read (NaN or garbage in C is ignored). Results do not depend on the thread count.
//
// Stable interface: other kernel families (conv2d via im2col) call nnfast::gemm / gemm_ex.
#pragma once

#include <cstdint>

#include "kernels/activation_list.h"
#include "kernels/isa.h"

namespace nnfast {

// The activation applied as C is stored (softmax: along each row of C) is a GemmActivation, one
// of kernels/activation_list.h's with fuse >= kFuseDense; the binding admits no other.

// What happens to each element of C after alpha * op(A) * op(B) + beta * C.
template <typename T>
struct GemmEpilogue {
  const T* bias_col = nullptr;  // length n: C[i][j] += bias_col[j] (dense layer bias)
  const T* bias_row = nullptr;  // length m: C[i][j] += bias_row[i] (conv2d bias per channel)
  GemmActivation activation = GemmActivation::linear;
};

#define NNFAST_DECLARE_GEMM(isa)                                                                 \
  namespace isa {                                                                                \
  /* C = act(alpha op(A) op(B) + beta C + bias); may throw std::bad_alloc (packing space). */    \
  template <typename T>                                                                          \
  void gemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, \
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,                  \
               const GemmEpilogue<T>& epilogue);                                                 \
  }

NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_GEMM)

// C = act(alpha op(A) op(B) + beta C + bias) on the active ISA.
template <typename T>
void gemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
             int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
             const GemmEpilogue<T>& epilogue) {
  NNFAST_DISPATCH(gemm_ex<T>, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                  epilogue);
}

// C = alpha op(A) op(B) + beta C on the active ISA.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  gemm_ex<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, GemmEpilogue<T>{});
}

}  // namespace nnfast
