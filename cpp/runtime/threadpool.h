// The persistent thread pool and parallel_for with static partitioning.
#pragma once

#include <cstdint>
#include <type_traits>

namespace nnfast {
namespace runtime {

// Threads used by parallel_for (the calling thread included); always >= 1.
int num_threads();

// Resizes the pool; n must be >= 1 (the binding validates).
void set_num_threads(int n);

// Thread count chosen at start-up: NNFAST_NUM_THREADS, else OMP_NUM_THREADS, else the usable cores.
// Throws std::invalid_argument if NNFAST_NUM_THREADS is set but not a positive integer.
int default_num_threads();

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

// Runs fn over [0, n) split into at most num_threads() contiguous chunks of at least min_chunk
// items; chunk i covers [i*n/k, (i+1)*n/k). Runs inline when one chunk suffices, when called from
// inside a pool task, or when another thread is using the pool.
void parallel_for_impl(int64_t n, int64_t min_chunk, RangeFn fn, void* ctx);

// Typed front end of parallel_for_impl: f(begin, end).
template <typename F>
void parallel_for(int64_t n, int64_t min_chunk, F&& f) {
  using Fn = std::remove_reference_t<F>;
  parallel_for_impl(
      n, min_chunk,
      [](void* ctx, int64_t begin, int64_t end) { (*static_cast<Fn*>(ctx))(begin, end); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace runtime
}  // namespace nnfast
