// Binding families register themselves: each cpp/bindings/<family>.cpp defines
// `NNFAST_REGISTER_FAMILY(name) { m.def(...); }` and module.cpp runs every registered family once,
// in name order. Adding a family touches no shared file.
#pragma once

#include <pybind11/pybind11.h>

namespace nnfast {
namespace bind {

using RegisterFn = void (*)(pybind11::module_&);

// Records a family's registration function (called from a static initialiser); returns true.
bool add_family(const char* name, RegisterFn fn);

// Runs every recorded family's registration function on m, sorted by name.
void register_families(pybind11::module_& m);

// _core._testing, the submodule of hooks for nnfast's own tests (not API), created on first use.
inline pybind11::module_ testing_module(pybind11::module_& m) {
  if (pybind11::hasattr(m, "_testing")) return m.attr("_testing").cast<pybind11::module_>();
  return m.def_submodule("_testing", "Hooks for nnfast's own tests; not API.");
}

}  // namespace bind
}  // namespace nnfast

#define NNFAST_REGISTER_FAMILY(name)                                                         \
  static void nnfast_register_##name(pybind11::module_& m);                                  \
  static const bool nnfast_family_##name =                                                   \
      ::nnfast::bind::add_family(#name, &nnfast_register_##name);                            \
  static void nnfast_register_##name(pybind11::module_& m)
