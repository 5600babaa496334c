// In-place optimizer updates (SGD with momentum, Adam), declared for every ISA namespace.
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

}  // namespace nnfast
