// Bindings of the activation kernels.
#include "kernels/activations.h"

#include <string>
#include <type_traits>
#include <utility>

#include "bindings/common.h"
#include "bindings/families.h"

namespace nnfast {
namespace bind {
namespace {

using KernelF32 = void (*)(const float*, float*, int64_t);
using KernelF64 = void (*)(const double*, double*, int64_t);

// Binds an element-wise kernel: any shape in, same shape and dtype out, in place allowed.
template <KernelF32 F32, KernelF64 F64>
py::array elementwise(const char* fn, py::handle z_obj, py::object out) {
  py::array z = require_float_array(z_obj, fn, "z");
  py::array y = prepare_out(out, z.dtype(), shape_of(z), fn, {z}, {z});
  const int64_t n = static_cast<int64_t>(z.size());
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T* src = cdata<T>(z);
    T* dst = mdata<T>(y);
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) {
      F32(src, dst, n);
    } else {
      F64(src, dst, n);
    }
  });
  return y;
}

#define NNFAST_DEF_ELEMENTWISE(name, doc)                                                    \
  m.def(                                                                                     \
      #name,                                                                                 \
      [](py::handle z, py::object out) {                                                     \
        return elementwise<&nnfast::name<float>, &nnfast::name<double>>(#name, z, out);       \
      },                                                                                     \
      py::arg("z"), py::arg("out") = py::none(), doc)

py::array softmax(py::handle z_obj, py::handle axis_obj, py::object out) {
  const char* fn = "softmax";
  py::array z = require_float_array(z_obj, fn, "z");
  const int64_t ndim = z.ndim();
  if (ndim == 0) {
    throw py::value_error("softmax: z must have at least 1 dim, got a 0-d array");
  }
  int64_t axis = require_int(axis_obj, fn, "axis", -ndim, ndim - 1);
  if (axis < 0) axis += ndim;
  const Shape shape = shape_of(z);
  py::array y = prepare_out(out, z.dtype(), shape, fn, {z}, {z});
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[static_cast<size_t>(i)];
  for (int64_t i = axis + 1; i < ndim; ++i) inner *= shape[static_cast<size_t>(i)];
  const int64_t len = shape[static_cast<size_t>(axis)];
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T* src = cdata<T>(z);
    T* dst = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::softmax<T>(src, dst, outer, len, inner);
  });
  return y;
}

// grad_y and z of one shape and dtype: the backward of an element-wise activation's inputs.
std::pair<py::array, py::array> backward_inputs(py::handle gy_obj, py::handle z_obj,
                                                const char* fn) {
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  py::array z = require_float_array(z_obj, fn, "z");
  require_same_dtype(z, "z", gy, "grad_y", fn);
  if (shape_of(gy) != shape_of(z)) {
    throw py::value_error(std::string(fn) + ": z must have the shape of grad_y " + shape_str(gy) +
                          ", got " + shape_str(z));
  }
  return {gy, z};
}

// Runs kernel(grad_y, z, grad_x, n) (a typed generic lambda) on backward_inputs' arrays into
// out (which may be grad_y or z), the GIL released.
template <typename Kernel>
py::array run_backward(const char* fn, const py::array& gy, const py::array& z, py::object out,
                       Kernel kernel) {
  py::array gx = prepare_out(std::move(out), z.dtype(), shape_of(z), fn, {gy, z}, {gy, z});
  const int64_t n = static_cast<int64_t>(z.size());
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T *pg = cdata<T>(gy), *pz = cdata<T>(z);
    T* po = mdata<T>(gx);
    py::gil_scoped_release release;
    kernel(pg, pz, po, n);
  });
  return gx;
}

py::array gelu_backward(py::handle gy_obj, py::handle z_obj, py::object out) {
  const char* fn = "gelu_backward";
  auto [gy, z] = backward_inputs(gy_obj, z_obj, fn);
  return run_backward(fn, gy, z, std::move(out),
                      [](const auto* g, const auto* x, auto* o, int64_t n) {
                        nnfast::gelu_backward(g, x, o, n);
                      });
}

py::array leaky_relu(py::handle z_obj, py::handle slope_obj, py::object out) {
  const char* fn = "leaky_relu";
  py::array z = require_float_array(z_obj, fn, "z");
  const double slope = require_real(slope_obj, fn, "negative_slope", is_f32(z));
  py::array y = prepare_out(std::move(out), z.dtype(), shape_of(z), fn, {z}, {z});
  const int64_t n = static_cast<int64_t>(z.size());
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T* pz = cdata<T>(z);
    T* po = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::leaky_relu<T>(pz, po, n, static_cast<T>(slope));
  });
  return y;
}

py::array leaky_relu_backward(py::handle gy_obj, py::handle z_obj, py::handle slope_obj,
                              py::object out) {
  const char* fn = "leaky_relu_backward";
  auto [gy, z] = backward_inputs(gy_obj, z_obj, fn);
  const double slope = require_real(slope_obj, fn, "negative_slope", is_f32(z));
  return run_backward(fn, gy, z, std::move(out), [slope](const auto* g, const auto* x, auto* o,
                                                         int64_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(g)>>;
    nnfast::leaky_relu_backward<T>(g, x, o, n, static_cast<T>(slope));
  });
}

}  // namespace

NNFAST_REGISTER_FAMILY(activations) {
  // The one list (kernels/activation_list.h): every activation, those dense's GEMM epilogue
  // fuses, those conv2d's store fuses.
  m.attr("ACTIVATIONS") = activation_names(kFuseNone);
  m.attr("GEMM_ACTIVATIONS") = activation_names(kFuseDense);
  m.attr("CONV_ACTIVATIONS") = activation_names(kFuseConv);
  NNFAST_DEF_ELEMENTWISE(gelu, "z * Phi(z), Phi the standard normal CDF (GELU, exact erf form).");
  m.def("gelu_backward", &gelu_backward, py::arg("grad_y"), py::arg("z"),
        py::arg("out") = py::none(), "grad_y * gelu'(z), gelu'(z) = Phi(z) + z phi(z).");
  m.def("leaky_relu", &leaky_relu, py::arg("z"), py::arg("negative_slope") = 0.01,
        py::arg("out") = py::none(), "z where z > 0, negative_slope * z elsewhere.");
  m.def("leaky_relu_backward", &leaky_relu_backward, py::arg("grad_y"), py::arg("z"),
        py::arg("negative_slope") = 0.01, py::arg("out") = py::none(),
        "grad_y where z > 0, negative_slope * grad_y elsewhere.");
  NNFAST_DEF_ELEMENTWISE(relu, "max(0, z) element-wise; NaN propagates.");
  NNFAST_DEF_ELEMENTWISE(sigmoid, "1 / (1 + exp(-z)) element-wise, stable for any z.");
  NNFAST_DEF_ELEMENTWISE(tanh, "tanh(z) element-wise.");
  NNFAST_DEF_ELEMENTWISE(relu_derivative, "(z > 0) as 1.0/0.0, the derivative of relu at z.");
  NNFAST_DEF_ELEMENTWISE(sigmoid_derivative, "s (1 - s) with s = sigmoid(z).");
  NNFAST_DEF_ELEMENTWISE(tanh_derivative, "1 - tanh(z)**2.");
  m.def("softmax", &softmax, py::arg("z"), py::arg("axis") = -1, py::arg("out") = py::none(),
        "exp(z) / sum(exp(z)) along axis, shifted by the max for stability.");
}

}  // namespace bind
}  // namespace nnfast
