// Bindings of the dropout kernels (the mask rule is in kernels/dropout.h).
#include "kernels/dropout.h"

#include <cmath>
#include <string>
#include <utility>

#include "bindings/common.h"
#include "bindings/families.h"
#include "bindings/spatial_args.h"

namespace nnfast {
namespace bind {
namespace {

// p, checked to be in [0, 1): "dropout: p must be in [0, 1), got 1.0".
double dropout_p(py::handle obj, const char* fn) {
  const double p = real_value(obj, fn, "p");
  if (!std::isfinite(p)) {
    throw py::value_error(std::string(fn) + ": p must be finite and in [0, 1), got " +
                          real_str(p));
  }
  if (!(p >= 0.0 && p < 1.0)) {
    throw py::value_error(std::string(fn) + ": p must be in [0, 1), got " + real_str(p));
  }
  return p;
}

// The rule's threshold floor(p * 2^32) (exact: p * 2^32 < 2^32 is a double, floored).
uint32_t keep_threshold(double p) { return static_cast<uint32_t>(std::floor(p * 4294967296.0)); }

// Runs the kernel on x (null: the mask itself) into y, for p and seed.
template <typename T>
void run_dropout(const T* x, T* y, int64_t n, double p, uint64_t seed) {
  const uint32_t t = keep_threshold(p);
  const T scale = p == 0.0 ? T(1) : static_cast<T>(1.0 / (1.0 - p));
  py::gil_scoped_release release;
  nnfast::dropout<T>(x, y, n, seed, p == 0.0 ? 0u : t, scale);
}

py::array dropout_apply(const char* fn, const char* arg, py::handle x_obj, py::handle p_obj,
                        py::handle seed_obj, py::object out) {
  py::array x = require_float_array(x_obj, fn, arg);
  const double p = dropout_p(p_obj, fn);
  const uint64_t seed = require_uint64(seed_obj, fn, "seed");
  py::array y = prepare_out(std::move(out), x.dtype(), shape_of(x), fn, {x}, {x});
  const int64_t n = static_cast<int64_t>(x.size());
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    run_dropout<T>(cdata<T>(x), mdata<T>(y), n, p, seed);
  });
  return y;
}

py::array dropout_mask(py::handle shape_obj, py::handle p_obj, py::handle seed_obj,
                       py::handle dtype_obj) {
  const char* fn = "dropout_mask";
  if (!py::isinstance<py::tuple>(shape_obj) && !py::isinstance<py::list>(shape_obj)) {
    throw py::type_error(std::string(fn) + ": shape must be a tuple of ints, got " +
                         type_name(shape_obj));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(shape_obj);
  Shape shape;
  for (size_t i = 0; i < seq.size(); ++i) {
    const std::string arg = "shape[" + std::to_string(i) + "]";
    shape.push_back(int_value(seq[i], fn, arg.c_str(), 0, kMaxInt));
  }
  const double p = dropout_p(p_obj, fn);
  const uint64_t seed = require_uint64(seed_obj, fn, "seed");
  const std::string bad_dtype = std::string(fn) + ": dtype must be float32 or float64, got ";
  py::dtype dtype = py::dtype::of<float>();
  try {
    dtype = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype_obj));
  } catch (py::error_already_set&) {
    throw py::type_error(bad_dtype + py::repr(dtype_obj).cast<std::string>());
  }
  if (!dtype.equal(py::dtype::of<float>()) && !dtype.equal(py::dtype::of<double>())) {
    throw py::type_error(bad_dtype + py::str(dtype).cast<std::string>());
  }
  py::array m = new_array(dtype, shape, fn);
  const int64_t n = static_cast<int64_t>(m.size());
  dispatch_float(m, [&](auto t) {
    using T = decltype(t);
    run_dropout<T>(nullptr, mdata<T>(m), n, p, seed);
  });
  return m;
}

}  // namespace

NNFAST_REGISTER_FAMILY(dropout) {
  m.def(
      "dropout",
      [](py::handle x, py::handle p, py::handle seed, py::object out) {
        return dropout_apply("dropout", "x", x, p, seed, std::move(out));
      },
      py::arg("x"), py::arg("p"), py::arg("seed"), py::arg("out") = py::none(),
      "Inverted dropout: x * keep / (1 - p), keep from Philox4x32-10 over (seed, element index).");
  m.def(
      "dropout_backward",
      [](py::handle grad_y, py::handle p, py::handle seed, py::object out) {
        return dropout_apply("dropout_backward", "grad_y", grad_y, p, seed, std::move(out));
      },
      py::arg("grad_y"), py::arg("p"), py::arg("seed"), py::arg("out") = py::none(),
      "grad_y * keep / (1 - p): dropout's mask recomputed from (seed, element index).");
  m.def("dropout_mask", &dropout_mask, py::arg("shape"), py::arg("p"), py::arg("seed"),
        py::arg("dtype"), "The scaled keep mask keep / (1 - p) of dropout for a shape.");
}

}  // namespace bind
}  // namespace nnfast
