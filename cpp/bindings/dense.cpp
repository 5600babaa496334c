// Bindings of the GEMM and the dense layer.
#include "kernels/dense.h"

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "bindings/families.h"
#include "kernels/gemm.h"
#include "runtime/tuning.h"

namespace nnfast {
namespace bind {
namespace {

// dense's activations: those its GEMM epilogue applies (kernels/activation_list.h).
GemmActivation dense_activation(py::handle obj, const char* fn) {
  return parse_activation(obj, fn, kFuseDense, false);
}

void require_shape(const py::array& a, const Shape& want, const char* fn, const char* arg,
                   const char* dims) {
  if (shape_of(a) != want) {
    throw py::value_error(std::string(fn) + ": " + arg + " must have shape " + dims + " = " +
                          shape_str(want) + ", got " + shape_str(a));
  }
}

struct DenseShape {
  int64_t batch, in, out;
};

// A dense layer's x (batch, in) and w (in, out), checked against each other.
DenseShape check_dense_xw(const py::array& x, const py::array& w, const char* fn) {
  require_ndim(x, 2, fn, "x", "(batch, in_features)");
  require_ndim(w, 2, fn, "w", "(in_features, out_features)");
  if (w.shape(0) != x.shape(1)) {
    throw py::value_error(
        std::string(fn) + ": w must have shape (in_features, out_features) with " +
        "in_features = x.shape[1] = " + std::to_string(x.shape(1)) + ", got " + shape_str(w));
  }
  return {x.shape(0), x.shape(1), w.shape(1)};
}

py::array matmul(py::handle a_obj, py::handle b_obj, py::object out, bool trans_a, bool trans_b) {
  const char* fn = "matmul";
  py::array a = require_float_array(a_obj, fn, "a");
  py::array b = require_float_array(b_obj, fn, "b");
  require_same_dtype(a, "a", b, "b", fn);
  require_ndim(a, 2, fn, "a", "(m, k)");
  require_ndim(b, 2, fn, "b", "(k, n)");
  const int64_t m = trans_a ? a.shape(1) : a.shape(0), ka = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
  if (ka != kb) {
    throw py::value_error(std::string(fn) + ": inner dimensions must match, got a " +
                          (trans_a ? "(transposed) " : "") + shape_str(a) + " and b " +
                          (trans_b ? "(transposed) " : "") + shape_str(b));
  }
  py::array c = prepare_out(out, a.dtype(), {m, n}, fn, {a, b});
  dispatch_float(a, [&](auto t) {
    using T = decltype(t);
    const T* pa = cdata<T>(a);
    const T* pb = cdata<T>(b);
    T* pc = mdata<T>(c);
    const int64_t lda = a.shape(1), ldb = b.shape(1);
    py::gil_scoped_release release;
    nnfast::gemm<T>(trans_a, trans_b, m, n, ka, T(1), pa, lda, pb, ldb, T(0), pc, n);
  });
  return c;
}

py::array dense(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle act_obj,
                py::object out) {
  const char* fn = "dense";
  py::array x = require_float_array(x_obj, fn, "x");
  py::array w = require_float_array(w_obj, fn, "w");
  require_same_dtype(x, "x", w, "w", fn);
  const DenseShape d = check_dense_xw(x, w, fn);
  const int64_t batch = d.batch, in = d.in, outf = d.out;
  // NOTE: no default-constructed py::array: pybind11's array() allocates an empty float64 array
  // (~1000 instructions); without a bias, b aliases x and is never read.
  const bool has_bias = !b_obj.is_none();
  const py::array b = has_bias ? require_float_array(b_obj, fn, "b") : x;
  if (has_bias) {
    require_same_dtype(x, "x", b, "b", fn);
    require_shape(b, {outf}, fn, "b", "(out_features,)");
  }
  const GemmActivation act = dense_activation(act_obj, fn);
  py::array y = has_bias ? prepare_out(out, x.dtype(), {batch, outf}, fn, {x, w, b})
                         : prepare_out(out, x.dtype(), {batch, outf}, fn, {x, w});
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(x);
    const T* pw = cdata<T>(w);
    const T* pb = has_bias ? cdata<T>(b) : nullptr;
    T* py_ = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::dense_forward<T>(px, pw, pb, py_, batch, in, outf, act);
  });
  return y;
}

py::tuple dense_backward(py::handle x_obj, py::handle w_obj, py::handle a_obj,
                         py::handle grad_a_obj, py::handle act_obj, py::object out) {
  const char* fn = "dense_backward";
  py::array x = require_float_array(x_obj, fn, "x");
  py::array w = require_float_array(w_obj, fn, "w");
  py::array a = require_float_array(a_obj, fn, "a");
  py::array ga = require_float_array(grad_a_obj, fn, "grad_a");
  require_same_dtype(x, "x", w, "w", fn);
  require_same_dtype(x, "x", a, "a", fn);
  require_same_dtype(x, "x", ga, "grad_a", fn);
  const DenseShape d = check_dense_xw(x, w, fn);
  const int64_t batch = d.batch, in = d.in, outf = d.out;
  require_shape(a, {batch, outf}, fn, "a", "(batch, out_features)");
  require_shape(ga, {batch, outf}, fn, "grad_a", "(batch, out_features)");
  const GemmActivation act = dense_activation(act_obj, fn);
  static const std::vector<const char*> kNames = {"grad_x", "grad_w", "grad_b"};
  const std::vector<py::object> outs = unpack_outs(std::move(out), fn, kNames);
  const Shape shapes[3] = {{batch, in}, {in, outf}, {outf}};
  std::vector<py::array> g;  // filled by push_back: a default py::array allocates
  g.reserve(3);
  std::vector<bool> given(3);
  for (size_t i = 0; i < 3; ++i) {
    given[i] = !outs[i].is_none();
    g.push_back(prepare_named_out(outs[i], x.dtype(), shapes[i], fn, out_entry_name(i, kNames),
                                  {x, w, a, ga}));
  }
  require_disjoint_outs(g, given, fn, kNames);
  py::array &gx = g[0], &gw = g[1], &gb = g[2];
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(x);
    const T* pw = cdata<T>(w);
    const T* pa = cdata<T>(a);
    const T* pga = cdata<T>(ga);
    T* pgx = mdata<T>(gx);
    T* pgw = mdata<T>(gw);
    T* pgb = mdata<T>(gb);
    py::gil_scoped_release release;
    nnfast::dense_backward<T>(px, pw, pa, pga, pgx, pgw, pgb, batch, in, outf, act);
  });
  return py::make_tuple(gx, gw, gb);
}

// c = act(alpha op(a) op(b) + beta c + bias) in place: the full C++ gemm_ex, for tests.
void gemm_inplace(py::handle a_obj, py::handle b_obj, py::handle c_obj, double alpha, double beta,
                  bool trans_a, bool trans_b, py::handle bias_row_obj, py::handle bias_col_obj,
                  py::handle act_obj) {
  const char* fn = "_gemm";
  py::array a = require_float_array(a_obj, fn, "a");
  py::array b = require_float_array(b_obj, fn, "b");
  py::array c = require_float_array(c_obj, fn, "c");
  require_same_dtype(a, "a", b, "b", fn);
  require_same_dtype(a, "a", c, "c", fn);
  require_ndim(a, 2, fn, "a", "(m, k)");
  require_ndim(b, 2, fn, "b", "(k, n)");
  const int64_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const int64_t n = trans_b ? b.shape(0) : b.shape(1);
  if ((trans_b ? b.shape(1) : b.shape(0)) != k) {
    throw py::value_error(std::string(fn) + ": inner dimensions must match");
  }
  require_shape(c, {m, n}, fn, "c", "(m, n)");
  if (!c.writeable() || overlaps(c, a) || overlaps(c, b)) {
    throw py::value_error(std::string(fn) + ": c must be writeable and not overlap a or b");
  }
  py::array br, bc;
  if (!bias_row_obj.is_none()) {
    br = require_float_array(bias_row_obj, fn, "bias_row");
    require_same_dtype(a, "a", br, "bias_row", fn);
    require_shape(br, {m}, fn, "bias_row", "(m,)");
  }
  if (!bias_col_obj.is_none()) {
    bc = require_float_array(bias_col_obj, fn, "bias_col");
    require_same_dtype(a, "a", bc, "bias_col", fn);
    require_shape(bc, {n}, fn, "bias_col", "(n,)");
  }
  const GemmActivation act = dense_activation(act_obj, fn);
  dispatch_float(a, [&](auto t) {
    using T = decltype(t);
    GemmEpilogue<T> ep;
    ep.bias_row = bias_row_obj.is_none() ? nullptr : cdata<T>(br);
    ep.bias_col = bias_col_obj.is_none() ? nullptr : cdata<T>(bc);
    ep.activation = act;
    const T* pa = cdata<T>(a);
    const T* pb = cdata<T>(b);
    T* pc = mdata<T>(c);
    const int64_t lda = a.shape(1), ldb = b.shape(1);
    py::gil_scoped_release release;
    nnfast::gemm_ex<T>(trans_a, trans_b, m, n, k, static_cast<T>(alpha), pa, lda, pb, ldb,
                       static_cast<T>(beta), pc, n, ep);
  });
}

}  // namespace

NNFAST_REGISTER_FAMILY(dense) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out") = py::none(),
        py::arg("trans_a") = false, py::arg("trans_b") = false,
        "op(a) @ op(b) for 2-D float arrays; trans_a/trans_b read a/b transposed in place.");
  m.def("dense", &dense, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("activation") = "linear", py::arg("out") = py::none(),
        "act(x @ w + b) with bias and activation fused into the GEMM's store.");
  m.def("dense_backward", &dense_backward, py::arg("x"), py::arg("w"), py::arg("a"),
        py::arg("grad_a"), py::arg("activation") = "linear", py::arg("out") = py::none(),
        "(grad_x, grad_w, grad_b) of a = act(x @ w + b) given dL/da; out=(grad_x, grad_w, "
        "grad_b) with None entries allowed writes the supplied ones.");
  py::module_ testing = testing_module(m);
  testing.def("gemm", &gemm_inplace, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("bias_row") = py::none(), py::arg("bias_col") = py::none(),
        py::arg("activation") = "linear",
        "Testing hook: c = act(alpha op(a) op(b) + beta c + bias) in place (C++ gemm_ex).");
  testing.def(
      "set_gemm_shared_pack_min",
      [](int64_t madds) {
        if (madds < 0) throw py::value_error("_set_gemm_shared_pack_min: madds must be >= 0");
        return runtime::gemm_shared_pack_min_madds.exchange(madds);
      },
      py::arg("madds"),
      "Testing hook: GEMMs from this many multiply-adds share packed operands; returns the old "
      "value.");
}

}  // namespace bind
}  // namespace nnfast
