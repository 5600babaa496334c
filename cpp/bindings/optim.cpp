// Bindings of the in-place optimizer updates and the tutorial's fused training loop.
#include "kernels/optim.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "bindings/families.h"

namespace nnfast {
namespace bind {
namespace {

// An array updated in place: float, C-contiguous, writeable, of `like`'s dtype and shape.
py::array require_state(py::handle obj, const py::array& like, const char* like_name,
                        const char* fn, const char* arg) {
  py::array a = require_float_array(obj, fn, arg);
  require_same_dtype(like, like_name, a, arg, fn);
  if (shape_of(a) != shape_of(like)) {
    throw py::value_error(std::string(fn) + ": " + arg + " must have the shape of " + like_name +
                          " " + shape_str(like) + ", got " + shape_str(a));
  }
  if (!a.writeable()) {
    throw py::value_error(std::string(fn) + ": " + arg + " must be writeable, got a read-only array");
  }
  return a;
}

// The parameter (updated in place) and its gradient: float arrays of one dtype and shape.
std::pair<py::array, py::array> require_param_and_grad(py::handle p_obj, py::handle g_obj,
                                                       const char* fn) {
  py::array p = require_float_array(p_obj, fn, "param");
  py::array g = require_float_array(g_obj, fn, "grad");
  require_same_dtype(p, "param", g, "grad", fn);
  if (shape_of(g) != shape_of(p)) {
    throw py::value_error(std::string(fn) + ": grad must have the shape of param " +
                          shape_str(p) + ", got " + shape_str(g));
  }
  return {require_state(p_obj, p, "param", fn, "param"), g};
}

void require_distinct(const std::vector<std::pair<const char*, const py::array*>>& arrays,
                      const char* fn) {
  for (size_t i = 0; i < arrays.size(); ++i) {
    for (size_t j = i + 1; j < arrays.size(); ++j) {
      if (overlaps(*arrays[i].second, *arrays[j].second)) {
        throw py::value_error(std::string(fn) + ": " + arrays[i].first + " and " +
                              arrays[j].first + " must not overlap");
      }
    }
  }
}

void require_finite(double value, const char* fn, const char* arg) {
  if (!std::isfinite(value)) {
    throw py::value_error(std::string(fn) + ": " + arg + " must be finite, got " +
                          std::to_string(value));
  }
}

void sgd_step(py::handle p_obj, py::handle g_obj, py::handle v_obj, py::handle lr_obj,
              py::handle momentum_obj) {
  const char* fn = "sgd_step";
  // NOTE: no default-constructed py::array here: pybind11's array() allocates an empty array.
  std::pair<py::array, py::array> pg = require_param_and_grad(p_obj, g_obj, fn);
  py::array &p = pg.first, &g = pg.second;
  const bool f32 = is_f32(p);
  const double lr = require_real(lr_obj, fn, "lr", f32);
  const double momentum = require_real(momentum_obj, fn, "momentum", f32);
  const bool has_v = !v_obj.is_none();
  if (!has_v && momentum != 0.0) {
    // NOTE: without a buffer to keep it in, the momentum would be silently ignored.
    throw py::value_error(std::string(fn) + ": momentum " + real_str(momentum) +
                          " needs a velocity array, got velocity=None");
  }
  py::array v = has_v ? require_state(v_obj, p, "param", fn, "velocity") : p;
  if (has_v) {
    require_distinct({{"param", &p}, {"grad", &g}, {"velocity", &v}}, fn);
  } else {
    require_distinct({{"param", &p}, {"grad", &g}}, fn);
  }
  const int64_t n = static_cast<int64_t>(p.size());
  dispatch_float(p, [&](auto t) {
    using T = decltype(t);
    T* pp = mdata<T>(p);
    const T* pg = cdata<T>(g);
    T* pv = has_v ? mdata<T>(v) : nullptr;
    py::gil_scoped_release release;
    nnfast::sgd_step<T>(pp, pg, pv, n, static_cast<T>(lr), static_cast<T>(momentum));
  });
}

void adam_step(py::handle p_obj, py::handle g_obj, py::handle m_obj, py::handle v_obj,
               py::handle lr_obj, py::handle beta1_obj, py::handle beta2_obj, py::handle eps_obj,
               py::handle step_obj) {
  const char* fn = "adam_step";
  // NOTE: no default-constructed py::array here: pybind11's array() allocates an empty array.
  std::pair<py::array, py::array> pg = require_param_and_grad(p_obj, g_obj, fn);
  py::array &p = pg.first, &g = pg.second;
  py::array m = require_state(m_obj, p, "param", fn, "m");
  py::array v = require_state(v_obj, p, "param", fn, "v");
  require_distinct({{"param", &p}, {"grad", &g}, {"m", &m}, {"v", &v}}, fn);
  const bool f32 = is_f32(p);
  const double lr = require_real(lr_obj, fn, "lr", f32);
  const double beta1 = require_real(beta1_obj, fn, "beta1", f32);
  const double beta2 = require_real(beta2_obj, fn, "beta2", f32);
  const double eps = require_real(eps_obj, fn, "eps", f32);
  for (auto [beta, name] : {std::pair{beta1, "beta1"}, std::pair{beta2, "beta2"}}) {
    if (!(beta >= 0.0 && beta < 1.0)) {
      throw py::value_error(std::string(fn) + ": " + name + " must be in [0, 1), got " +
                            real_str(beta));
    }
    // NOTE: a beta just below 1 rounds to 1.0f: the moment would never move (v stuck at 0 makes
    // the step lr m / eps).
    if (f32 && !(static_cast<float>(beta) < 1.0f)) {
      throw py::value_error(std::string(fn) + ": " + name + " must be in [0, 1) in float32, got " +
                            real_str(beta));
    }
  }
  if (!(eps >= 0.0)) {
    throw py::value_error(std::string(fn) + ": eps must be finite and >= 0, got " + real_str(eps));
  }
  const int64_t step = require_int(step_obj, fn, "step", 1, int64_t(1) << 62);
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const int64_t n = static_cast<int64_t>(p.size());
  dispatch_float(p, [&](auto t) {
    using T = decltype(t);
    T* pp = mdata<T>(p);
    const T* pg = cdata<T>(g);
    T* pm = mdata<T>(m);
    T* pv = mdata<T>(v);
    py::gil_scoped_release release;
    nnfast::adam_step<T>(pp, pg, pm, pv, n, static_cast<T>(lr), static_cast<T>(beta1),
                         static_cast<T>(beta2), static_cast<T>(eps), static_cast<T>(bc1),
                         static_cast<T>(bc2));
  });
}

// The tutorial's SimpleNeuralNetwork.train (not a kernel: a model, so it lives here, in portable
// C++ without per-ISA builds): epochs of full-batch forward (ReLU, sigmoid), MSE, backward and SGD
// on (w1, b1, w2, b2) in place. loss[e] per epoch; z1 a1 z2 a2 hold the last forward; first_a2
// (may be null) the first epoch's output. ws: n*(h+o) scratch.
template <typename T>
void train_loop(const T* x, const T* y, T* w1, T* b1, T* w2, T* b2, int64_t n, int64_t in,
                    int64_t hidden, int64_t out, int64_t epochs, T lr, T* loss, T* z1, T* a1, T* z2,
                    T* a2, T* first_a2, T* ws) {
  // NOTE: the tutorial's networks are a few neurons wide, far below any GEMM tile, so plain loops
  // in the tutorial's order of operations beat calling the blocked GEMM 6 times per epoch.
  T* dz2 = ws;            // (n, out)
  T* dz1 = ws + n * out;  // (n, hidden)
  const T inv_m = T(1) / static_cast<T>(n);
  for (int64_t e = 0; e < epochs; ++e) {
    // Forward: z1 = x w1 + b1, a1 = relu(z1), z2 = a1 w2 + b2, a2 = sigmoid(z2).
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = 0; j < hidden; ++j) {
        T s = 0;
        for (int64_t k = 0; k < in; ++k) s += x[r * in + k] * w1[k * hidden + j];
        const T z = s + b1[j];
        z1[r * hidden + j] = z;
        a1[r * hidden + j] = z > T(0) ? z : T(0);
      }
      for (int64_t j = 0; j < out; ++j) {
        T s = 0;
        for (int64_t k = 0; k < hidden; ++k) s += a1[r * hidden + k] * w2[k * out + j];
        const T z = s + b2[j];
        z2[r * out + j] = z;
        a2[r * out + j] = T(1) / (T(1) + std::exp(-z));
      }
    }
    if (e == 0 && first_a2 != nullptr) {
      for (int64_t i = 0; i < n * out; ++i) first_a2[i] = a2[i];
    }
    // Loss = mean((a2 - y)^2); dz2 = a2 - y.
    T sq = 0;
    for (int64_t i = 0; i < n * out; ++i) {
      const T d = a2[i] - y[i];
      dz2[i] = d;
      sq += d * d;
    }
    loss[e] = sq / static_cast<T>(n * out);
    // da1 = dz2 w2^T (with the weights before this epoch's update); dz1 = da1 * (z1 > 0).
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = 0; j < hidden; ++j) {
        T s = 0;
        for (int64_t k = 0; k < out; ++k) s += dz2[r * out + k] * w2[j * out + k];
        dz1[r * hidden + j] = z1[r * hidden + j] > T(0) ? s : T(0);
      }
    }
    // w2 -= lr (1/m) a1^T dz2; b2 -= lr (1/m) sum dz2; same for layer 1 with x and dz1.
    for (int64_t k = 0; k < hidden; ++k) {
      for (int64_t j = 0; j < out; ++j) {
        T s = 0;
        for (int64_t r = 0; r < n; ++r) s += a1[r * hidden + k] * dz2[r * out + j];
        w2[k * out + j] -= lr * (inv_m * s);
      }
    }
    for (int64_t j = 0; j < out; ++j) {
      T s = 0;
      for (int64_t r = 0; r < n; ++r) s += dz2[r * out + j];
      b2[j] -= lr * (inv_m * s);
    }
    for (int64_t k = 0; k < in; ++k) {
      for (int64_t j = 0; j < hidden; ++j) {
        T s = 0;
        for (int64_t r = 0; r < n; ++r) s += x[r * in + k] * dz1[r * hidden + j];
        w1[k * hidden + j] -= lr * (inv_m * s);
      }
    }
    for (int64_t j = 0; j < hidden; ++j) {
      T s = 0;
      for (int64_t r = 0; r < n; ++r) s += dz1[r * hidden + j];
      b1[j] -= lr * (inv_m * s);
    }
  }
}

// The tutorial's train loop; returns nothing, updates weights, loss and forward buffers in place.
void tutorial_train(py::handle x_obj, py::handle y_obj, py::handle w1_obj, py::handle b1_obj,
                    py::handle w2_obj, py::handle b2_obj, py::handle epochs_obj, double lr,
                    py::handle loss_obj, py::handle z1_obj, py::handle a1_obj, py::handle z2_obj,
                    py::handle a2_obj, py::handle first_obj) {
  const char* fn = "_tutorial_train";
  py::array x = require_float_array(x_obj, fn, "X");
  require_ndim(x, 2, fn, "X", "(n_samples, input_size)");
  py::array w1 = require_float_array(w1_obj, fn, "W1");
  require_same_dtype(x, "X", w1, "W1", fn);
  require_ndim(w1, 2, fn, "W1", "(input_size, hidden_size)");
  py::array w2 = require_float_array(w2_obj, fn, "W2");
  require_same_dtype(x, "X", w2, "W2", fn);
  require_ndim(w2, 2, fn, "W2", "(hidden_size, output_size)");
  const int64_t n = x.shape(0), in = x.shape(1), hidden = w1.shape(1), out = w2.shape(1);
  auto check = [&](py::handle obj, const char* arg, const Shape& shape, bool writeable) {
    py::array a = require_float_array(obj, fn, arg);
    require_same_dtype(x, "X", a, arg, fn);
    if (shape_of(a) != shape) {
      throw py::value_error(std::string(fn) + ": " + arg + " must have shape " +
                            shape_str(shape) + ", got " + shape_str(a));
    }
    if (writeable && !a.writeable()) {
      throw py::value_error(std::string(fn) + ": " + arg + " must be writeable");
    }
    return a;
  };
  w1 = check(w1_obj, "W1", {in, hidden}, true);
  w2 = check(w2_obj, "W2", {hidden, out}, true);
  py::array y = check(y_obj, "y", {n, out}, false);
  py::array b1 = check(b1_obj, "b1", {hidden}, true);
  py::array b2 = check(b2_obj, "b2", {out}, true);
  const int64_t epochs = require_int(epochs_obj, fn, "epochs", 0, int64_t(1) << 40);
  require_finite(lr, fn, "learning_rate");
  py::array loss = check(loss_obj, "loss", {epochs}, true);
  py::array z1 = check(z1_obj, "z1", {n, hidden}, true);
  py::array a1 = check(a1_obj, "a1", {n, hidden}, true);
  py::array z2 = check(z2_obj, "z2", {n, out}, true);
  py::array a2 = check(a2_obj, "a2", {n, out}, true);
  const bool has_first = !first_obj.is_none();
  py::array first = has_first ? check(first_obj, "first_a2", {n, out}, true) : py::array();
  std::vector<std::pair<const char*, const py::array*>> all = {
      {"X", &x},   {"y", &y},    {"W1", &w1}, {"b1", &b1}, {"W2", &w2}, {"b2", &b2},
      {"loss", &loss}, {"z1", &z1}, {"a1", &a1}, {"z2", &z2}, {"a2", &a2}};
  if (has_first) all.push_back({"first_a2", &first});
  require_distinct(all, fn);
  const int64_t ws_size = checked_product({n, hidden + out}, fn, "workspace");
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    std::vector<T> ws(static_cast<size_t>(ws_size));
    const T* px = cdata<T>(x);
    const T* py_ = cdata<T>(y);
    T *pw1 = mdata<T>(w1), *pb1 = mdata<T>(b1), *pw2 = mdata<T>(w2), *pb2 = mdata<T>(b2);
    T *pl = mdata<T>(loss), *pz1 = mdata<T>(z1), *pa1 = mdata<T>(a1), *pz2 = mdata<T>(z2);
    T* pa2 = mdata<T>(a2);
    T* pf = has_first ? mdata<T>(first) : nullptr;
    py::gil_scoped_release release;
    train_loop<T>(px, py_, pw1, pb1, pw2, pb2, n, in, hidden, out, epochs, static_cast<T>(lr), pl,
                  pz1, pa1, pz2, pa2, pf, ws.data());
  });
}

}  // namespace

NNFAST_REGISTER_FAMILY(optim) {
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"),
        py::arg("velocity") = py::none(), py::arg("lr"), py::arg("momentum") = 0.0,
        "In place: velocity = momentum * velocity + grad; param -= lr * velocity (or grad).");
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("step"),
        "In place Adam update (torch.optim.Adam's formula) at 1-based step `step`.");
  m.def("_tutorial_train", &tutorial_train, py::arg("X"), py::arg("y"), py::arg("W1"),
        py::arg("b1"), py::arg("W2"), py::arg("b2"), py::arg("epochs"), py::arg("learning_rate"),
        py::arg("loss"), py::arg("z1"), py::arg("a1"), py::arg("z2"), py::arg("a2"),
        py::arg("first_a2") = py::none(),
        "The tutorial's SimpleNeuralNetwork.train loop fused (ReLU hidden, sigmoid output, MSE).");
}

}  // namespace bind
}  // namespace nnfast
