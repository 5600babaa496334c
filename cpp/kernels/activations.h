// Element-wise activations, their derivatives and softmax, declared for every ISA namespace.
//
// Element-wise kernels map x[0..n) to y[0..n); x may equal y (in place). Derivatives are of z (as
// in the tutorial): sigmoid'(z), tanh'(z), relu'(z) = (z > 0). softmax works on a tensor viewed
// as (outer, len, inner), C order, taking softmax along the middle axis.
#pragma once

#include <cstdint>

#include "kernels/activation_list.h"
#include "kernels/isa.h"

#define NNFAST_DECLARE_ACTIVATIONS(isa)                                                 \
  namespace isa {                                                                       \
  /* y[i] = max(0, x[i]); NaN propagates. */                                            \
  template <typename T>                                                                 \
  void relu(const T* x, T* y, int64_t n);                                               \
  /* y[i] = 1 / (1 + exp(-x[i])), stable for any x. */                                  \
  template <typename T>                                                                 \
  void sigmoid(const T* x, T* y, int64_t n);                                            \
  /* y[i] = tanh(x[i]). */                                                              \
  template <typename T>                                                                 \
  void tanh(const T* x, T* y, int64_t n);                                               \
  /* y[i] = x[i] > 0 ? 1 : 0. */                                                        \
  template <typename T>                                                                 \
  void relu_derivative(const T* x, T* y, int64_t n);                                    \
  /* y[i] = s (1 - s), s = sigmoid(x[i]). */                                            \
  template <typename T>                                                                 \
  void sigmoid_derivative(const T* x, T* y, int64_t n);                                 \
  /* y[i] = 1 - tanh(x[i])^2. */                                                        \
  template <typename T>                                                                 \
  void tanh_derivative(const T* x, T* y, int64_t n);                                    \
  /* y[i] = x[i] Phi(x[i]), Phi the standard normal CDF (GELU, exact erf form). */       \
  template <typename T>                                                                 \
  void gelu(const T* x, T* y, int64_t n);                                               \
  /* grad_x[i] = grad_y[i] gelu'(x[i]); grad_x may equal grad_y or x. */                \
  template <typename T>                                                                 \
  void gelu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n);                \
  /* y[i] = x[i] > 0 ? x[i] : slope x[i] (NaN propagates). */                           \
  template <typename T>                                                                 \
  void leaky_relu(const T* x, T* y, int64_t n, T slope);                                \
  /* grad_x[i] = x[i] > 0 ? grad_y[i] : slope grad_y[i]. */                             \
  template <typename T>                                                                 \
  void leaky_relu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n, T slope); \
  /* grad_z[i] = act'(z) grad_y[i] from y = act(z) (act element-wise and conv-fusable:  \
     linear, relu, sigmoid, tanh); grad_z may equal grad_y. */                          \
  template <typename T>                                                                 \
  void activation_output_grad(const T* y, const T* grad_y, T* grad_z, int64_t n,         \
                              GemmActivation act);                                      \
  /* softmax along the middle axis of x viewed as (outer, len, inner); x may equal y. */ \
  template <typename T>                                                                 \
  void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner);            \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_ACTIVATIONS)

// Front ends running the active ISA's kernel.
#define NNFAST_ACTIVATION_FRONT(name)                \
  template <typename T>                              \
  void name(const T* x, T* y, int64_t n) {           \
    NNFAST_DISPATCH(name<T>, x, y, n);               \
  }
NNFAST_ACTIVATION_FRONT(relu)
NNFAST_ACTIVATION_FRONT(sigmoid)
NNFAST_ACTIVATION_FRONT(tanh)
NNFAST_ACTIVATION_FRONT(relu_derivative)
NNFAST_ACTIVATION_FRONT(sigmoid_derivative)
NNFAST_ACTIVATION_FRONT(tanh_derivative)

NNFAST_ACTIVATION_FRONT(gelu)
#undef NNFAST_ACTIVATION_FRONT

template <typename T>
void activation_output_grad(const T* y, const T* grad_y, T* grad_z, int64_t n, GemmActivation act) {
  NNFAST_DISPATCH(activation_output_grad<T>, y, grad_y, grad_z, n, act);
}

template <typename T>
void gelu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n) {
  NNFAST_DISPATCH(gelu_backward<T>, grad_y, x, grad_x, n);
}

template <typename T>
void leaky_relu(const T* x, T* y, int64_t n, T slope) {
  NNFAST_DISPATCH(leaky_relu<T>, x, y, n, slope);
}

template <typename T>
void leaky_relu_backward(const T* grad_y, const T* x, T* grad_x, int64_t n, T slope) {
  NNFAST_DISPATCH(leaky_relu_backward<T>, grad_y, x, grad_x, n, slope);
}

template <typename T>
void softmax(const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
  NNFAST_DISPATCH(softmax<T>, x, y, outer, len, inner);
}
}  // namespace nnfast
