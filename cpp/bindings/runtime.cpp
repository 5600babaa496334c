// Runtime controls and build information.
#include <stdexcept>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "bindings/families.h"
#include "runtime/cpu.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace bind {

NNFAST_REGISTER_FAMILY(runtime) {
  m.def(
      "set_num_threads",
      [](py::object n) {
        const int64_t v = require_int(n, "set_num_threads", "n", 1, 4096);
        py::gil_scoped_release release;
        runtime::set_num_threads(static_cast<int>(v));
      },
      py::arg("n"), "Sets the number of threads kernels use (the calling thread included).");
  m.def("get_num_threads", &runtime::num_threads, "Number of threads kernels use.");
  py::module_ testing = testing_module(m);
  testing.def(
      "set_isa",
      [](const std::string& name) {
        try {
          runtime::select_isa(name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        } catch (const std::runtime_error& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("name"),
      "Switches the SIMD path ('' picks the best). For tests; NNFAST_ISA is the public control.");
  m.def("_isa", [] { return std::string(runtime::isa_name(runtime::active_isa())); });
  m.def("_isa_available", [] {
    py::list out;
    for (runtime::Isa isa : runtime::available_isas()) out.append(runtime::isa_name(isa));
    return out;
  });
  testing.def(
      "new_array",
      [](const std::vector<int64_t>& shape, py::dtype dtype) {
        return new_array(dtype, shape, "_new_array");
      },
      py::arg("shape"), py::arg("dtype"),
      "The bindings' overflow-checked output allocation, exposed for tests.");
  m.attr("__version__") = NNFAST_VERSION;
  m.attr("_compiler") = NNFAST_COMPILER;
  m.attr("_build_type") = NNFAST_BUILD_TYPE;
#if defined(NNFAST_X86)
  m.attr("_isa_compiled") = py::make_tuple("baseline", "avx2", "avx512");
#else
  m.attr("_isa_compiled") = py::make_tuple("baseline");
#endif
}

}  // namespace bind
}  // namespace nnfast
