// The nnfast._core extension module.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "bindings/families.h"
#include "runtime/cpu.h"
#include "runtime/threadpool.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "nnfast native kernels (C++/SIMD). Use the wrappers in the nnfast package.";
  // NOTE: environment mistakes surface as ImportError with the reason, before any kernel runs.
  try {
    const char* isa = std::getenv("NNFAST_ISA");
    nnfast::runtime::select_isa(isa ? std::string(isa) : std::string());
    nnfast::runtime::default_num_threads();
  } catch (const std::exception& e) {
    throw py::import_error(e.what());
  }
  nnfast::bind::register_runtime(m);
  nnfast::bind::register_activations(m);
  nnfast::bind::register_dense(m);
}
