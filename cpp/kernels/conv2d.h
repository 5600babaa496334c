// 2-D convolution (cross-correlation, as in the tutorial and PyTorch), forward and backward,
// declared for every ISA.
//
// NCHW input x (n, c, h, w), OIHW weight (o, c, kh, kw), output y (n, o, ho, wo) with
// y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * x[n, c, i*sh + di - pt, j*sw + dj - pl]
// (x read as zero outside the image). Bottom/right padding is implied by ho and wo.
//
// Algorithms (chosen by shape, both exact to the same formula):
//  - direct: for stride 1, reading a zero-padded copy of the input rows (no unfolding), either
//    vectors along output positions with a block of output channels in registers (few taps or
//    few output channels), or, for wide layers, vectors along output channels with a run of
//    output positions broadcast (an implicit GEMM with no lane spent on padding columns); with
//    few taps and rows as wide as the input (the C=1 MNIST layer), vectors along each output
//    plane's flattened positions on a grid aligned to y's cache lines, read from kw column-
//    shifted copies of the input (whole-line stores); grad_w of wide layers likewise
//    accumulates channel vectors over positions;
//  - im2col: each image's patches are unfolded (a bounded chunk of output rows at a time) and
//    multiplied by the packed GEMM, bias and activation fused into its store.
// Work is split over images (and output rows); every output element is computed by the same
// instruction sequence whatever the split, so results are bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/gemm.h"
#include "kernels/isa.h"

namespace nnfast {

// Shapes of one convolution; the binding validates and fills every field.
struct Conv2dGeometry {
  int64_t n, c, h, w;      // input
  int64_t o, kh, kw;       // weight
  int64_t sh, sw, pt, pl;  // stride and top/left padding
  int64_t ho, wo;          // output
};

// Which forward algorithm to run (auto: chosen by shape).
enum class Conv2dAlgorithm : int { automatic = 0, direct = 1, im2col = 2 };

#define NNFAST_DECLARE_CONV2D(isa)                                                               \
  namespace isa {                                                                                \
  /* y = act(conv(x, w) + b); b may be null; act is linear, relu, sigmoid or tanh. Returns the   \
     algorithm used. May throw std::bad_alloc (workspace) before writing anything. */            \
  template <typename T>                                                                          \
  Conv2dAlgorithm conv2d_forward(const T* x, const T* w, const T* b, T* y,                       \
                                 const Conv2dGeometry& g, GemmActivation act,                    \
                                 Conv2dAlgorithm algo);                                          \
  /* grad_b = sum gy over (n, h, w); grad_w = sum_n gy[n] im2col(x[n])^T; grad_x =               \
     col2im(w^T gy[n]) unless grad_x is null. */                                                 \
  template <typename T>                                                                          \
  void conv2d_backward(const T* x, const T* w, const T* gy, T* grad_x, T* grad_w, T* grad_b,     \
                       const Conv2dGeometry& g);                                                 \
  /* The kernels the automatic choice runs for this shape (forward, grad_x, grad_w), as text. */ \
  template <typename T>                                                                          \
  std::string conv2d_kernels(const Conv2dGeometry& g);                                           \
  }

NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_CONV2D)

// The forward algorithm the automatic choice picks for this shape.
inline Conv2dAlgorithm conv2d_choose_algorithm(const Conv2dGeometry& g) {
  // NOTE: measured (bench): the direct kernel beats im2col + GEMM on both MNIST layers (C=1 and
  // 32->64), as it needs no unfolded copy and no packing; strided convolutions use im2col.
  if (g.sh == 1 && g.sw == 1) return Conv2dAlgorithm::direct;
  return Conv2dAlgorithm::im2col;
}

template <typename T>
Conv2dAlgorithm conv2d_forward(const T* x, const T* w, const T* b, T* y, const Conv2dGeometry& g,
                               GemmActivation act, Conv2dAlgorithm algo) {
  NNFAST_DISPATCH(conv2d_forward<T>, x, w, b, y, g, act, algo);
}

template <typename T>
void conv2d_backward(const T* x, const T* w, const T* gy, T* grad_x, T* grad_w, T* grad_b,
                     const Conv2dGeometry& g) {
  NNFAST_DISPATCH(conv2d_backward<T>, x, w, gy, grad_x, grad_w, grad_b, g);
}

template <typename T>
std::string conv2d_kernels(const Conv2dGeometry& g) {
  NNFAST_DISPATCH(conv2d_kernels<T>, g);
}

}  // namespace nnfast
