// Per-thread scratch memory for kernels (packed GEMM panels, temporaries), 64-byte aligned.
#pragma once

#include <cstddef>

namespace nnfast {
namespace runtime {

// Scratch slots, so a kernel that calls another (dense -> gemm) never shares a buffer with it.
// binding: a binding's temporary held across the kernel it calls (conv2d_backward's dL/dz).
enum class WorkspaceSlot : int { gemm = 0, dense = 1, conv = 2, misc = 3, binding = 4 };

// At least `bytes` of 64-byte aligned memory owned by the calling thread for `slot`; it grows
// and is kept for the thread's lifetime, so steady-state calls do not allocate. The pointer stays
// valid until the same thread asks the same slot for more. Throws std::bad_alloc.
void* thread_workspace(WorkspaceSlot slot, size_t bytes);

}  // namespace runtime
}  // namespace nnfast
