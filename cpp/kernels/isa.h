// How kernel families are compiled once per ISA and declared for dispatch.
//
// Every file listed in NNFAST_KERNEL_SOURCES (CMakeLists.txt) is compiled once per ISA with that
// ISA's flags and NNFAST_ISA_NS defined to its name, so its definitions land in
// nnfast::scalar, nnfast::baseline, nnfast::avx2 or nnfast::avx512. A family's header declares its
// functions in every namespace with NNFAST_FOR_EACH_ISA, and callers pick one with NNFAST_DISPATCH.
// scalar is the portable one-lane Simd (the path non-x86 wheels ship as their baseline), built on
// x86 too (NNFAST_FORCE_SCALAR) so NNFAST_ISA=scalar tests it here.
#pragma once

#include "runtime/cpu.h"

#if defined(NNFAST_X86)
#define NNFAST_FOR_EACH_ISA(X) X(scalar) X(baseline) X(avx2) X(avx512)
#else
#define NNFAST_FOR_EACH_ISA(X) X(baseline)
#endif

// Calls nnfast::<active isa>::fn(args...) and returns its result.
#if defined(NNFAST_X86)
#define NNFAST_DISPATCH(fn, ...)                         \
  do {                                                   \
    switch (::nnfast::runtime::active_isa()) {           \
      case ::nnfast::runtime::Isa::avx512:               \
        return ::nnfast::avx512::fn(__VA_ARGS__);        \
      case ::nnfast::runtime::Isa::avx2:                 \
        return ::nnfast::avx2::fn(__VA_ARGS__);          \
      case ::nnfast::runtime::Isa::scalar:               \
        return ::nnfast::scalar::fn(__VA_ARGS__);        \
      default:                                           \
        return ::nnfast::baseline::fn(__VA_ARGS__);      \
    }                                                    \
  } while (0)
#else
#define NNFAST_DISPATCH(fn, ...) return ::nnfast::baseline::fn(__VA_ARGS__)
#endif
