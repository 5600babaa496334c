// Dense layer kernels; compiled once per ISA (see isa.h).
#include "kernels/dense.h"

#include <algorithm>

#include "kernels/gemm.h"
#include "kernels/simd.h"
#include "runtime/threadpool.h"
#include "runtime/workspace.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

// Columns per task of the dz / grad_b pass (several registers wide, so rows stream well).
template <typename T>
constexpr int64_t kColumnBlock = 4 * Simd<T>::width;

// dL/dz from dL/da and a for one register: a' is a function of a alone (except softmax).
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

// dz (batch x out) and grad_b = column sums of dz, summed down the rows in order (the result
// does not depend on how columns are split between threads).
template <GemmActivation Act, typename T>
void dz_and_bias_grad(const T* a, const T* ga, const T* row_dot, T* dz, T* grad_b, int64_t batch,
                      int64_t out) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  constexpr int W = S::width;
  constexpr int V = static_cast<int>(kColumnBlock<T> / W);
  const int64_t blocks = (out + kColumnBlock<T> - 1) / kColumnBlock<T>;
  const int64_t grain =
      std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, batch * kColumnBlock<T>));
  runtime::parallel_for(blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t j0 = blk * kColumnBlock<T>;
      const int64_t width = std::min(kColumnBlock<T>, out - j0);
      Reg sum[V];
      for (int v = 0; v < V; ++v) sum[v] = S::zero();
      for (int64_t i = 0; i < batch; ++i) {
        const int64_t off = i * out + j0;
        const Reg dot = row_dot != nullptr ? S::set1(row_dot[i]) : S::zero();
        for (int v = 0; v < V; ++v) {
          const int64_t lanes = width - v * W;
          if (lanes <= 0) break;
          const int64_t o = off + v * W;
          if (lanes >= W) {
            const Reg d = activation_grad<Act, T>(S::loadu(a + o), S::loadu(ga + o), dot);
            if (dz != ga) S::storeu(dz + o, d);
            sum[v] = S::add(sum[v], d);
          } else {
            const Reg d = activation_grad<Act, T>(S::load_partial(a + o, lanes),
                                                  S::load_partial(ga + o, lanes), dot);
            if (dz != ga) S::store_partial(dz + o, d, lanes);
            sum[v] = S::add(sum[v], d);
          }
        }
      }
      for (int v = 0; v < V; ++v) {
        const int64_t lanes = width - v * W;
        if (lanes <= 0) break;
        if (lanes >= W) {
          S::storeu(grad_b + j0 + v * W, sum[v]);
        } else {
          S::store_partial(grad_b + j0 + v * W, sum[v], lanes);
        }
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
