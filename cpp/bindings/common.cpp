#include "bindings/common.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace nnfast {
namespace bind {

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

Shape shape_of(const py::array& a) {
  Shape s(static_cast<size_t>(a.ndim()));
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s[static_cast<size_t>(i)] = a.shape(i);
  return s;
}

std::string shape_str(const py::array& a) { return shape_str(shape_of(a)); }

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

namespace {
constexpr int kNpyFloat = 11;   // NPY_FLOAT
constexpr int kNpyDouble = 12;  // NPY_DOUBLE

// NOTE: numpy spells native byte order '=' and big-endian-on-little-endian '>' (and vice versa).
bool native_num(const py::dtype& dt, int num) { return dt.num() == num && dt.byteorder() == '='; }
}  // namespace

bool is_f32(const py::array& a) { return native_num(a.dtype(), kNpyFloat); }
bool is_f64(const py::array& a) { return native_num(a.dtype(), kNpyDouble); }

namespace {
// Whether obj is a numpy.ma.MaskedArray: its mask would be silently ignored by a kernel.
bool is_masked_array(py::handle obj) {
  if (Py_TYPE(obj.ptr()) == py::detail::npy_api::get().PyArray_Type_) return false;
  // NOTE: leaked on purpose: a static py::object would be released after the interpreter ends.
  static PyObject* masked =
      py::object(py::module_::import("numpy.ma").attr("MaskedArray")).release().ptr();
  return PyObject_IsInstance(obj.ptr(), masked) == 1;
}
}  // namespace

py::array require_float_array(py::handle obj, const char* fn, const char* arg) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(fn) + ": " + arg +
                         " must be a float32 or float64 numpy.ndarray, got " +
                         py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  }
  if (is_masked_array(obj)) {
    throw py::type_error(std::string(fn) + ": " + arg +
                         " is a masked array (numpy.ma.MaskedArray); nnfast would ignore its mask: "
                         "pass " + arg + ".filled(value) or " + arg + ".data");
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!is_f32(a) && !is_f64(a)) {
    throw py::type_error(std::string(fn) + ": " + arg +
                         " must have dtype float32 or float64, got " + dtype_str(a));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(fn) + ": " + arg +
                          " must be C-contiguous, got an array with strides " +
                          shape_str(Shape(a.strides(), a.strides() + a.ndim())));
  }
  if (!is_aligned(a)) {
    // NOTE: kernels may read elements with plain (aligned) scalar loads.
    throw py::value_error(std::string(fn) + ": " + arg +
                          " must be aligned to its dtype, got a misaligned array");
  }
  return a;
}

void require_same_dtype(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, const char* fn) {
  if (is_f32(a) != is_f32(b)) {
    throw py::value_error(std::string(fn) + ": " + b_name + " must have the dtype of " + a_name +
                          " (" + dtype_str(a) + "), got " + dtype_str(b));
  }
}

void require_ndim(const py::array& a, int ndim, const char* fn, const char* arg, const char* dims) {
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(fn) + ": " + arg + " must have " + std::to_string(ndim) +
                          " dims " + dims + ", got shape " + shape_str(a));
  }
}

int64_t require_int(py::handle obj, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  // The common case first, with no message built: an exact int in range.
  if (PyLong_CheckExact(obj.ptr())) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow == 0 && v >= lo && v <= hi) return static_cast<int64_t>(v);
    if (overflow == 0 && v == -1 && PyErr_Occurred()) throw py::error_already_set();
  }
  const std::string where = std::string(fn) + ": " + arg;
  if (py::isinstance<py::array>(obj)) {
    // NOTE: arrays define __index__ and would raise NumPy's own message (not naming fn/arg)
    // for anything but a 0-d integer array.
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (a.ndim() != 0 || (kind != 'i' && kind != 'u')) {
      throw py::type_error(where + " must be an integer, got a " + dtype_str(a) +
                           " array of shape " + shape_str(a));
    }
  }
  if (py::isinstance<py::bool_>(obj) || !PyIndex_Check(obj.ptr())) {
    throw py::type_error(where + " must be an integer, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
  if (!value) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (overflow == 0 && v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || v < lo || v > hi) {
    throw py::value_error(where + " must be in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], got " + std::string(py::str(value)));
  }
  return static_cast<int64_t>(v);
}

int64_t checked_product(const Shape& shape, const char* fn, const char* what) {
  // Bytes must fit in a signed 64-bit count too, so cap elements at 2^63 / 8.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 8;
  int64_t n = 1;
  bool zero = false;
  for (int64_t d : shape) {
    if (d < 0) {
      throw py::value_error(std::string(fn) + ": " + what + " has a negative size in shape " +
                            shape_str(shape));
    }
    if (d == 0) zero = true;
  }
  // NOTE: NumPy refuses an empty shape whose non-zero sizes overflow too ("array is too big",
  // not naming fn), so the check skips zeros instead of stopping at them.
  for (int64_t d : shape) {
    if (d == 0) continue;
    if (n > kMax / d) {
      throw py::value_error(std::string(fn) + ": " + what + " of shape " + shape_str(shape) +
                            " has more elements than can be addressed");
    }
    n *= d;
  }
  return zero ? 0 : n;
}

py::array new_array(const py::dtype& dtype, const Shape& shape, const char* fn) {
  checked_product(shape, fn, "the output");
  // NOTE: NumPy's constructor called directly with the shape and pybind11's C strides on the
  // stack (the strides py::array(dtype, dims) gives, even for an empty array): py::array builds
  // three heap vectors, a fifth of the tutorial convolution's binding overhead.
  constexpr size_t kMaxDims = 8;
  if (shape.size() > kMaxDims) {
    return py::array(dtype, std::vector<py::ssize_t>(shape.begin(), shape.end()));
  }
  Py_intptr_t dims[kMaxDims], strides[kMaxDims];
  const int nd = static_cast<int>(shape.size());
  Py_intptr_t stride = dtype.itemsize();
  for (int i = nd - 1; i >= 0; --i) {
    dims[i] = static_cast<Py_intptr_t>(shape[static_cast<size_t>(i)]);
    strides[i] = stride;
    stride *= dims[i];
  }
  const auto& api = py::detail::npy_api::get();
  // NOTE: PyArray_NewFromDescr steals the dtype reference; NumPy raises MemoryError
  // (ArrayMemoryError) itself when the allocation fails.
  PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, dtype.inc_ref().ptr(), nd, dims,
                                          strides, nullptr, 0, nullptr);
  if (a == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(a);
}

namespace {
struct ByteRange {
  const char* lo;
  const char* hi;
};

ByteRange byte_range(const py::array& a) {
  const char* p = static_cast<const char*>(a.data());
  if (a.size() == 0) return {p, p};
  const char* lo = p;
  const char* hi = p + a.itemsize();
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    const py::ssize_t extent = (a.shape(i) - 1) * a.strides(i);
    if (extent < 0) {
      lo += extent;
    } else {
      hi += extent;
    }
  }
  return {lo, hi};
}
}  // namespace

bool overlaps(const py::array& a, const py::array& b) {
  const ByteRange ra = byte_range(a), rb = byte_range(b);
  if (ra.lo == ra.hi || rb.lo == rb.hi) return false;
  return ra.lo < rb.hi && rb.lo < ra.hi;
}

bool same_memory(const py::array& a, const py::array& b) {
  if (a.data() != b.data() || a.ndim() != b.ndim() || a.itemsize() != b.itemsize()) return false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) != b.shape(i) || a.strides(i) != b.strides(i)) return false;
  }
  return true;
}

py::array prepare_out(py::object out, const py::dtype& dtype, const Shape& shape, const char* fn,
                      std::initializer_list<py::array> inputs,
                      std::initializer_list<py::array> inplace_ok) {
  return prepare_named_out(std::move(out), dtype, shape, fn, "out", inputs, inplace_ok);
}

py::array prepare_named_out(py::object out, const py::dtype& dtype, const Shape& shape,
                            const char* fn, const std::string& arg,
                            std::initializer_list<py::array> inputs,
                            std::initializer_list<py::array> inplace_ok) {
  if (out.is_none()) return new_array(dtype, shape, fn);
  const std::string where = std::string(fn) + ": " + arg;
  if (!py::isinstance<py::array>(out)) {
    throw py::type_error(where + " must be a numpy.ndarray or None, got " +
                         py::str(py::type::handle_of(out).attr("__name__")).cast<std::string>());
  }
  py::array o = py::reinterpret_borrow<py::array>(out);
  if (!native_num(o.dtype(), dtype.num())) {
    throw py::type_error(where + " must have dtype " + py::str(dtype).cast<std::string>() +
                         ", got " + dtype_str(o));
  }
  if (shape_of(o) != shape) {
    throw py::value_error(where + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(o));
  }
  if (!(o.flags() & py::array::c_style)) {
    throw py::value_error(where + " must be C-contiguous");
  }
  if (!o.writeable()) {
    throw py::value_error(where + " must be writeable, got a read-only array");
  }
  if (!is_aligned(o)) {
    throw py::value_error(where + " must be aligned to its dtype, got a misaligned array");
  }
  for (const py::array& in : inputs) {
    if (!overlaps(o, in)) continue;
    bool allowed = false;
    for (const py::array& ok : inplace_ok) {
      if (ok.is(in) && same_memory(o, in)) allowed = true;
    }
    if (!allowed) {
      throw py::value_error(where +
                            " must not overlap an input (only exact in-place use is "
                            "supported where documented)");
    }
  }
  return o;
}

namespace {
std::string names_str(const std::vector<const char*>& names) {
  std::string s = "(";
  for (size_t i = 0; i < names.size(); ++i) s += std::string(i ? ", " : "") + names[i];
  return s + ")";
}
}  // namespace

std::string out_entry_name(size_t i, const std::vector<const char*>& names) {
  return "out[" + std::to_string(i) + "] (" + names[i] + ")";
}

std::vector<py::object> unpack_outs(py::object out, const char* fn,
                                    const std::vector<const char*>& names) {
  std::vector<py::object> entries(names.size(), py::none());
  if (out.is_none()) return entries;
  // NOTE: a tuple only, as NumPy's ufuncs: a list could be mistaken for array data.
  if (!py::isinstance<py::tuple>(out)) {
    throw py::type_error(std::string(fn) + ": out must be None or a tuple " + names_str(names) +
                         " of numpy.ndarray or None entries, got " +
                         py::str(py::type::handle_of(out).attr("__name__")).cast<std::string>());
  }
  py::tuple t = py::reinterpret_borrow<py::tuple>(out);
  if (t.size() != names.size()) {
    throw py::value_error(std::string(fn) + ": out must have " + std::to_string(names.size()) +
                          " entries " + names_str(names) + ", got " + std::to_string(t.size()));
  }
  for (size_t i = 0; i < names.size(); ++i) entries[i] = t[i];
  return entries;
}

void require_disjoint_outs(const std::vector<py::array>& outs, const std::vector<bool>& given,
                           const char* fn, const std::vector<const char*>& names) {
  for (size_t i = 0; i < outs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (given[i] && given[j] && overlaps(outs[i], outs[j])) {
        throw py::value_error(std::string(fn) + ": " + out_entry_name(i, names) +
                              " must not overlap " + out_entry_name(j, names));
      }
    }
  }
}

std::string real_str(double v) { return py::str(py::float_(v)).cast<std::string>(); }

double real_value(py::handle obj, const char* fn, const char* arg) {
  const std::string where = std::string(fn) + ": " + arg;
  const std::string type_name = py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
  // NOTE: leaked on purpose (see is_masked_array in common.cpp).
  static PyObject* np_generic =
      py::object(py::module_::import("numpy").attr("generic")).release().ptr();
  bool integral = false;
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (a.ndim() != 0 || (kind != 'f' && kind != 'i' && kind != 'u')) {
      throw py::type_error(where + " must be a real number, got a " + dtype_str(a) +
                           " array of shape " + shape_str(a));
    }
    integral = kind != 'f';
  } else if (PyObject_IsInstance(obj.ptr(), np_generic) == 1) {
    const char kind = py::str(obj.attr("dtype").attr("kind")).cast<std::string>()[0];
    if (kind != 'f' && kind != 'i' && kind != 'u') {
      throw py::type_error(where + " must be a real number, got " + type_name);
    }
    integral = kind != 'f';
  } else if (PyBool_Check(obj.ptr()) || !(PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr()))) {
    throw py::type_error(where + " must be a real number, got " + type_name);
  } else {
    integral = PyLong_Check(obj.ptr());
  }
  double v;
  if (integral) {
    py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
    if (!i) throw py::error_already_set();
    v = PyLong_AsDouble(i.ptr());
    if (v == -1.0 && PyErr_Occurred()) {  // beyond double's range
      PyErr_Clear();
      throw py::value_error(where + " must be finite, got " + std::string(py::str(i)));
    }
  } else {
    v = PyFloat_AsDouble(obj.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  }
  return v;
}

double require_real(py::handle obj, const char* fn, const char* arg, bool f32) {
  const std::string where = std::string(fn) + ": " + arg;
  const double v = real_value(obj, fn, arg);
  if (!std::isfinite(v)) throw py::value_error(where + " must be finite, got " + real_str(v));
  if (f32 && std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max())) {
    throw py::value_error(where + " must be finite in float32, got " + real_str(v));
  }
  return v;
}

uint64_t require_uint64(py::handle obj, const char* fn, const char* arg) {
  const std::string where = std::string(fn) + ": " + arg;
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (a.ndim() != 0 || (kind != 'i' && kind != 'u')) {
      throw py::type_error(where + " must be an integer, got a " + dtype_str(a) +
                           " array of shape " + shape_str(a));
    }
  }
  if (py::isinstance<py::bool_>(obj) || !PyIndex_Check(obj.ptr())) {
    throw py::type_error(where + " must be an integer, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
  if (!value) throw py::error_already_set();
  const bool negative = PyObject_RichCompareBool(value.ptr(), py::int_(0).ptr(), Py_LT) == 1;
  if (!negative) {
    const unsigned long long v = PyLong_AsUnsignedLongLong(value.ptr());
    if (!(v == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
      return static_cast<uint64_t>(v);
    }
    PyErr_Clear();  // beyond 64 bits
  }
  throw py::value_error(where + " must be in [0, " +
                        std::to_string(std::numeric_limits<uint64_t>::max()) + "], got " +
                        std::string(py::str(value)));
}

}  // namespace bind
}  // namespace nnfast

namespace nnfast {
namespace bind {

namespace {

// The names with fuse >= need, each quoted, joined by ", " and a final " or ".
std::string expected_activations(ActivationFuse need) {
  std::vector<std::string> names;
  for (const ActivationInfo& a : kActivations) {
    if (a.fuse >= need) names.push_back(std::string("'") + a.name + "'");
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

}  // namespace

bool str_is(py::handle obj, const char* s) {
  if (!PyUnicode_CheckExact(obj.ptr())) return false;
  Py_ssize_t size = 0;
  const char* utf8 = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
  if (utf8 == nullptr) {
    PyErr_Clear();
    return false;
  }
  const size_t len = std::strlen(s);
  return static_cast<size_t>(size) == len && std::memcmp(utf8, s, len) == 0;
}

Activation parse_activation(py::handle obj, const char* fn, ActivationFuse need, bool none_ok) {
  if (none_ok && obj.is_none()) return Activation::linear;
  for (int i = 0; i < kNumActivations; ++i) {  // the fast path: no std::string built
    if (kActivations[i].fuse >= need && str_is(obj, kActivations[i].name)) {
      return static_cast<Activation>(i);
    }
  }
  const std::string expected = expected_activations(need);
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(fn) + ": activation must be a str (" + expected + "), got " +
                         py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  }
  throw py::value_error(std::string(fn) + ": activation must be one of " + expected + ", got " +
                        py::repr(obj).cast<std::string>());
}

py::tuple activation_names(ActivationFuse need) {
  py::list names;
  for (const ActivationInfo& a : kActivations) {
    if (a.fuse >= need) names.append(py::str(a.name));
  }
  return py::tuple(names);
}

}  // namespace bind
}  // namespace nnfast
