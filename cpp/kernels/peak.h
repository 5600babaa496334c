// A measurement of the machine's limit, not a neural-network kernel: the FMA throughput of one
// core on the active ISA, the ceiling that GEMM-like kernels are judged against.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#define NNFAST_DECLARE_PEAK(isa)                                                        \
  namespace isa {                                                                       \
  /* Runs `iters` rounds of independent register FMA chains; returns the flops done and */ \
  /* writes a value depending on every chain to *sink (so no compiler can drop them). */    \
  template <typename T>                                                                 \
  int64_t fma_chains(int64_t iters, T* sink);                                           \
  }

namespace nnfast {
NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_PEAK)

template <typename T>
int64_t fma_chains(int64_t iters, T* sink) {
  NNFAST_DISPATCH(fma_chains<T>, iters, sink);
}
}  // namespace nnfast
