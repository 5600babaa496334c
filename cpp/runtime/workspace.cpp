#include "runtime/workspace.h"

#include <cstdlib>
#include <new>

namespace nnfast {
namespace runtime {
namespace {

constexpr size_t kAlign = 64;
constexpr int kSlots = 5;

struct Buffer {
  void* ptr = nullptr;
  size_t size = 0;
  ~Buffer() { release(); }
  void release() {
#if defined(_WIN32)
    _aligned_free(ptr);
#else
    std::free(ptr);
#endif
    ptr = nullptr;
    size = 0;
  }
};

thread_local Buffer t_buffers[kSlots];

}  // namespace

void* thread_workspace(WorkspaceSlot slot, size_t bytes) {
  Buffer& buf = t_buffers[static_cast<int>(slot)];
  if (bytes <= buf.size && buf.ptr != nullptr) return buf.ptr;
  buf.release();
  // Grow geometrically so a sequence of slightly larger requests does not reallocate each time.
  size_t want = bytes + bytes / 4 + kAlign;
  want = (want + kAlign - 1) / kAlign * kAlign;
  if (want < bytes) throw std::bad_alloc();
#if defined(_WIN32)
  void* p = _aligned_malloc(want, kAlign);
#else
  void* p = std::aligned_alloc(kAlign, want);
#endif
  if (p == nullptr) throw std::bad_alloc();
  buf.ptr = p;
  buf.size = want;
  return p;
}

}  // namespace runtime
}  // namespace nnfast
