// Binding of the FMA throughput probe (a testing/benchmark hook, not public API).
#include "kernels/peak.h"

#include <atomic>
#include <chrono>
#include <string>

#include "bindings/common.h"
#include "bindings/families.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace bind {
namespace {

// GFLOP/s of register-only FMA chains on `threads` pool threads (1 = the calling thread).
template <typename T>
double fma_peak(int64_t iters, int threads) {
  std::atomic<int64_t> flops{0};
  std::atomic<int64_t> sink_bits{0};
  const auto t0 = std::chrono::steady_clock::now();
  runtime::parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      T sink = 0;
      flops += nnfast::fma_chains<T>(iters, &sink);
      sink_bits += sink != T(0);
    }
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(flops.load()) / s / 1e9;
}

}  // namespace

NNFAST_REGISTER_FAMILY(peak) {
  m.def(
      "_fma_peak",
      [](py::handle dtype_obj, py::handle iters_obj, py::handle threads_obj) {
        const py::dtype dtype = py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype_obj));
        const int64_t iters = require_int(iters_obj, "_fma_peak", "iters", 1, int64_t{1} << 40);
        const int threads =
            static_cast<int>(require_int(threads_obj, "_fma_peak", "threads", 1, 4096));
        if (dtype.is(py::dtype::of<float>())) {
          py::gil_scoped_release release;
          return fma_peak<float>(iters, threads);
        }
        if (dtype.is(py::dtype::of<double>())) {
          py::gil_scoped_release release;
          return fma_peak<double>(iters, threads);
        }
        throw py::type_error("_fma_peak: dtype must be float32 or float64, got " +
                             std::string(py::str(dtype)));
      },
      py::arg("dtype"), py::arg("iters"), py::arg("threads") = 1,
      "GFLOP/s of register FMA chains on the active ISA with `threads` pool threads.");
}

}  // namespace bind
}  // namespace nnfast
