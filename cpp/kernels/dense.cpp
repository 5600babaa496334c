// Dense layer kernels; compiled once per ISA (see isa.h).
#include "kernels/dense.h"

#include <algorithm>

#include "kernels/gemm.h"
#include "kernels/gemm_epilogue.h"
#include "kernels/simd.h"
#include "runtime/threadpool.h"
#include "runtime/workspace.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Elements of dz per task of the dz / grad_b pass, at least.
constexpr int64_t kMinElemsPerTask = 1 << 14;

// dz (batch x out) and grad_b = column sums of dz, summed down the rows in order (the result
// does not depend on how columns are split between threads). Each task owns a contiguous range of
// columns and walks it row by row, so a, grad_a and dz are read and written in address order
// (walking down a column block instead, a 2 KiB stride per row for out = 512, defeated the
// hardware prefetchers: ~2 ns per element, 0.3 ms of a 4.5 ms backward at 256 x 784 x 512).
// grad_b is the running sum: it stays in L1 and adds d in the same order as a register would.
template <GemmActivation Act, typename T>
void dz_and_bias_grad(const T* a, const T* ga, const T* row_dot, T* dz, T* grad_b, int64_t batch,
                      int64_t out) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  const int64_t vectors = (out + W - 1) / W;
  const int64_t grain = std::max<int64_t>(1, kMinElemsPerTask / std::max<int64_t>(1, batch * W));
  runtime::parallel_for(vectors, grain, [&](int64_t begin, int64_t end) {
    const int64_t j0 = begin * W;
    const int64_t j1 = std::min(out, end * W);
    std::fill(grad_b + j0, grad_b + j1, T(0));
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t off = i * out;
      const Reg dot = row_dot != nullptr ? S::set1(row_dot[i]) : S::zero();
      int64_t j = j0;
      for (; j + W <= j1; j += W) {
        const Reg d = epi::activation_grad<Act, T>(S::loadu(a + off + j), S::loadu(ga + off + j), dot);
        if (dz != ga) S::storeu(dz + off + j, d);
        S::storeu(grad_b + j, S::add(S::loadu(grad_b + j), d));
      }
      if (j < j1) {
        const int64_t lanes = j1 - j;
        const Reg d = epi::activation_grad<Act, T>(S::load_partial(a + off + j, lanes),
                                              S::load_partial(ga + off + j, lanes), dot);
        if (dz != ga) S::store_partial(dz + off + j, d, lanes);
        S::store_partial(grad_b + j, S::add(S::load_partial(grad_b + j, lanes), d), lanes);
      }
    }
  });
}

// row_dot[i] = sum_j grad_a[i, j] a[i, j] (the softmax Jacobian-vector product's shared term).
template <typename T>
void softmax_row_dots(const T* a, const T* ga, T* row_dot, int64_t batch, int64_t out) {
  using S = Simd<T>;
  constexpr int W = S::width;
  runtime::parallel_for(batch, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, out)),
                        [&](int64_t begin, int64_t end) {
                          for (int64_t i = begin; i < end; ++i) {
                            const T* ar = a + i * out;
                            const T* gr = ga + i * out;
                            auto acc = S::zero();
                            int64_t j = 0;
                            for (; j + W <= out; j += W) {
                              acc = S::fmadd(S::loadu(ar + j), S::loadu(gr + j), acc);
                            }
                            if (j < out) {
                              acc = S::fmadd(S::load_partial(ar + j, out - j),
                                             S::load_partial(gr + j, out - j), acc);
                            }
                            row_dot[i] = S::reduce_add(acc);
                          }
                        });
}

}  // namespace

template <typename T>
void dense_forward(const T* x, const T* w, const T* b, T* a, int64_t batch, int64_t in, int64_t out,
                   GemmActivation act) {
  GemmEpilogue<T> ep;
  ep.bias_col = b;
  ep.activation = act;
  NNFAST_ISA_NS::gemm_ex<T>(false, false, batch, out, in, T(1), x, in, w, out, T(0), a, out, ep);
}

template <typename T>
void dense_backward(const T* x, const T* w, const T* a, const T* grad_a, T* grad_x, T* grad_w,
                    T* grad_b, int64_t batch, int64_t in, int64_t out, GemmActivation act) {
  if (out == 0) {
    // dz is empty: every gradient is an empty sum.
    std::fill(grad_x, grad_x + batch * in, T(0));
    std::fill(grad_w, grad_w + in * out, T(0));
    return;
  }
  T* dz = const_cast<T*>(grad_a);  // linear: dz is grad_a itself, never written
  T* row_dot = nullptr;
  if (act != GemmActivation::linear) {
    const size_t elems = static_cast<size_t>(batch * out) + static_cast<size_t>(batch) + 64;
    dz = static_cast<T*>(
        runtime::thread_workspace(runtime::WorkspaceSlot::dense, elems * sizeof(T)));
    row_dot = dz + batch * out;
  }
  switch (act) {
    case GemmActivation::relu:
      dz_and_bias_grad<GemmActivation::relu>(a, grad_a, static_cast<const T*>(nullptr), dz, grad_b,
                                             batch, out);
      break;
    case GemmActivation::sigmoid:
      dz_and_bias_grad<GemmActivation::sigmoid>(a, grad_a, static_cast<const T*>(nullptr), dz,
                                                grad_b, batch, out);
      break;
    case GemmActivation::tanh:
      dz_and_bias_grad<GemmActivation::tanh>(a, grad_a, static_cast<const T*>(nullptr), dz, grad_b,
                                             batch, out);
      break;
    case GemmActivation::softmax:
      softmax_row_dots(a, grad_a, row_dot, batch, out);
      dz_and_bias_grad<GemmActivation::softmax>(a, grad_a, static_cast<const T*>(row_dot), dz,
                                                grad_b, batch, out);
      break;
    default:
      dz_and_bias_grad<GemmActivation::linear>(a, grad_a, static_cast<const T*>(nullptr), dz,
                                               grad_b, batch, out);
      break;
  }
  // grad_w (in x out) = x^T (in x batch) dz (batch x out); grad_x (batch x in) = dz w^T.
  NNFAST_ISA_NS::gemm_ex<T>(true, false, in, out, batch, T(1), x, in, dz, out, T(0), grad_w, out,
                            GemmEpilogue<T>{});
  NNFAST_ISA_NS::gemm_ex<T>(false, true, batch, in, out, T(1), dz, out, w, out, T(0), grad_x, in,
                            GemmEpilogue<T>{});
}

template void dense_forward<float>(const float*, const float*, const float*, float*, int64_t,
                                   int64_t, int64_t, GemmActivation);
template void dense_forward<double>(const double*, const double*, const double*, double*, int64_t,
                                    int64_t, int64_t, GemmActivation);
template void dense_backward<float>(const float*, const float*, const float*, const float*, float*,
                                    float*, float*, int64_t, int64_t, int64_t, GemmActivation);
template void dense_backward<double>(const double*, const double*, const double*, const double*,
                                     double*, double*, double*, int64_t, int64_t, int64_t,
                                     GemmActivation);

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
