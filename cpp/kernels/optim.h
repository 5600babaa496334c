// In-place optimizer updates (SGD with momentum, Adam) and the tutorial's fused training loop,
// declared for every ISA namespace.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#define NNFAST_DECLARE_OPTIM(isa)                                                                \
  namespace isa {                                                                                \
  /* v = momentum v + g (skipped when v is null); p -= lr (v or g). */                           \
  template <typename T>                                                                          \
  void sgd_step(T* p, const T* g, T* v, int64_t n, T lr, T momentum);                            \
  /* m, v moments; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), as torch.optim.Adam. */      \
  template <typename T>                                                                          \
  void adam_step(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T bc1,  \
                 T bc2);                                                                         \
  /* The tutorial's SimpleNeuralNetwork.train: epochs of full-batch forward (ReLU, sigmoid),  */ \
  /* MSE, backward and SGD on (w1, b1, w2, b2) in place. loss[e] per epoch; z1 a1 z2 a2 hold  */ \
  /* the last forward; first_a2 (may be null) the first epoch's output. ws: n*(h+o) scratch.  */ \
  template <typename T>                                                                          \
  void tutorial_train(const T* x, const T* y, T* w1, T* b1, T* w2, T* b2, int64_t n,             \
                      int64_t in, int64_t hidden, int64_t out, int64_t epochs, T lr, T* loss,    \
                      T* z1, T* a1, T* z2, T* a2, T* first_a2, T* ws);                           \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_OPTIM)

template <typename T>
void sgd_step(T* p, const T* g, T* v, int64_t n, T lr, T momentum) {
  NNFAST_DISPATCH(sgd_step<T>, p, g, v, n, lr, momentum);
}

template <typename T>
void adam_step(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps, T bc1,
               T bc2) {
  NNFAST_DISPATCH(adam_step<T>, p, g, m, v, n, lr, beta1, beta2, eps, bc1, bc2);
}

template <typename T>
void tutorial_train(const T* x, const T* y, T* w1, T* b1, T* w2, T* b2, int64_t n, int64_t in,
                    int64_t hidden, int64_t out, int64_t epochs, T lr, T* loss, T* z1, T* a1, T* z2,
                    T* a2, T* first_a2, T* ws) {
  NNFAST_DISPATCH(tutorial_train<T>, x, y, w1, b1, w2, b2, n, in, hidden, out, epochs, lr, loss,
                  z1, a1, z2, a2, first_a2, ws);
}
}  // namespace nnfast
