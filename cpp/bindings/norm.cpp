// Bindings of the batch-normalization kernels (formulas in kernels/norm.h).
#include "kernels/norm.h"

#include <string>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "bindings/families.h"
#include "bindings/spatial_args.h"

namespace nnfast {
namespace bind {
namespace {

// The (n, c, s) view of x, which must have at least 2 dims (N, C, ...).
BatchNormShape bn_shape(const py::array& x, const char* fn) {
  if (x.ndim() < 2) {
    throw py::value_error(std::string(fn) + ": x must have at least 2 dims (N, C, ...), got shape " +
                          shape_str(x));
  }
  const Shape sh = shape_of(x);
  int64_t s = 1;
  for (size_t i = 2; i < sh.size(); ++i) s *= sh[i];
  return BatchNormShape{sh[0], sh[1], s};
}

// A per-channel array: x's dtype, shape (C,); writeable when `state` (updated in place) and then
// not overlapping x.
py::array channel_array(py::handle obj, const py::array& x, int64_t c, const char* fn,
                        const char* arg, bool state = false) {
  py::array a = require_float_array(obj, fn, arg);
  require_same_dtype(x, "x", a, arg, fn);
  if (a.ndim() != 1 || a.shape(0) != c) {
    throw py::value_error(std::string(fn) + ": " + arg + " must have shape (C,) = (" +
                          std::to_string(c) + ",), one value per channel of x, got shape " +
                          shape_str(a));
  }
  if (state) {
    if (!a.writeable()) {
      throw py::value_error(std::string(fn) + ": " + arg +
                            " must be writeable (it is updated in place)");
    }
    if (overlaps(a, x)) {
      throw py::value_error(std::string(fn) + ": " + arg + " must not overlap x");
    }
  }
  return a;
}

// activation: linear (or None) or relu, by their names in kernels/activation_list.h; true for
// relu. Any other activation of the list is a ValueError naming the two.
bool bn_relu(py::handle obj, const char* fn) {
  const char* linear = kActivations[static_cast<int>(Activation::linear)].name;
  const char* relu = kActivations[static_cast<int>(Activation::relu)].name;
  if (obj.is_none() || str_is(obj, linear)) return false;
  if (str_is(obj, relu)) return true;
  const std::string expected = std::string("'") + linear + "' or '" + relu + "'";
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(fn) + ": activation must be a str (" + expected + "), got " +
                         type_name(obj));
  }
  throw py::value_error(std::string(fn) + ": activation must be one of " + expected + ", got " +
                        py::repr(obj).cast<std::string>());
}

double bn_eps(py::handle obj, const char* fn, bool f32) {
  const double eps = require_real(obj, fn, "eps", f32);
  if (!(eps > 0.0)) {
    throw py::value_error(std::string(fn) + ": eps must be > 0, got " + real_str(eps));
  }
  return eps;
}

py::tuple batch_norm_train(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj,
                           py::handle rm_obj, py::handle rv_obj, py::handle momentum_obj,
                           py::handle eps_obj, py::handle act_obj, py::object out) {
  const char* fn = "batch_norm_train";
  py::array x = require_float_array(x_obj, fn, "x");
  const BatchNormShape g = bn_shape(x, fn);
  py::array gamma = channel_array(gamma_obj, x, g.c, fn, "gamma");
  py::array beta = channel_array(beta_obj, x, g.c, fn, "beta");
  py::array rm = channel_array(rm_obj, x, g.c, fn, "running_mean", true);
  py::array rv = channel_array(rv_obj, x, g.c, fn, "running_var", true);
  if (overlaps(rm, rv)) {
    throw py::value_error(std::string(fn) + ": running_mean and running_var must not overlap");
  }
  const double momentum = require_real(momentum_obj, fn, "momentum", false);
  if (!(momentum >= 0.0 && momentum <= 1.0)) {
    throw py::value_error(std::string(fn) + ": momentum must be in [0, 1], got " +
                          real_str(momentum));
  }
  const double eps = bn_eps(eps_obj, fn, is_f32(x));
  const bool relu = bn_relu(act_obj, fn);
  if (g.n * g.s <= 1) {
    throw py::value_error(std::string(fn) +
                          ": expected more than 1 value per channel when training, got input of "
                          "shape " + shape_str(x));
  }
  py::array y = prepare_out(std::move(out), x.dtype(), shape_of(x), fn,
                            {x, gamma, beta, rm, rv});
  py::array mean = new_array(x.dtype(), Shape{g.c}, fn);
  py::array invstd = new_array(x.dtype(), Shape{g.c}, fn);
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T *px = cdata<T>(x), *pg = cdata<T>(gamma), *pb = cdata<T>(beta);
    T *py_ = mdata<T>(y), *prm = mdata<T>(rm), *prv = mdata<T>(rv);
    T *pm = mdata<T>(mean), *pi = mdata<T>(invstd);
    py::gil_scoped_release release;
    nnfast::batch_norm_train<T>(px, py_, g, pg, pb, prm, prv, momentum, eps, relu, pm, pi);
  });
  return py::make_tuple(y, mean, invstd);
}

py::array batch_norm_eval(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj,
                          py::handle rm_obj, py::handle rv_obj, py::handle eps_obj,
                          py::handle act_obj, py::object out) {
  const char* fn = "batch_norm_eval";
  py::array x = require_float_array(x_obj, fn, "x");
  const BatchNormShape g = bn_shape(x, fn);
  py::array gamma = channel_array(gamma_obj, x, g.c, fn, "gamma");
  py::array beta = channel_array(beta_obj, x, g.c, fn, "beta");
  py::array rm = channel_array(rm_obj, x, g.c, fn, "running_mean");
  py::array rv = channel_array(rv_obj, x, g.c, fn, "running_var");
  const double eps = bn_eps(eps_obj, fn, is_f32(x));
  const bool relu = bn_relu(act_obj, fn);
  py::array y = prepare_out(std::move(out), x.dtype(), shape_of(x), fn, {gamma, beta, rm, rv},
                            {x});
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T *px = cdata<T>(x), *pg = cdata<T>(gamma), *pb = cdata<T>(beta);
    const T *prm = cdata<T>(rm), *prv = cdata<T>(rv);
    T* py_ = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::batch_norm_eval<T>(px, py_, g, pg, pb, prm, prv, eps, relu);
  });
  return y;
}

py::tuple batch_norm_backward(py::handle gy_obj, py::handle x_obj, py::handle gamma_obj,
                              py::handle mean_obj, py::handle invstd_obj, py::handle y_obj,
                              py::handle act_obj, py::handle training_obj, py::object out) {
  const char* fn = "batch_norm_backward";
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  py::array x = require_float_array(x_obj, fn, "x");
  require_same_dtype(x, "x", gy, "grad_y", fn);
  const BatchNormShape g = bn_shape(x, fn);
  if (shape_of(gy) != shape_of(x)) {
    throw py::value_error(std::string(fn) + ": grad_y must have x's shape " + shape_str(x) +
                          ", got " + shape_str(gy));
  }
  py::array gamma = channel_array(gamma_obj, x, g.c, fn, "gamma");
  py::array mean = channel_array(mean_obj, x, g.c, fn, "mean");
  py::array invstd = channel_array(invstd_obj, x, g.c, fn, "invstd");
  const bool relu = bn_relu(act_obj, fn);
  const bool training = bool_value(training_obj, fn, "training");
  py::array y = x;  // a placeholder when relu is off (never read)
  if (relu) {
    if (y_obj.is_none()) {
      throw py::value_error(std::string(fn) +
                            ": y (the forward's output) is required with activation='relu'");
    }
    y = require_float_array(y_obj, fn, "y");
    require_same_dtype(x, "x", y, "y", fn);
    if (shape_of(y) != shape_of(x)) {
      throw py::value_error(std::string(fn) + ": y must have x's shape " + shape_str(x) +
                            ", got " + shape_str(y));
    }
  }
  static const std::vector<const char*> kNames = {"grad_x", "grad_gamma", "grad_beta"};
  const std::vector<py::object> outs = unpack_outs(std::move(out), fn, kNames);
  const Shape shapes[3] = {shape_of(x), Shape{g.c}, Shape{g.c}};
  std::vector<py::array> grads;
  grads.reserve(3);
  std::vector<bool> given(3);
  for (size_t i = 0; i < 3; ++i) {
    given[i] = !outs[i].is_none();
    grads.push_back(prepare_named_out(outs[i], x.dtype(), shapes[i], fn,
                                      out_entry_name(i, kNames), {gy, x, gamma, mean, invstd, y}));
  }
  require_disjoint_outs(grads, given, fn, kNames);
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T *pgy = cdata<T>(gy), *px = cdata<T>(x), *py_ = relu ? cdata<T>(y) : nullptr;
    const T *pg = cdata<T>(gamma), *pm = cdata<T>(mean), *pi = cdata<T>(invstd);
    T *pgx = mdata<T>(grads[0]), *pgg = mdata<T>(grads[1]), *pgb = mdata<T>(grads[2]);
    py::gil_scoped_release release;
    nnfast::batch_norm_backward<T>(pgy, px, py_, g, pg, pm, pi, training, relu, pgx, pgg, pgb);
  });
  return py::make_tuple(grads[0], grads[1], grads[2]);
}

}  // namespace

NNFAST_REGISTER_FAMILY(norm) {
  m.def("batch_norm_train", &batch_norm_train, py::arg("x"), py::arg("gamma"), py::arg("beta"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("momentum") = 0.1,
        py::arg("eps") = 1e-5, py::arg("activation") = "linear", py::arg("out") = py::none(),
        "Training batch norm over axis 1: (y, mean, invstd); running statistics updated in place.");
  m.def("batch_norm_eval", &batch_norm_eval, py::arg("x"), py::arg("gamma"), py::arg("beta"),
        py::arg("running_mean"), py::arg("running_var"), py::arg("eps") = 1e-5,
        py::arg("activation") = "linear", py::arg("out") = py::none(),
        "Inference batch norm over axis 1 from the running statistics.");
  m.def("batch_norm_backward", &batch_norm_backward, py::arg("grad_y"), py::arg("x"),
        py::arg("gamma"), py::arg("mean"), py::arg("invstd"), py::arg("y") = py::none(),
        py::arg("activation") = "linear", py::arg("training") = true, py::arg("out") = py::none(),
        "Batch norm backward: (grad_x, grad_gamma, grad_beta).");
}

}  // namespace bind
}  // namespace nnfast
