// Element-wise activations and their derivatives, declared for every ISA namespace.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#define NNFAST_DECLARE_ACTIVATIONS(isa)                      \
  namespace isa {                                            \
  /* y[i] = max(0, x[i]); NaN propagates. x may equal y. */ \
  template <typename T>                                      \
  void relu(const T* x, T* y, int64_t n);                    \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_ACTIVATIONS)

// Runs the active ISA's relu.
template <typename T>
void relu(const T* x, T* y, int64_t n) {
  NNFAST_DISPATCH(relu<T>, x, y, n);
}
}  // namespace nnfast
