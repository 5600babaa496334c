// The GEMM and dense epilogues' activations, per ISA: the element-wise ones and softmax rows come
// from vmath.h, so nnfast.dense(..., "sigmoid") and nnfast.sigmoid compute the same bits.
//
// Included only by kernel sources compiled per ISA (after simd.h); everything is inline in the
// ISA namespace.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gemm.h"
#include "kernels/simd.h"
#include "kernels/vmath.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace epi {

// The element-wise part of an activation (softmax is a row pass, done elsewhere).
template <GemmActivation Act, typename T>
inline typename Simd<T>::Reg activate(typename Simd<T>::Reg v) {
  using S = Simd<T>;
  if constexpr (Act == GemmActivation::relu) {
    return S::max(S::zero(), v);
  } else if constexpr (Act == GemmActivation::sigmoid) {
    return vmath::sigmoid<T>(v);
  } else if constexpr (Act == GemmActivation::tanh) {
    return vmath::tanh<T>(v);
  } else {
    return v;
  }
}

// dL/dz from dL/da and a = act(z) for one register: act' is a function of a alone (softmax
// also needs row_dot = sum(a * dL/da) over the row). dense's and conv2d's backward share it.
template <GemmActivation Act, typename T>
inline typename Simd<T>::Reg activation_grad(typename Simd<T>::Reg a, typename Simd<T>::Reg ga,
                                             typename Simd<T>::Reg row_dot) {
  using S = Simd<T>;
  if constexpr (Act == GemmActivation::relu) {
    return S::select(S::cmp_gt(a, S::zero()), ga, S::zero());
  } else if constexpr (Act == GemmActivation::sigmoid) {
    return S::mul(S::mul(ga, a), S::sub(S::set1(T(1)), a));
  } else if constexpr (Act == GemmActivation::tanh) {
    return S::mul(ga, S::fnmadd(a, a, S::set1(T(1))));
  } else if constexpr (Act == GemmActivation::softmax) {
    return S::mul(a, S::sub(ga, row_dot));
  } else {
    return ga;
  }
}

// Softmax of one row of n elements, in place (the same kernel as nnfast::softmax's rows).
template <typename T>
inline void softmax_row(T* row, int64_t n) {
  if (n <= 0) return;
  const T sum = vmath::row_softmax_exp(row, row, n);
  vmath::row_scale(row, n, T(1) / sum);
}

}  // namespace epi
}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
