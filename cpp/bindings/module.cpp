// The nnfast._core extension module.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings/families.h"
#include "runtime/cpu.h"
#include "runtime/threadpool.h"

namespace py = pybind11;

namespace nnfast {
namespace bind {
namespace {

std::vector<std::pair<std::string, RegisterFn>>& families() {
  static std::vector<std::pair<std::string, RegisterFn>> list;  // NOTE: built before main runs
  return list;
}

}  // namespace

bool add_family(const char* name, RegisterFn fn) {
  families().emplace_back(name, fn);
  return true;
}

void register_families(py::module_& m) {
  auto list = families();
  std::sort(list.begin(), list.end());
  for (const auto& f : list) f.second(m);
}

}  // namespace bind
}  // namespace nnfast

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
  nnfast::bind::register_families(m);
}
