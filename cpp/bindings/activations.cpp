// Bindings of the activation kernels.
#include "kernels/activations.h"

#include <type_traits>

#include "bindings/common.h"
#include "bindings/families.h"

namespace nnfast {
namespace bind {
namespace {

// Binds an element-wise kernel: any shape in, same shape and dtype out, in place allowed.
template <void (*F32)(const float*, float*, int64_t), void (*F64)(const double*, double*, int64_t)>
py::array elementwise(const char* fn, py::handle z_obj, py::object out) {
  py::array z = require_float_array(z_obj, fn, "z");
  py::array y = prepare_out(out, z.dtype(), shape_of(z), fn, {z}, {z});
  const int64_t n = static_cast<int64_t>(z.size());
  dispatch_float(z, [&](auto t) {
    using T = decltype(t);
    const T* src = cdata<T>(z);
    T* dst = mdata<T>(y);
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) {
      F32(src, dst, n);
    } else {
      F64(src, dst, n);
    }
  });
  return y;
}

}  // namespace

NNFAST_REGISTER_FAMILY(activations) {
  m.def(
      "relu",
      [](py::handle z, py::object out) {
        return elementwise<&nnfast::relu<float>, &nnfast::relu<double>>("relu", z, out);
      },
      py::arg("z"), py::arg("out") = py::none(), "max(0, z) element-wise; NaN propagates.");
}

}  // namespace bind
}  // namespace nnfast
