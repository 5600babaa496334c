// Batch normalization, forward (training and inference) and backward, declared for every ISA.
//
// x is viewed as (n, c, s): n samples, c channels, s positions per channel (h * w for
// (N, C, H, W), 1 for (N, F)); channel k's values are x[(i * c + k) * s + j]. Training:
//
//   mean = sum(x) / m,  var = sum((x - mean)^2) / m,  m = n * s     (sums in double, in a fixed
//   invstd = 1 / sqrt(var + eps)                                      lane order per ISA)
//   y = (x - mean) * (gamma * invstd) + beta       (gamma * invstd in double, rounded to T once)
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var + momentum * var * m / (m - 1)
//
// Inference uses running_mean and invstd = 1 / sqrt(running_var + eps) the same way. relu: y =
// max(0, y) after. Backward, with g = grad_y (times (y > 0) under relu) and xh = (x - mean) * invstd:
//
//   grad_beta = sum(g), grad_gamma = sum(g * xh)
//   training:  grad_x = gamma * invstd * (g - grad_beta / m - xh * grad_gamma / m)
//   inference: grad_x = gamma * invstd * g
//
// Each channel is reduced by one thread in one order, so any thread count gives the same bits.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace nnfast {

// The (n, c, s) view of a batch-norm input.
struct BatchNormShape {
  int64_t n, c, s;
};

#define NNFAST_DECLARE_NORM(isa)                                                              \
  namespace isa {                                                                             \
  /* Training forward: y, mean_out, invstd_out (c each) and the running statistics updated.   \
     Requires n * s > 1. */                                                                   \
  template <typename T>                                                                       \
  void batch_norm_train(const T* x, T* y, const BatchNormShape& g, const T* gamma,            \
                        const T* beta, T* running_mean, T* running_var, double momentum,      \
                        double eps, bool relu, T* mean_out, T* invstd_out);                   \
  /* Inference forward from the running statistics. */                                        \
  template <typename T>                                                                       \
  void batch_norm_eval(const T* x, T* y, const BatchNormShape& g, const T* gamma,             \
                       const T* beta, const T* running_mean, const T* running_var,            \
                       double eps, bool relu);                                                \
  /* Backward; y (read only under relu) is the forward's output. */                           \
  template <typename T>                                                                       \
  void batch_norm_backward(const T* grad_y, const T* x, const T* y, const BatchNormShape& g,  \
                           const T* gamma, const T* mean, const T* invstd, bool training,     \
                           bool relu, T* grad_x, T* grad_gamma, T* grad_beta);                \
  }

NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_NORM)

template <typename T>
void batch_norm_train(const T* x, T* y, const BatchNormShape& g, const T* gamma, const T* beta,
                      T* running_mean, T* running_var, double momentum, double eps, bool relu,
                      T* mean_out, T* invstd_out) {
  NNFAST_DISPATCH(batch_norm_train<T>, x, y, g, gamma, beta, running_mean, running_var, momentum,
                  eps, relu, mean_out, invstd_out);
}

template <typename T>
void batch_norm_eval(const T* x, T* y, const BatchNormShape& g, const T* gamma, const T* beta,
                     const T* running_mean, const T* running_var, double eps, bool relu) {
  NNFAST_DISPATCH(batch_norm_eval<T>, x, y, g, gamma, beta, running_mean, running_var, eps, relu);
}

template <typename T>
void batch_norm_backward(const T* grad_y, const T* x, const T* y, const BatchNormShape& g,
                         const T* gamma, const T* mean, const T* invstd, bool training, bool relu,
                         T* grad_x, T* grad_gamma, T* grad_beta) {
  NNFAST_DISPATCH(batch_norm_backward<T>, grad_y, x, y, g, gamma, mean, invstd, training, relu,
                  grad_x, grad_gamma, grad_beta);
}

}  // namespace nnfast
