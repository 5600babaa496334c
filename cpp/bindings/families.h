// One registration function per binding file; module.cpp calls each once.
#pragma once

#include <pybind11/pybind11.h>

namespace nnfast {
namespace bind {

void register_runtime(pybind11::module_& m);
void register_activations(pybind11::module_& m);
void register_dense(pybind11::module_& m);

}  // namespace bind
}  // namespace nnfast
