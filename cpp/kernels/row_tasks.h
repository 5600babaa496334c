// Rows handed out to the thread pool dynamically, for row kernels (softmax, softmax
// cross-entropy): included only by kernel sources compiled per ISA; inline in the ISA namespace.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {

// Runs f(r0, r1) over rows [0, rows) of row_cost elements each: serially when the rows hold
// fewer than 2 min_task elements; otherwise as one task per thread (at most one per min_task
// elements). Task t owns the t-th contiguous share of the rows and claims it block by block from
// its own counter, then helps the other tasks by claiming blocks from theirs, so a thread that
// starts late (waking a pool thread takes microseconds) takes fewer rows instead of delaying the
// call by its whole share, while on repeated calls each thread mostly gets the same rows (still in
// its own core's cache from the call before). A row's result never depends on the thread
// computing it.
template <typename F>
inline void for_each_row_block(int64_t rows, int64_t row_cost, int64_t min_task, F f) {
  if (rows <= 0) return;
  const int64_t cost = std::max<int64_t>(1, row_cost);
  const int64_t elements = rows * cost;  // an array's size: no overflow
  const int64_t tasks = std::min<int64_t>(runtime::num_threads(), elements / min_task);
  if (tasks <= 1) {
    f(int64_t{0}, rows);
    return;
  }
  // Blocks of about kBlockElements (a few microseconds: the last one bounds how long a thread
  // waits for the others), at least 4 per task so a late thread still finds some.
  constexpr int64_t kBlockElements = 1 << 12;
  const int64_t block =
      std::max<int64_t>(1, std::min((kBlockElements + cost - 1) / cost, rows / (4 * tasks)));
  // One counter per task, each on its own cache line: the next row of the task's share to claim.
  struct alignas(64) Counter {
    std::atomic<int64_t> next;
  };
  std::unique_ptr<Counter[]> counters(new Counter[static_cast<size_t>(tasks)]);
  for (int64_t t = 0; t < tasks; ++t) counters[t].next.store(t * rows / tasks);
  runtime::parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t k = 0; k < tasks; ++k) {
        const int64_t v = (t + k) % tasks;  // own share first, then the others in turn
        const int64_t end = (v + 1) * rows / tasks;
        for (;;) {
          const int64_t r0 = counters[v].next.fetch_add(block, std::memory_order_relaxed);
          if (r0 >= end) break;
          f(r0, std::min(end, r0 + block));
        }
      }
    }
  });
}

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
