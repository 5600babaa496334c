// Bindings of the loss kernels.
#include "kernels/loss.h"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "bindings/common.h"
#include "bindings/families.h"

namespace nnfast {
namespace bind {
namespace {

// pred/target (or prob/target) pair: float arrays of one dtype and shape.
void require_pair(const py::array& a, const char* a_name, const py::array& b, const char* b_name,
                  const char* fn) {
  require_same_dtype(a, a_name, b, b_name, fn);
  if (shape_of(a) != shape_of(b)) {
    throw py::value_error(std::string(fn) + ": " + b_name + " must have the shape of " + a_name +
                          " " + shape_str(a) + ", got " + shape_str(b));
  }
}

template <typename Sum>
double mean_of(const char* fn, py::handle a_obj, const char* a_name, py::handle b_obj,
               const char* b_name, Sum sum) {
  py::array a = require_float_array(a_obj, fn, a_name);
  py::array b = require_float_array(b_obj, fn, b_name);
  require_pair(a, a_name, b, b_name, fn);
  const int64_t n = static_cast<int64_t>(a.size());
  // NOTE: the mean of no elements is NaN, as in NumPy and PyTorch.
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  double s = 0.0;
  dispatch_float(a, [&](auto t) {
    using T = decltype(t);
    const T* pa = cdata<T>(a);
    const T* pb = cdata<T>(b);
    py::gil_scoped_release release;
    s = sum(pa, pb, n);
  });
  return s / static_cast<double>(n);
}

template <typename Grad>
py::array grad_of(const char* fn, py::handle a_obj, const char* a_name, py::handle b_obj,
                  const char* b_name, py::object out, Grad grad) {
  py::array a = require_float_array(a_obj, fn, a_name);
  py::array b = require_float_array(b_obj, fn, b_name);
  require_pair(a, a_name, b, b_name, fn);
  py::array g = prepare_out(out, a.dtype(), shape_of(a), fn, {a, b}, {a, b});
  const int64_t n = static_cast<int64_t>(a.size());
  dispatch_float(a, [&](auto t) {
    using T = decltype(t);
    const T* pa = cdata<T>(a);
    const T* pb = cdata<T>(b);
    T* pg = mdata<T>(g);
    py::gil_scoped_release release;
    grad(pa, pb, pg, n);
  });
  return g;
}

py::tuple softmax_cross_entropy(py::handle logits_obj, py::handle labels_obj, py::object out) {
  const char* fn = "softmax_cross_entropy";
  py::array z = require_float_array(logits_obj, fn, "logits");
  require_ndim(z, 2, fn, "logits", "(N, K)");
  const int64_t n = z.shape(0), k = z.shape(1);
  if (k < 1) {
    throw py::value_error(std::string(fn) + ": logits must have at least 1 class (K >= 1), got " +
                          "shape " + shape_str(z));
  }
  if (!py::isinstance<py::array>(labels_obj)) {
    throw py::type_error(std::string(fn) + ": labels must be a numpy.ndarray, got " +
                         py::str(py::type::handle_of(labels_obj).attr("__name__"))
                             .cast<std::string>());
  }
  py::array y = py::reinterpret_borrow<py::array>(labels_obj);
  const bool int_labels =
      y.dtype().kind() == 'i' && y.itemsize() == 8 && y.dtype().byteorder() == '=';
  if (int_labels) {
    if (y.ndim() != 1 || y.shape(0) != n) {
      throw py::value_error(std::string(fn) + ": labels must have N = " + std::to_string(n) +
                            " entries (one class index per row of logits), got shape " +
                            shape_str(y));
    }
    if (!(y.flags() & py::array::c_style)) {
      throw py::value_error(std::string(fn) + ": labels must be C-contiguous");
    }
    if (!is_aligned(y)) {  // the kernel reads int64 elements
      throw py::value_error(std::string(fn) + ": labels must be aligned to its dtype, got a " +
                            "misaligned array");
    }
    const int64_t* lab = cdata<int64_t>(y);
    for (int64_t i = 0; i < n; ++i) {
      if (lab[i] < 0 || lab[i] >= k) {
        throw py::value_error(std::string(fn) + ": labels must be class indices in [0, " +
                              std::to_string(k) + ") (K = logits.shape[1]), got " +
                              std::to_string(lab[i]) + " at index " + std::to_string(i));
      }
    }
  } else {
    if (!is_f32(y) && !is_f64(y)) {
      throw py::type_error(std::string(fn) +
                           ": labels must be int64 class indices or float one-hot rows, got "
                           "dtype " +
                           dtype_str(y));
    }
    y = require_float_array(labels_obj, fn, "labels");
    require_same_dtype(z, "logits", y, "labels", fn);
    if (shape_of(y) != shape_of(z)) {
      throw py::value_error(std::string(fn) + ": one-hot labels must have the shape of logits " +
                            shape_str(z) + " (N, K), got " + shape_str(y));
    }
  }
  // NOTE: out may not be the logits (the kernel writes a row's exponentials before it has read
  // the label's logit), so no input is allowed to overlap it.
  py::array g = prepare_out(out, z.dtype(), shape_of(z), fn, {z, y});
  double total = 0.0;
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T* pz = cdata<T>(z);
    T* pg = mdata<T>(g);
    const T scale = static_cast<T>(1.0 / static_cast<double>(n > 0 ? n : 1));
    if (int_labels) {
      const int64_t* lab = cdata<int64_t>(y);
      py::gil_scoped_release release;
      total = nnfast::softmax_ce_index<T>(pz, lab, pg, n, k, scale);
    } else {
      const T* py_ = cdata<T>(y);
      py::gil_scoped_release release;
      total = nnfast::softmax_ce_dense<T>(pz, py_, pg, n, k, scale);
    }
  });
  // NOTE: the mean over no rows is NaN, as in PyTorch.
  const double loss =
      n > 0 ? total / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
  return py::make_tuple(loss, g);
}

}  // namespace

NNFAST_REGISTER_FAMILY(loss) {
  m.def(
      "mse_loss",
      [](py::handle pred, py::handle target) {
        return mean_of("mse_loss", pred, "pred", target, "target",
                       [](auto* p, auto* t, int64_t n) { return nnfast::mse_sum(p, t, n); });
      },
      py::arg("pred"), py::arg("target"), "mean((pred - target)**2) over every element.");
  m.def(
      "mse_loss_grad",
      [](py::handle pred, py::handle target, py::object out) {
        return grad_of("mse_loss_grad", pred, "pred", target, "target", out,
                       [](auto* p, auto* t, auto* g, int64_t n) {
                         using T = std::remove_pointer_t<decltype(g)>;
                         nnfast::mse_grad(p, t, g, n, static_cast<T>(2.0 / static_cast<double>(n)));
                       });
      },
      py::arg("pred"), py::arg("target"), py::arg("out") = py::none(),
      "2 (pred - target) / pred.size.");
  m.def(
      "binary_cross_entropy",
      [](py::handle prob, py::handle target) {
        return mean_of("binary_cross_entropy", prob, "prob", target, "target",
                       [](auto* p, auto* t, int64_t n) { return nnfast::bce_sum(p, t, n); });
      },
      py::arg("prob"), py::arg("target"),
      "-mean(t log p + (1 - t) log(1 - p)), logs clamped at -100 like PyTorch.");
  m.def(
      "binary_cross_entropy_grad",
      [](py::handle prob, py::handle target, py::object out) {
        return grad_of("binary_cross_entropy_grad", prob, "prob", target, "target", out,
                       [](auto* p, auto* t, auto* g, int64_t n) {
                         using T = std::remove_pointer_t<decltype(g)>;
                         nnfast::bce_grad(p, t, g, n, static_cast<T>(1.0 / static_cast<double>(n)));
                       });
      },
      py::arg("prob"), py::arg("target"), py::arg("out") = py::none(),
      "(p - t) / max(p (1 - p), 1e-12) / p.size, PyTorch's gradient.");
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("out") = py::none(),
        "(mean over rows of -log softmax(logits)[label], (softmax(logits) - onehot) / N); out= "
        "receives the gradient.");
}

}  // namespace bind
}  // namespace nnfast
