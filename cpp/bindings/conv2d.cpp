// Bindings of the convolution kernels.
#include "kernels/conv2d.h"

#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "kernels/activations.h"
#include "runtime/workspace.h"
#include "bindings/families.h"
#include "bindings/spatial_args.h"

namespace nnfast {
namespace bind {
namespace {

// Padding beyond this is certainly a mistake (and keeps every size sum far from overflow).
constexpr int64_t kMaxPadding = int64_t(1) << 40;

// NOTE: no default-constructed py::array anywhere here: pybind11's array() allocates an empty
// float64 array (~1000 instructions each, a third of the tutorial call's binding overhead).
struct ConvCall {
  py::array x, w;
  bool single;       // the tutorial's (H, W) image with a (kh, kw) kernel
  bool w_converted;  // w is an integer kernel, converted to float64 by convert_int_kernel
  Conv2dGeometry g;
};

// Whether w is an integer (or bool) kernel the forward binding converts to float64 itself, as
// nnfast._convert would: an exact ndarray, C-contiguous, aligned, native byte order, with a
// float64 x. The tutorial's single-image form passes an int kernel; converting it here spares the
// Python-side astype (a new array and NumPy's cast machinery) on every call.
bool is_convertible_int_kernel(const py::array& x, py::handle w_obj) {
  if (!is_f64(x) || Py_TYPE(w_obj.ptr()) != py::detail::npy_api::get().PyArray_Type_) return false;
  const py::array w = py::reinterpret_borrow<py::array>(w_obj);
  const py::dtype dt = w.dtype();
  const char kind = dt.kind();
  const char order = dt.byteorder();  // '|' for one-byte types
  return (kind == 'i' || kind == 'u' || kind == 'b') && (order == '=' || order == '|') &&
         (w.flags() & py::array::c_style) && is_aligned(w);
}

ConvCall conv_args(py::handle x_obj, py::handle w_obj, py::handle stride_obj,
                   py::handle padding_obj, const char* fn, bool int_kernel_ok = false) {
  py::array x_arr = require_float_array(x_obj, fn, "x");
  const bool convert = int_kernel_ok && is_convertible_int_kernel(x_arr, w_obj);
  ConvCall call{
      std::move(x_arr),
      convert ? py::reinterpret_borrow<py::array>(w_obj) : require_float_array(w_obj, fn, "w"),
      false, convert, Conv2dGeometry{}};
  const py::array& x = call.x;
  const py::array& w = call.w;
  if (!convert) require_same_dtype(x, "x", w, "w", fn);
  Conv2dGeometry& g = call.g;
  if (x.ndim() == 2) {
    call.single = true;
    require_ndim(w, 2, fn, "w", "(kh, kw) for a 2-D image x");
    g.n = g.c = g.o = 1;
    g.h = x.shape(0);
    g.w = x.shape(1);
    g.kh = w.shape(0);
    g.kw = w.shape(1);
  } else if (x.ndim() == 4) {
    call.single = false;
    require_ndim(w, 4, fn, "w", "(out_channels, in_channels, kh, kw)");
    g.n = x.shape(0);
    g.c = x.shape(1);
    g.h = x.shape(2);
    g.w = x.shape(3);
    g.o = w.shape(0);
    g.kh = w.shape(2);
    g.kw = w.shape(3);
    if (w.shape(1) != g.c) {
      throw py::value_error(std::string(fn) + ": w must have in_channels = x.shape[1] = " +
                            std::to_string(g.c) + ", got w of shape " + shape_str(w));
    }
  } else {
    throw py::value_error(std::string(fn) + ": x must have 4 dims (N, C, H, W) or 2 dims (H, W), " +
                          "got shape " + shape_str(x));
  }
  if (g.kh < 1 || g.kw < 1) {
    throw py::value_error(std::string(fn) + ": the kernel must be at least 1x1, got w of shape " +
                          shape_str(w));
  }
  const IntPair stride = int_pair(stride_obj, fn, "stride", 1, kMaxInt);
  g.sh = stride.h;
  g.sw = stride.w;
  int64_t pt, pb, pl, pr;
  if (py::isinstance<py::str>(padding_obj)) {
    const std::string p = padding_obj.cast<std::string>();
    if (p == "valid") {
      pt = pb = pl = pr = 0;
    } else if (p == "same") {
      if (g.sh != 1 || g.sw != 1) {
        throw py::value_error(std::string(fn) + ": padding='same' needs stride 1, got stride " +
                              pair_str(stride));
      }
      // NOTE: as PyTorch, an even kernel gets its extra row/column of padding at the bottom/right.
      pt = (g.kh - 1) / 2;
      pb = g.kh - 1 - pt;
      pl = (g.kw - 1) / 2;
      pr = g.kw - 1 - pl;
    } else {
      throw py::value_error(std::string(fn) +
                            ": padding must be an int, a pair of ints, 'valid' or 'same', got " +
                            py::repr(padding_obj).cast<std::string>());
    }
  } else {
    const IntPair p = int_pair(padding_obj, fn, "padding", 0, kMaxPadding);
    pt = pb = p.h;
    pl = pr = p.w;
  }
  const int64_t hp = g.h + pt + pb, wp = g.w + pl + pr;
  if (hp < g.kh || wp < g.kw) {
    throw py::value_error(std::string(fn) + ": the kernel " + pair_str({g.kh, g.kw}) +
                          " is larger than the padded input " + pair_str({hp, wp}));
  }
  g.pt = pt;
  g.pl = pl;
  g.ho = (hp - g.kh) / g.sh + 1;
  g.wo = (wp - g.kw) / g.sw + 1;
  return call;
}

// conv2d's activations: those its store applies (kernels/activation_list.h); None is linear.
GemmActivation conv_activation(py::handle obj, const char* fn) {
  return parse_activation(obj, fn, kFuseConv, true);
}

Conv2dAlgorithm conv_algorithm(py::handle obj, const char* fn) {
  if (str_is(obj, "auto")) return Conv2dAlgorithm::automatic;
  const std::string name = py::isinstance<py::str>(obj) ? obj.cast<std::string>() : "";
  if (name == "auto") return Conv2dAlgorithm::automatic;
  if (name == "direct") return Conv2dAlgorithm::direct;
  if (name == "im2col") return Conv2dAlgorithm::im2col;
  throw py::value_error(std::string(fn) + ": algorithm must be 'auto', 'direct' or 'im2col', got " +
                        py::repr(obj).cast<std::string>());
}

const char* algorithm_name(Conv2dAlgorithm a) {
  return a == Conv2dAlgorithm::direct ? "direct" : "im2col";
}

Shape out_shape(const ConvCall& call) {
  const Conv2dGeometry& g = call.g;
  if (call.single) return {g.ho, g.wo};
  return {g.n, g.o, g.ho, g.wo};
}

// w (accepted by is_convertible_int_kernel) as float64 into dst, as NumPy's astype(float64).
void convert_int_kernel(const py::array& w, double* dst) {
  const int64_t n = static_cast<int64_t>(w.size());
  const char kind = w.dtype().kind();
  const void* src = w.data();
  auto cast_all = [&](auto t) {
    using I = decltype(t);
    const I* p = static_cast<const I*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<double>(p[i]);
  };
  if (kind == 'b') {
    const uint8_t* p = static_cast<const uint8_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = p[i] != 0 ? 1.0 : 0.0;
    return;
  }
  const bool is_signed = kind == 'i';
  switch (w.itemsize()) {
    case 1:
      return is_signed ? cast_all(int8_t{}) : cast_all(uint8_t{});
    case 2:
      return is_signed ? cast_all(int16_t{}) : cast_all(uint16_t{});
    case 4:
      return is_signed ? cast_all(int32_t{}) : cast_all(uint32_t{});
    default:
      return is_signed ? cast_all(int64_t{}) : cast_all(uint64_t{});
  }
}

// A converted integer kernel up to this many elements lives on the stack (the tutorial's 3x3).
constexpr int64_t kStackKernel = 64;

py::array conv2d(py::handle x_obj, py::handle w_obj, py::handle b_obj, py::handle stride_obj,
                 py::handle padding_obj, py::object out, py::handle act_obj, py::handle algo_obj) {
  const char* fn = "conv2d";
  ConvCall call = conv_args(x_obj, w_obj, stride_obj, padding_obj, fn, true);
  const Conv2dGeometry g = call.g;
  const bool has_bias = !b_obj.is_none();
  // NOTE: without a bias, b is x (never read): it only fills the overlap list below.
  const py::array b = has_bias ? require_float_array(b_obj, fn, "b") : call.x;
  if (has_bias) {
    require_same_dtype(call.x, "x", b, "b", fn);
    const bool ok = call.single ? (b.ndim() == 0 || (b.ndim() == 1 && b.shape(0) == 1))
                                : (b.ndim() == 1 && b.shape(0) == g.o);
    if (!ok) {
      throw py::value_error(std::string(fn) + ": b must have shape " +
                            (call.single ? std::string("() or (1,)")
                                         : "(out_channels,) = " + shape_str(Shape{g.o})) +
                            ", got " + shape_str(b));
    }
  }
  const GemmActivation act = conv_activation(act_obj, fn);
  const Conv2dAlgorithm algo = conv_algorithm(algo_obj, fn);
  const Shape shape = out_shape(call);
  // A converted integer kernel is read into a copy first, as the Python-side conversion did, so
  // out may share its bytes.
  const py::array& w_in = call.w_converted ? call.x : call.w;
  py::array y = prepare_out(out, call.x.dtype(), shape, fn, {call.x, w_in, b});
  double w_stack[kStackKernel];
  std::vector<double> w_heap;
  const double* w_f64 = nullptr;
  if (call.w_converted) {
    const int64_t n = static_cast<int64_t>(call.w.size());
    if (n > kStackKernel) w_heap.resize(static_cast<size_t>(n));
    double* dst = n > kStackKernel ? w_heap.data() : w_stack;
    convert_int_kernel(call.w, dst);
    w_f64 = dst;
  }
  dispatch_float(call.x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(call.x);
    const T* pw = cdata<T>(call.w);
    if constexpr (std::is_same_v<T, double>) {
      if (w_f64 != nullptr) pw = w_f64;
    }
    const T* pb = has_bias ? cdata<T>(b) : nullptr;
    T* py_ = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::conv2d_forward<T>(px, pw, pb, py_, g, act, algo);
  });
  return y;
}

py::tuple conv2d_backward(py::handle x_obj, py::handle w_obj, py::handle gy_obj,
                          py::handle stride_obj, py::handle padding_obj, py::handle need_gx_obj,
                          py::object out, py::handle act_obj, py::handle y_obj) {
  const char* fn = "conv2d_backward";
  ConvCall call = conv_args(x_obj, w_obj, stride_obj, padding_obj, fn);
  const Conv2dGeometry g = call.g;
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  require_same_dtype(call.x, "x", gy, "grad_y", fn);
  const Shape want = out_shape(call);
  if (shape_of(gy) != want) {
    throw py::value_error(std::string(fn) + ": grad_y must have the output's shape " +
                          (call.single ? "(Ho, Wo) = " : "(N, out_channels, Ho, Wo) = ") +
                          shape_str(want) + ", got " + shape_str(gy));
  }
  const bool need_gx = bool_value(need_gx_obj, fn, "need_grad_x");
  // An activation fused into the forward: grad_y is dL/dy of y = act(z), turned into dL/dz from y.
  const GemmActivation act = conv_activation(act_obj, fn);
  py::array y = gy;  // placeholder without an activation (never read)
  if (act != GemmActivation::linear) {
    if (y_obj.is_none()) {
      throw py::value_error(std::string(fn) +
                            ": y (the forward's output) is required with an activation");
    }
    y = require_float_array(y_obj, fn, "y");
    require_same_dtype(call.x, "x", y, "y", fn);
    if (shape_of(y) != want) {
      throw py::value_error(std::string(fn) + ": y must have the output's shape " +
                            shape_str(want) + ", got " + shape_str(y));
    }
  }
  static const std::vector<const char*> kNames = {"grad_x", "grad_w", "grad_b"};
  const std::vector<py::object> outs = unpack_outs(std::move(out), fn, kNames);
  if (!need_gx && !outs[0].is_none()) {
    throw py::value_error(std::string(fn) + ": " + out_entry_name(0, kNames) +
                          " must be None when need_grad_x is False");
  }
  const Shape shapes[3] = {shape_of(call.x), shape_of(call.w),
                           call.single ? Shape{} : Shape{g.o}};
  // NOTE: filled by push_back, not sized: a default py::array allocates an empty array. Without
  // need_grad_x, entry 0 is x as a placeholder (never given, never written).
  std::vector<py::array> grads;
  grads.reserve(3);
  std::vector<bool> given(3);
  for (size_t i = 0; i < 3; ++i) {
    if (i == 0 && !need_gx) {
      grads.push_back(call.x);
      continue;
    }
    given[i] = !outs[i].is_none();
    grads.push_back(prepare_named_out(outs[i], call.x.dtype(), shapes[i], fn,
                                      out_entry_name(i, kNames), {call.x, call.w, gy, y}));
  }
  require_disjoint_outs(grads, given, fn, kNames);
  py::array &gx = grads[0], &gw = grads[1], &gb = grads[2];
  py::object gx_obj = need_gx ? py::object(gx) : py::object(py::none());
  dispatch_float(call.x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(call.x);
    const T* pw = cdata<T>(call.w);
    const T* pgy = cdata<T>(gy);
    const T* pyo = cdata<T>(y);
    T* pgx = need_gx ? mdata<T>(gx) : nullptr;
    T* pgw = mdata<T>(gw);
    T* pgb = mdata<T>(gb);
    const int64_t n = static_cast<int64_t>(gy.size());
    py::gil_scoped_release release;
    if (act != GemmActivation::linear) {
      // dL/dz in this thread's binding scratch (kept between calls: no allocation per step).
      T* pgz = static_cast<T*>(runtime::thread_workspace(
          runtime::WorkspaceSlot::binding, static_cast<size_t>(n) * sizeof(T)));
      nnfast::activation_output_grad<T>(pyo, pgy, pgz, n, act);
      pgy = pgz;
    }
    nnfast::conv2d_backward<T>(px, pw, pgy, pgx, pgw, pgb, g);
  });
  return py::make_tuple(gx_obj, gw, gb);
}

std::string conv2d_algorithm(py::handle x_obj, py::handle w_obj, py::handle stride_obj,
                             py::handle padding_obj) {
  const ConvCall call = conv_args(x_obj, w_obj, stride_obj, padding_obj, "_conv2d_algorithm");
  return algorithm_name(conv2d_choose_algorithm(call.g));
}

std::string conv2d_kernels_text(py::handle x_obj, py::handle w_obj, py::handle stride_obj,
                                py::handle padding_obj) {
  const ConvCall call = conv_args(x_obj, w_obj, stride_obj, padding_obj, "_conv2d_kernels");
  std::string text;
  dispatch_float(call.x, [&](auto t) { text = conv2d_kernels<decltype(t)>(call.g); });
  return text;
}

}  // namespace

NNFAST_REGISTER_FAMILY(conv2d) {
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("stride") = 1, py::arg("padding") = 0, py::arg("out") = py::none(),
        py::arg("activation") = "linear", py::arg("algorithm") = "auto",
        "act(conv(x, w) + b): NCHW x with OIHW w, or an (H, W) image with a (kh, kw) kernel.");
  m.def("conv2d_backward", &conv2d_backward, py::arg("x"), py::arg("w"), py::arg("grad_y"),
        py::arg("stride") = 1, py::arg("padding") = 0, py::arg("need_grad_x") = true,
        py::arg("out") = py::none(), py::arg("activation") = "linear", py::arg("y") = py::none(),
        "(grad_x or None, grad_w, grad_b) of y = act(conv2d(x, w, b)) given dL/dy (act from y, "
        "the forward's output); out=(grad_x, grad_w, grad_b) with None entries allowed writes "
        "the supplied ones.");
  testing_module(m).def("conv2d_algorithm", &conv2d_algorithm, py::arg("x"), py::arg("w"), py::arg("stride") = 1,
        py::arg("padding") = 0, "The forward algorithm the automatic choice picks: 'direct' or "
        "'im2col'.");
  m.def("_conv2d_kernels", &conv2d_kernels_text, py::arg("x"), py::arg("w"), py::arg("stride") = 1,
        py::arg("padding") = 0,
        "The kernels the automatic choice runs for this shape and dtype on the active ISA "
        "(forward, grad_x, grad_w), as text for benchmark notes.");
}

}  // namespace bind
}  // namespace nnfast
