// Loss kernels: sums for the loss values (accumulated in double over fixed blocks, so results
// are bit-identical for any thread count) and element-wise gradients, per ISA namespace.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#define NNFAST_DECLARE_LOSS(isa)                                                           \
  namespace isa {                                                                          \
  /* sum (p - t)^2 in double. */                                                           \
  template <typename T>                                                                    \
  double mse_sum(const T* p, const T* t, int64_t n);                                       \
  /* g = scale (p - t). */                                                                 \
  template <typename T>                                                                    \
  void mse_grad(const T* p, const T* t, T* g, int64_t n, T scale);                         \
  /* -sum t max(log p, -100) + (1 - t) max(log(1 - p), -100), in double. */               \
  template <typename T>                                                                    \
  double bce_sum(const T* p, const T* t, int64_t n);                                       \
  /* g = scale (p - t) / max(p (1 - p), 1e-12) (PyTorch's gradient). */                   \
  template <typename T>                                                                    \
  void bce_grad(const T* p, const T* t, T* g, int64_t n, T scale);                         \
  /* Rows of z (n, k) with class indices labels[n] (in [0, k)): returns the sum over rows  \
     of logsumexp(z) - z[label] and writes grad = scale (softmax(z) - onehot). */          \
  template <typename T>                                                                    \
  double softmax_ce_index(const T* z, const int64_t* labels, T* grad, int64_t n, int64_t k, \
                          T scale);                                                        \
  /* The same with target rows y (n, k) (one-hot or probabilities): the sum of            \
     sum_j y_j (logsumexp(z) - z_j), grad = scale (softmax(z) - y). */                     \
  template <typename T>                                                                    \
  double softmax_ce_dense(const T* z, const T* y, T* grad, int64_t n, int64_t k, T scale); \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_LOSS)

template <typename T>
double mse_sum(const T* p, const T* t, int64_t n) {
  NNFAST_DISPATCH(mse_sum<T>, p, t, n);
}
template <typename T>
void mse_grad(const T* p, const T* t, T* g, int64_t n, T scale) {
  NNFAST_DISPATCH(mse_grad<T>, p, t, g, n, scale);
}
template <typename T>
double bce_sum(const T* p, const T* t, int64_t n) {
  NNFAST_DISPATCH(bce_sum<T>, p, t, n);
}
template <typename T>
void bce_grad(const T* p, const T* t, T* g, int64_t n, T scale) {
  NNFAST_DISPATCH(bce_grad<T>, p, t, g, n, scale);
}
template <typename T>
double softmax_ce_index(const T* z, const int64_t* labels, T* grad, int64_t n, int64_t k,
                        T scale) {
  NNFAST_DISPATCH(softmax_ce_index<T>, z, labels, grad, n, k, scale);
}
template <typename T>
double softmax_ce_dense(const T* z, const T* y, T* grad, int64_t n, int64_t k, T scale) {
  NNFAST_DISPATCH(softmax_ce_dense<T>, z, y, grad, n, k, scale);
}
}  // namespace nnfast
