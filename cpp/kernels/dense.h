// Dense (fully connected) layer forward and backward, declared for every ISA.
//
// Keras/tutorial layout: x (batch, in), w (in, out), b (out,) or null, a (batch, out).
#pragma once

#include <cstdint>

#include "kernels/gemm.h"
#include "kernels/isa.h"

#define NNFAST_DECLARE_DENSE(isa)                                                                \
  namespace isa {                                                                                \
  /* a = act(x w + b): one GEMM, bias and activation fused into its store. */                    \
  template <typename T>                                                                          \
  void dense_forward(const T* x, const T* w, const T* b, T* a, int64_t batch, int64_t in,        \
                     int64_t out, GemmActivation act);                                           \
  /* dz = act'(a) * grad_a; grad_b = sum_rows dz; grad_w = x^T dz; grad_x = dz w^T. */           \
  template <typename T>                                                                          \
  void dense_backward(const T* x, const T* w, const T* a, const T* grad_a, T* grad_x, T* grad_w, \
                      T* grad_b, int64_t batch, int64_t in, int64_t out, GemmActivation act);    \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_DENSE)

template <typename T>
void dense_forward(const T* x, const T* w, const T* b, T* a, int64_t batch, int64_t in, int64_t out,
                   GemmActivation act) {
  NNFAST_DISPATCH(dense_forward<T>, x, w, b, a, batch, in, out, act);
}

template <typename T>
void dense_backward(const T* x, const T* w, const T* a, const T* grad_a, T* grad_x, T* grad_w,
                    T* grad_b, int64_t batch, int64_t in, int64_t out, GemmActivation act) {
  NNFAST_DISPATCH(dense_backward<T>, x, w, a, grad_a, grad_x, grad_w, grad_b, batch, in, out, act);
}
}  // namespace nnfast
