// Tuning thresholds that tests need to move. One definition for every ISA's translation unit
// (C++17 inline variables); read with relaxed loads, set only by the testing hooks in bindings.
#pragma once

#include <atomic>
#include <cstdint>

namespace nnfast {
namespace runtime {

// GEMMs with at least this many multiply-adds pack an operand every thread needs once, shared
// (see gemm_run). Below it each thread packs its own copy: the shared pass is one more round trip
// through the pool (~3-8 us), more than the duplicated packing of a small product costs.
inline std::atomic<int64_t> gemm_shared_pack_min_madds{int64_t{64} << 20};

}  // namespace runtime
}  // namespace nnfast
