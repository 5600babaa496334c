// Bindings of the pooling kernels: max, average and global average pooling.
#include "kernels/pool.h"

#include <string>
#include <utility>
#include <vector>

#include "bindings/common.h"
#include "bindings/families.h"
#include "bindings/spatial_args.h"

namespace nnfast {
namespace bind {
namespace {

// Window and stride: stride None means the window size.
void pool_window(py::handle pool_obj, py::handle stride_obj, const char* fn, Pool2dGeometry* g) {
  const IntPair pool = int_pair(pool_obj, fn, "pool_size", 1, kMaxInt);
  const IntPair stride =
      stride_obj.is_none() ? pool : int_pair(stride_obj, fn, "stride", 1, kMaxInt);
  g->ph = pool.h;
  g->pw = pool.w;
  g->sh = stride.h;
  g->sw = stride.w;
}

// The input_shape argument of a backward: a tuple (or list) of 4 ints (N, C, H, W) or, when
// two_dims, also of 2 (H, W); each in [0, 2**63 - 1].
Shape input_shape(py::handle shape_obj, const char* fn, bool two_dims) {
  const std::string what = two_dims ? "a tuple of 2 or 4 ints" : "a tuple of 4 ints (N, C, H, W)";
  if (!py::isinstance<py::tuple>(shape_obj) && !py::isinstance<py::list>(shape_obj)) {
    throw py::type_error(std::string(fn) + ": input_shape must be " + what + ", got " +
                         type_name(shape_obj));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(shape_obj);
  if (seq.size() != 4 && !(two_dims && seq.size() == 2)) {
    throw py::value_error(std::string(fn) + ": input_shape must be " + what + ", got " +
                          std::to_string(seq.size()));
  }
  Shape in_shape;
  for (size_t i = 0; i < seq.size(); ++i) {
    const std::string arg = "input_shape[" + std::to_string(i) + "]";
    in_shape.push_back(int_value(seq[i], fn, arg.c_str(), 0, kMaxInt));
  }
  return in_shape;
}

// The geometry of a forward pooling of x ((N, C, H, W) or (H, W)) and the output's shape.
Shape forward_geometry(const py::array& x, py::handle pool_obj, py::handle stride_obj,
                       const char* fn, Pool2dGeometry* g) {
  if (x.ndim() != 2 && x.ndim() != 4) {
    throw py::value_error(std::string(fn) + ": x must have 4 dims (N, C, H, W) or 2 dims (H, W), " +
                          "got shape " + shape_str(x));
  }
  pool_window(pool_obj, stride_obj, fn, g);
  const bool single = x.ndim() == 2;
  g->h = x.shape(x.ndim() - 2);
  g->w = x.shape(x.ndim() - 1);
  g->planes = single ? 1 : x.shape(0) * x.shape(1);
  if (g->ph > g->h || g->pw > g->w) {
    throw py::value_error(std::string(fn) + ": pool_size " + pair_str({g->ph, g->pw}) +
                          " is larger than the input " + pair_str({g->h, g->w}));
  }
  g->ho = (g->h - g->ph) / g->sh + 1;
  g->wo = (g->w - g->pw) / g->sw + 1;
  return single ? Shape{g->ho, g->wo} : Shape{x.shape(0), x.shape(1), g->ho, g->wo};
}

// The geometry of a backward pooling: grad_y against input_shape and the window, with the
// messages of max_pool2d_backward.
void backward_geometry(const py::array& gy, const Shape& in_shape, const char* fn,
                       Pool2dGeometry* g) {
  const int nd = static_cast<int>(in_shape.size());
  if (gy.ndim() != nd) {
    throw py::value_error(std::string(fn) + ": grad_y must have " + std::to_string(nd) +
                          " dims like input_shape " + shape_str(in_shape) + ", got shape " +
                          shape_str(gy));
  }
  if (nd == 4 && (gy.shape(0) != in_shape[0] || gy.shape(1) != in_shape[1])) {
    throw py::value_error(std::string(fn) + ": grad_y must have the (N, C) of input_shape " +
                          shape_str(in_shape) + ", got shape " + shape_str(gy));
  }
  g->h = in_shape[nd - 2];
  g->w = in_shape[nd - 1];
  g->ho = gy.shape(nd - 2);
  g->wo = gy.shape(nd - 1);
  g->planes = nd == 4 ? gy.shape(0) * gy.shape(1) : 1;
}

// Raises unless grad_y's plane is the pooled size of the input with g's window and stride.
void require_pooled_size(const Pool2dGeometry& g, const Shape& in_shape, const char* fn) {
  const bool fits = g.ph <= g.h && g.pw <= g.w;
  const int64_t ho = fits ? (g.h - g.ph) / g.sh + 1 : 0, wo = fits ? (g.w - g.pw) / g.sw + 1 : 0;
  if (!fits || ho != g.ho || wo != g.wo) {
    throw py::value_error(std::string(fn) + ": grad_y's plane " + pair_str({g.ho, g.wo}) +
                          " is not the pooled size of input_shape " + shape_str(in_shape) +
                          " with pool_size " + pair_str({g.ph, g.pw}) + " and stride " +
                          pair_str({g.sh, g.sw}));
  }
}

py::object max_pool2d(py::handle x_obj, py::handle pool_obj, py::handle stride_obj,
                      py::handle ret_obj, py::object out) {
  const char* fn = "max_pool2d";
  py::array x = require_float_array(x_obj, fn, "x");
  Pool2dGeometry g;
  const Shape shape = forward_geometry(x, pool_obj, stride_obj, fn, &g);
  const bool ret = bool_value(ret_obj, fn, "return_indices");
  // NOTE: no default-constructed py::array (pybind11 allocates an empty array for one); without
  // indices, idx is y (never used as indices).
  std::vector<py::array> ys;
  ys.reserve(2);
  if (ret) {
    // NOTE: as a NumPy ufunc with two results, out is then a tuple (y, indices).
    static const std::vector<const char*> kNames = {"y", "indices"};
    const std::vector<py::object> outs = unpack_outs(std::move(out), fn, kNames);
    ys.push_back(
        prepare_named_out(outs[0], x.dtype(), shape, fn, out_entry_name(0, kNames), {x}));
    ys.push_back(prepare_named_out(outs[1], py::dtype::of<int64_t>(), shape, fn,
                                   out_entry_name(1, kNames), {x}));
    require_disjoint_outs(ys, {!outs[0].is_none(), !outs[1].is_none()}, fn, kNames);
  } else {
    ys.push_back(prepare_out(std::move(out), x.dtype(), shape, fn, {x}));
    ys.push_back(ys[0]);
  }
  py::array& y = ys[0];
  py::array& idx = ys[1];
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(x);
    T* py_ = mdata<T>(y);
    int64_t* pi = ret ? static_cast<int64_t*>(idx.mutable_data()) : nullptr;
    py::gil_scoped_release release;
    nnfast::max_pool2d_forward<T>(px, py_, pi, g);
  });
  if (ret) return py::make_tuple(y, idx);
  return std::move(y);
}

// Flat position of the first index outside its plane (or, with check_window, outside its own
// window), or -1: the kernel's check, done before anything is written.
int64_t first_invalid_index(const int64_t* idx, const Pool2dGeometry& g, bool check_window) {
  const int64_t plane = g.h * g.w;
  const int64_t count = g.planes * g.ho * g.wo;
  if (!check_window) {
    // The common case (indices from max_pool2d itself) in one pass of plain integer ops the
    // compiler vectorises: v is in [0, plane) iff neither v nor plane - 1 - v (unsigned, so
    // wrapping) has its top bit set.
    const uint64_t last = static_cast<uint64_t>(plane) - 1;
    uint64_t acc = 0;
    for (int64_t i = 0; i < count; ++i) {
      const uint64_t v = static_cast<uint64_t>(idx[i]);
      acc |= v | (last - v);
    }
    if (!(acc >> 63)) return -1;
  }
  int64_t pos = 0;
  for (int64_t p = 0; p < g.planes; ++p) {
    for (int64_t oy = 0; oy < g.ho; ++oy) {
      for (int64_t ox = 0; ox < g.wo; ++ox, ++pos) {
        const int64_t at = idx[pos];
        bool ok = at >= 0 && at < plane;
        if (ok && check_window) {
          const int64_t r = at / g.w, c = at % g.w;
          ok = r >= oy * g.sh && r < oy * g.sh + g.ph && c >= ox * g.sw && c < ox * g.sw + g.pw;
        }
        if (!ok) return pos;
      }
    }
  }
  return -1;
}

py::array max_pool2d_backward(py::handle gy_obj, py::handle idx_obj, py::handle shape_obj,
                              py::handle pool_obj, py::handle stride_obj, py::object out) {
  const char* fn = "max_pool2d_backward";
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  if (!py::isinstance<py::array>(idx_obj)) {
    throw py::type_error(std::string(fn) + ": indices must be an int64 numpy.ndarray, got " +
                         type_name(idx_obj));
  }
  py::array idx = py::reinterpret_borrow<py::array>(idx_obj);
  if (!idx.dtype().is(py::dtype::of<int64_t>()) &&
      !(idx.dtype().kind() == 'i' && idx.itemsize() == 8 && idx.dtype().byteorder() == '=')) {
    throw py::type_error(std::string(fn) + ": indices must have dtype int64, got " +
                         dtype_str(idx));
  }
  if (!(idx.flags() & py::array::c_style)) {
    throw py::value_error(std::string(fn) + ": indices must be C-contiguous");
  }
  if (!is_aligned(idx)) {  // the kernel reads int64 elements
    throw py::value_error(std::string(fn) + ": indices must be aligned to its dtype, got a " +
                          "misaligned array");
  }
  const Shape in_shape = input_shape(shape_obj, fn, true);
  const int nd = static_cast<int>(in_shape.size());
  Pool2dGeometry g;
  backward_geometry(gy, in_shape, fn, &g);
  if (shape_of(idx) != shape_of(gy)) {
    throw py::value_error(std::string(fn) + ": indices must have the shape of grad_y " +
                          shape_str(gy) + ", got " + shape_str(idx));
  }
  const bool check_window = !pool_obj.is_none();
  g.ph = g.pw = g.sh = g.sw = 1;
  if (check_window) {
    pool_window(pool_obj, stride_obj, fn, &g);
    require_pooled_size(g, in_shape, fn);
  } else if (!stride_obj.is_none()) {
    throw py::value_error(std::string(fn) + ": stride needs pool_size");
  }
  const bool out_given = !out.is_none();
  py::array gx = prepare_out(std::move(out), gy.dtype(), in_shape, fn, {gy, idx});
  const int64_t* pi = static_cast<const int64_t*>(idx.data());
  int64_t bad = -1;
  if (out_given) {
    // NOTE: the kernel checks each index as it scatters, so a failing call would leave partial
    // sums in the caller's out: check them all first (a fresh array is simply dropped).
    py::gil_scoped_release release;
    bad = first_invalid_index(pi, g, check_window);
  }
  if (bad < 0) {
    dispatch_float(gy, [&](auto t) {
      using T = decltype(t);
      const T* pgy = cdata<T>(gy);
      T* pgx = mdata<T>(gx);
      py::gil_scoped_release release;
      bad = nnfast::max_pool2d_backward<T>(pgy, pi, pgx, g, check_window);
    });
  }
  if (bad >= 0) {
    // Position of the offending index, for the message.
    Shape pos(static_cast<size_t>(nd));
    int64_t rest = bad;
    for (int d = nd - 1; d >= 0; --d) {
      pos[static_cast<size_t>(d)] = rest % gy.shape(d);
      rest /= gy.shape(d);
    }
    std::string where = "indices[";
    for (int d = 0; d < nd; ++d) {
      where += (d ? ", " : "") + std::to_string(pos[static_cast<size_t>(d)]);
    }
    const int64_t value = static_cast<const int64_t*>(idx.data())[bad];
    where += "] = " + std::to_string(value);
    const int64_t plane = g.h * g.w;
    if (value < 0 || value >= plane) {
      throw py::value_error(std::string(fn) + ": " + where + " is not a position in the " +
                            std::to_string(g.h) + "x" + std::to_string(g.w) +
                            " input plane (0 <= index < " + std::to_string(plane) + ")");
    }
    const int64_t oy = pos[static_cast<size_t>(nd - 2)], ox = pos[static_cast<size_t>(nd - 1)];
    throw py::value_error(std::string(fn) + ": " + where + " is outside its pooling window (rows " +
                          std::to_string(oy * g.sh) + ".." + std::to_string(oy * g.sh + g.ph - 1) +
                          ", cols " + std::to_string(ox * g.sw) + ".." +
                          std::to_string(ox * g.sw + g.pw - 1) + ")");
  }
  return gx;
}

py::array avg_pool2d(py::handle x_obj, py::handle pool_obj, py::handle stride_obj,
                     py::object out) {
  const char* fn = "avg_pool2d";
  py::array x = require_float_array(x_obj, fn, "x");
  Pool2dGeometry g;
  const Shape shape = forward_geometry(x, pool_obj, stride_obj, fn, &g);
  py::array y = prepare_out(std::move(out), x.dtype(), shape, fn, {x});
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(x);
    T* py_ = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::avg_pool2d_forward<T>(px, py_, g);
  });
  return y;
}

py::array avg_pool2d_backward(py::handle gy_obj, py::handle shape_obj, py::handle pool_obj,
                              py::handle stride_obj, py::object out) {
  const char* fn = "avg_pool2d_backward";
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  const Shape in_shape = input_shape(shape_obj, fn, true);
  Pool2dGeometry g;
  backward_geometry(gy, in_shape, fn, &g);
  pool_window(pool_obj, stride_obj, fn, &g);
  require_pooled_size(g, in_shape, fn);
  py::array gx = prepare_out(std::move(out), gy.dtype(), in_shape, fn, {gy});
  dispatch_float(gy, [&](auto t) {
    using T = decltype(t);
    const T* pgy = cdata<T>(gy);
    T* pgx = mdata<T>(gx);
    py::gil_scoped_release release;
    nnfast::avg_pool2d_backward<T>(pgy, pgx, g);
  });
  return gx;
}

py::array global_avg_pool2d(py::handle x_obj, py::object out) {
  const char* fn = "global_avg_pool2d";
  py::array x = require_float_array(x_obj, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  const int64_t planes = x.shape(0) * x.shape(1), hw = x.shape(2) * x.shape(3);
  py::array y = prepare_out(std::move(out), x.dtype(), Shape{x.shape(0), x.shape(1)}, fn, {x});
  dispatch_float(x, [&](auto t) {
    using T = decltype(t);
    const T* px = cdata<T>(x);
    T* py_ = mdata<T>(y);
    py::gil_scoped_release release;
    nnfast::global_avg_pool2d_forward<T>(px, py_, planes, hw);
  });
  return y;
}

py::array global_avg_pool2d_backward(py::handle gy_obj, py::handle shape_obj, py::object out) {
  const char* fn = "global_avg_pool2d_backward";
  py::array gy = require_float_array(gy_obj, fn, "grad_y");
  const Shape in_shape = input_shape(shape_obj, fn, false);
  require_ndim(gy, 2, fn, "grad_y", "(N, C)");
  if (gy.shape(0) != in_shape[0] || gy.shape(1) != in_shape[1]) {
    throw py::value_error(std::string(fn) + ": grad_y must have the (N, C) of input_shape " +
                          shape_str(in_shape) + ", got shape " + shape_str(gy));
  }
  py::array gx = prepare_out(std::move(out), gy.dtype(), in_shape, fn, {gy});
  // (Sizes checked by prepare_out: the product of in_shape fits.)
  const int64_t planes = in_shape[0] * in_shape[1], hw = in_shape[2] * in_shape[3];
  dispatch_float(gy, [&](auto t) {
    using T = decltype(t);
    const T* pgy = cdata<T>(gy);
    T* pgx = mdata<T>(gx);
    py::gil_scoped_release release;
    nnfast::global_avg_pool2d_backward<T>(pgy, pgx, planes, hw);
  });
  return gx;
}

}  // namespace

NNFAST_REGISTER_FAMILY(pool) {
  m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("pool_size") = 2,
        py::arg("stride") = py::none(), py::arg("return_indices") = false,
        py::arg("out") = py::none(),
        "Max over pool_size windows (floor mode); with return_indices, also the flat argmax "
        "within each (H, W) plane (int64), and out is then a tuple (y, indices).");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("grad_y"), py::arg("indices"),
        py::arg("input_shape"), py::arg("pool_size") = py::none(), py::arg("stride") = py::none(),
        py::arg("out") = py::none(),
        "grad_x: grad_y scattered (added) at indices; every index is validated first (out is "
        "not written when one is invalid).");
  m.def("avg_pool2d", &avg_pool2d, py::arg("x"), py::arg("pool_size") = 2,
        py::arg("stride") = py::none(), py::arg("out") = py::none(),
        "Mean over pool_size windows (floor mode, no padding).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("grad_y"), py::arg("input_shape"),
        py::arg("pool_size") = 2, py::arg("stride") = py::none(), py::arg("out") = py::none(),
        "grad_x: each window's grad_y / (ph * pw) added over the window.");
  m.def("global_avg_pool2d", &global_avg_pool2d, py::arg("x"), py::arg("out") = py::none(),
        "(N, C, H, W) -> (N, C): the mean of each plane.");
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward, py::arg("grad_y"),
        py::arg("input_shape"), py::arg("out") = py::none(),
        "grad_x of input_shape (N, C, H, W): grad_y / (H * W) over each plane.");
}

}  // namespace bind
}  // namespace nnfast
