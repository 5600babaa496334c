// CPU feature detection and the process-wide choice of SIMD path.
#pragma once

#include <string>
#include <vector>

namespace nnfast {
namespace runtime {

// The SIMD paths nnfast is compiled for. scalar (one lane, portable) exists on x86 builds as its own
// path; elsewhere the baseline is that same scalar code and "scalar" names it.
enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2, scalar = 3 };

// Name of a path as users spell it ("scalar", "baseline", "avx2", "avx512").
const char* isa_name(Isa isa);

// Paths this build contains and this CPU (and OS) can run, weakest first (scalar first on x86).
std::vector<Isa> available_isas();

// Whether the CPU meets the baseline's requirements (x86-64-v2 on x86; always true elsewhere).
bool cpu_supports_baseline();

// The path kernels dispatch to now.
Isa active_isa();

// Chooses the path: an empty name picks the best available one. Throws std::invalid_argument for an
// unknown name and std::runtime_error for a path this CPU or build cannot run; both name the options.
void select_isa(const std::string& name);

}  // namespace runtime
}  // namespace nnfast
