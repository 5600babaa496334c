// 2-D max and average pooling (floor mode, no padding) and global average pooling, forward and
// backward, declared for every ISA.
//
// Each of `planes` (n * c) input planes of h x w gives an ho x wo output plane; window (oy, ox)
// covers rows [oy*sh, oy*sh + ph) and columns [ox*sw, ox*sw + pw). The window is scanned in
// row-major order and an element replaces the running max when it is greater or NaN, so a NaN
// wins (the last NaN of the window) and ties keep the first maximum: PyTorch's CPU rule.
// Indices are flat positions within the plane (row * w + col), as PyTorch returns them.
//
// Average pooling: y = s / (ph * pw), s the window's sum taken row by row, each row summed left
// to right and the row sums added top to bottom (((x00 + x01) + x02) + ((x10 + x11) + x12)) on
// every path, so every ISA and thread count gives the same bits. Its backward gives each input
// 0 + the sum of q = grad_y / (ph * pw) over the windows holding it, added in output order (oy,
// then ox), each plane by one thread: the same bits for any thread count, overlapping or not.
// Global average pooling sums each plane in double (float32 too, widened as it is read), in a
// fixed lane order per ISA, and stores sum / (h * w); its backward is grad_y / (h * w) broadcast.
#pragma once

#include <cstdint>

#include "kernels/isa.h"

namespace nnfast {

// Shapes of one pooling; the binding validates and fills every field.
struct Pool2dGeometry {
  int64_t planes, h, w;  // input planes
  int64_t ph, pw;        // window
  int64_t sh, sw;        // stride
  int64_t ho, wo;        // output
};

#define NNFAST_DECLARE_POOL(isa)                                                                \
  namespace isa {                                                                               \
  /* y = max over each window; indices (may be null) = its flat argmax within the plane. */     \
  template <typename T>                                                                         \
  void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g);         \
  /* grad_x = 0, then grad_x[plane, indices[...]] += grad_y[...]. Every index is checked first  \
     against the plane (and against its own window when check_window); returns -1, or the flat  \
     position in indices of the first invalid one (grad_x then holds partial sums). */          \
  template <typename T>                                                                         \
  int64_t max_pool2d_backward(const T* grad_y, const int64_t* indices, T* grad_x,               \
                              const Pool2dGeometry& g, bool check_window);                      \
  /* y = mean over each window. */                                                              \
  template <typename T>                                                                         \
  void avg_pool2d_forward(const T* x, T* y, const Pool2dGeometry& g);                           \
  /* grad_x = each window's grad_y spread evenly over it, overlapping windows added. */         \
  template <typename T>                                                                         \
  void avg_pool2d_backward(const T* grad_y, T* grad_x, const Pool2dGeometry& g);                \
  /* y[p] = mean of input plane p (hw elements), for each of planes planes. */                  \
  template <typename T>                                                                         \
  void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t hw);                 \
  /* grad_x[p, :] = grad_y[p] / hw. */                                                          \
  template <typename T>                                                                         \
  void global_avg_pool2d_backward(const T* grad_y, T* grad_x, int64_t planes, int64_t hw);      \
  }

NNFAST_FOR_EACH_ISA(NNFAST_DECLARE_POOL)

template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dGeometry& g) {
  NNFAST_DISPATCH(max_pool2d_forward<T>, x, y, indices, g);
}

template <typename T>
int64_t max_pool2d_backward(const T* grad_y, const int64_t* indices, T* grad_x,
                            const Pool2dGeometry& g, bool check_window) {
  NNFAST_DISPATCH(max_pool2d_backward<T>, grad_y, indices, grad_x, g, check_window);
}

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dGeometry& g) {
  NNFAST_DISPATCH(avg_pool2d_forward<T>, x, y, g);
}

template <typename T>
void avg_pool2d_backward(const T* grad_y, T* grad_x, const Pool2dGeometry& g) {
  NNFAST_DISPATCH(avg_pool2d_backward<T>, grad_y, grad_x, g);
}

template <typename T>
void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t hw) {
  NNFAST_DISPATCH(global_avg_pool2d_forward<T>, x, y, planes, hw);
}

template <typename T>
void global_avg_pool2d_backward(const T* grad_y, T* grad_x, int64_t planes, int64_t hw) {
  NNFAST_DISPATCH(global_avg_pool2d_backward<T>, grad_y, grad_x, planes, hw);
}

}  // namespace nnfast
