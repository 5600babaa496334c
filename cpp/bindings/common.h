// Argument checks and conversions shared by every binding.
//
// Bindings check everything before touching data and raise errors that name the function, the
// argument, what was expected and what came, e.g.
//   conv2d: w must have 4 dims (out_channels, in_channels, kh, kw), got shape (3, 3)
// Inputs must already be C-contiguous float32/float64 arrays (python/nnfast/_convert.py makes the
// documented conversions); outputs are allocated here or are the caller's checked out=.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/activation_list.h"

namespace nnfast {
namespace bind {

namespace py = pybind11;

using Shape = std::vector<int64_t>;

// "(2, 3)" for a shape.
std::string shape_str(const Shape& shape);
std::string shape_str(const py::array& a);
Shape shape_of(const py::array& a);

// Name of an array's dtype, e.g. "float32".
std::string dtype_str(const py::array& a);

// NumPy's NPY_ARRAY_ALIGNED flag (numpy/ndarraytypes.h), and whether an array has it: its data
// and strides suit its element type, as every kernel that reads it directly needs.
constexpr int kNpyArrayAligned = 0x0100;
inline bool is_aligned(const py::array& a) { return (a.flags() & kNpyArrayAligned) != 0; }

// Whether the array's dtype is float32 / float64.
bool is_f32(const py::array& a);
bool is_f64(const py::array& a);

// Returns obj as an array after checking it is an aligned, C-contiguous float32/float64 ndarray.
// Raises TypeError (not an array, a masked array, or another dtype) or ValueError (not
// C-contiguous, or misaligned).
py::array require_float_array(py::handle obj, const char* fn, const char* arg);

// Checks that b has a's dtype (ValueError naming both).
void require_same_dtype(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, const char* fn);

// Checks a.ndim() == ndim; `dims` describes the axes, e.g. "(N, C, H, W)".
void require_ndim(const py::array& a, int ndim, const char* fn, const char* arg, const char* dims);

// A Python int (bool excluded; NumPy integer scalars accepted) as int64 within [lo, hi]. Raises
// TypeError for other types and ValueError naming fn/arg with the allowed range when out of range
// (a huge int such as 2**70 included).
int64_t require_int(py::handle obj, const char* fn, const char* arg, int64_t lo, int64_t hi);

// An unsigned 64-bit integer (a seed): as require_int, range [0, 2**64 - 1].
uint64_t require_uint64(py::handle obj, const char* fn, const char* arg);

// A real option: a Python int or float, or a NumPy integer/floating scalar or 0-d array; bool,
// complex, str, None, lists and larger arrays are a TypeError (pybind11's own conversion would
// take bool and any __float__, and name neither the function nor the argument). The value must
// be finite and, when f32, within float32's range (a larger double converted to float is
// undefined behaviour).
double require_real(py::handle obj, const char* fn, const char* arg, bool f32);

// require_real's type checks and conversion without the range checks: the value may be NaN or
// infinite (an int beyond double's range is still a ValueError).
double real_value(py::handle obj, const char* fn, const char* arg);

// Python's str() of a float, e.g. "1.0", "nan".
std::string real_str(double v);

// Product of sizes, raising ValueError if it (or, for an empty shape, the product of its non-zero
// sizes, which NumPy also refuses) overflows int64 or exceeds what can be addressed.
int64_t checked_product(const Shape& shape, const char* fn, const char* what);

// A new C-contiguous array of the given dtype and shape (overflow-checked; MemoryError if it
// cannot be allocated).
py::array new_array(const py::dtype& dtype, const Shape& shape, const char* fn);

// Whether the byte ranges of two arrays intersect.
bool overlaps(const py::array& a, const py::array& b);
// Whether two arrays view exactly the same bytes with the same layout (in-place use).
bool same_memory(const py::array& a, const py::array& b);

// The output array: a new one when out is None, else out after checking its dtype, shape,
// C-contiguity, writeability and that it does not overlap any input. An out identical to an
// input in `inplace_ok` is accepted (element-wise ops may write in place).
py::array prepare_out(py::object out, const py::dtype& dtype, const Shape& shape, const char* fn,
                      std::initializer_list<py::array> inputs,
                      std::initializer_list<py::array> inplace_ok = {});

// prepare_out for one of several outputs: the messages name it as `arg`, e.g. "out[1] (grad_w)".
py::array prepare_named_out(py::object out, const py::dtype& dtype, const Shape& shape,
                            const char* fn, const std::string& arg,
                            std::initializer_list<py::array> inputs,
                            std::initializer_list<py::array> inplace_ok = {});

// The entries of out=(a, b, ...) for a function with several results named `names`, NumPy's
// convention for multi-output ufuncs: None gives all None; otherwise a tuple of exactly that many
// entries, each an array or None (TypeError / ValueError naming fn otherwise).
std::vector<py::object> unpack_outs(py::object out, const char* fn,
                                    const std::vector<const char*>& names);

// The name of entry i in messages: "out[1] (grad_w)".
std::string out_entry_name(size_t i, const std::vector<const char*>& names);

// Raises ValueError if two of the caller-supplied entries of a tuple out= overlap (`given[i]`:
// whether entry i came from the caller; a freshly allocated one cannot overlap).
void require_disjoint_outs(const std::vector<py::array>& outs, const std::vector<bool>& given,
                           const char* fn, const std::vector<const char*>& names);

// Whether obj is exactly the str s, without building a std::string (false for anything else, a
// str UTF-8 cannot encode included: the callers' slow paths then report it).
bool str_is(py::handle obj, const char* s);

// An activation name of kernels/activation_list.h whose fuse is at least `need` (kFuseDense for
// dense's GEMM, kFuseConv for conv2d); anything else a ValueError naming the admitted names in
// list order (a TypeError for a non-str). None means linear when none_ok.
Activation parse_activation(py::handle obj, const char* fn, ActivationFuse need, bool none_ok);

// The names of the activations with fuse >= need, in list order, as a tuple of str.
py::tuple activation_names(ActivationFuse need);

// Calls f(float{}) or f(double{}) for the dtype of a (already checked to be one of them).
template <typename F>
auto dispatch_float(const py::array& a, F&& f) {
  if (is_f32(a)) return f(float{});
  return f(double{});
}

// Typed data pointers.
template <typename T>
const T* cdata(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
T* mdata(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

}  // namespace bind
}  // namespace nnfast
