// Argument parsing shared by the convolution and pooling bindings: ints and (h, w) pairs, flags.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "bindings/common.h"

namespace nnfast {
namespace bind {

struct IntPair {
  int64_t h, w;
};

inline std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

// An integer in [lo, hi]. NOTE: numpy arrays define __index__ (and raise numpy's own error for
// non-scalar ones), so they are screened here to keep the message naming fn and arg.
inline int64_t int_value(py::handle obj, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (a.ndim() != 0 || (kind != 'i' && kind != 'u')) {
      throw py::type_error(std::string(fn) + ": " + arg + " must be an integer, got a " +
                           dtype_str(a) + " array of shape " + shape_str(a));
    }
  }
  return require_int(obj, fn, arg, lo, hi);
}

// An int (both sides) or a pair (tuple or list of two ints), each in [lo, hi].
inline IntPair int_pair(py::handle obj, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  if (py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(obj);
    if (s.size() != 2) {
      throw py::value_error(std::string(fn) + ": " + arg + " must be an int or a pair of ints, " +
                            "got a " + type_name(obj) + " of length " + std::to_string(s.size()));
    }
    const std::string a0 = std::string(arg) + "[0]", a1 = std::string(arg) + "[1]";
    return IntPair{int_value(s[0], fn, a0.c_str(), lo, hi),
                   int_value(s[1], fn, a1.c_str(), lo, hi)};
  }
  const int64_t v = int_value(obj, fn, arg, lo, hi);
  return IntPair{v, v};
}

// A Python bool or numpy.bool_ (no truthiness of other objects: an array would be ambiguous).
inline bool bool_value(py::handle obj, const char* fn, const char* arg) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  const std::string t = type_name(obj);
  if ((t == "bool_" || t == "bool") && !py::isinstance<py::array>(obj)) {
    return PyObject_IsTrue(obj.ptr()) == 1;
  }
  throw py::type_error(std::string(fn) + ": " + arg + " must be a bool, got " + t);
}

inline std::string pair_str(IntPair p) {
  return "(" + std::to_string(p.h) + ", " + std::to_string(p.w) + ")";
}

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

}  // namespace bind
}  // namespace nnfast
