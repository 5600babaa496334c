#include "runtime/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if !defined(_WIN32)
#include <pthread.h>
#endif

namespace nnfast {
namespace runtime {
namespace {

thread_local bool t_inside_task = false;

// How long an idle worker polls for the next job before sleeping on the condition variable.
constexpr std::chrono::microseconds kPollBeforeSleep{100};

// Marks the calling thread as running a pool task for its lifetime.
struct InsideTask {
  bool before = t_inside_task;
  InsideTask() { t_inside_task = true; }
  ~InsideTask() { t_inside_task = before; }
};

bool parse_positive_int(const char* text, int* value) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  // OMP_NUM_THREADS may be a nesting list such as "4,2": the first level is what counts.
  if (end == text || (*end != '\0' && *end != ',') || v < 1 || v > 4096) return false;
  *value = static_cast<int>(v);
  return true;
}

int usable_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// A fixed set of workers woken per job. Worker w runs chunk w; the caller runs chunk 0.
class Pool {
 public:
  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> use(use_mutex_);
    stop_workers();
    size_.store(n);
  }

  void run(int64_t n, int64_t min_chunk, RangeFn fn, void* ctx) {
    const int64_t max_chunks = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
    if (max_chunks <= 1 || t_inside_task || size_.load(std::memory_order_relaxed) <= 1) {
      fn(ctx, 0, n);
      return;
    }
    std::unique_lock<std::mutex> use(use_mutex_, std::try_to_lock);
    if (!use.owns_lock()) {
      // NOTE: another Python thread is using (or resizing) the pool; partitioning never changes
      // results, so running serially here is correct and avoids a queue.
      fn(ctx, 0, n);
      return;
    }
    // The size is read again under use_mutex_: resize() may have run since the check above.
    const int chunks = static_cast<int>(std::min<int64_t>(size_.load(), max_chunks));
    if (chunks <= 1) {
      fn(ctx, 0, n);
      return;
    }
    start_workers();
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = Job{fn, ctx, n, chunks};
      pending_.store(chunks - 1, std::memory_order_relaxed);
      ++generation_;
    }
    cv_work_.notify_all();
    {
      // NOTE: a parallel_for nested in the caller's own chunk must run inline, as in the
      // workers' chunks: it would otherwise try_lock use_mutex_, which this thread holds.
      InsideTask inside;
      run_chunk(job_, 0);
    }
    // Short spin first: most chunks finish within microseconds of each other.
    for (int spin = 0; spin < 4000 && pending_.load(std::memory_order_acquire) != 0; ++spin) {
      std::this_thread::yield();
    }
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lock(m_);
      cv_done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
  }

  // After fork() only the forking thread exists: forget the workers (they cannot be joined) and
  // rebuild the synchronisation objects, which may have been held by threads that are gone.
  void reset_after_fork() {
    workers_.clear();  // the std::thread objects are leaked on purpose, see start_workers()
    new (&m_) std::mutex();
    new (&use_mutex_) std::mutex();
    new (&cv_work_) std::condition_variable();
    new (&cv_done_) std::condition_variable();
    stopping_ = false;
    pending_.store(0);
  }

  void lock_for_fork() { use_mutex_.lock(); }
  void unlock_after_fork() { use_mutex_.unlock(); }

 private:
  struct Job {
    RangeFn fn = nullptr;
    void* ctx = nullptr;
    int64_t n = 0;
    int chunks = 0;
  };

  static void run_chunk(const Job& job, int index) {
    const int64_t begin = job.n * index / job.chunks;
    const int64_t end = job.n * (index + 1) / job.chunks;
    if (begin < end) job.fn(job.ctx, begin, end);
  }

  void start_workers() {
    const int want = size_.load() - 1;
    if (static_cast<int>(workers_.size()) == want) return;
    stop_workers();
    const uint64_t start_generation = generation_snapshot();
    for (int w = 1; w <= want; ++w) {
      // Heap-allocated and never destroyed while joinable: a std::thread that outlives its
      // thread (as in a forked child) must not be destructed.
      workers_.push_back(
          new std::thread([this, w, start_generation] { worker_loop(w, start_generation); }));
    }
  }

  void stop_workers() {
    if (workers_.empty()) return;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      ++generation_;
    }
    cv_work_.notify_all();
    for (std::thread* t : workers_) {
      t->join();
      delete t;
    }
    workers_.clear();
    std::lock_guard<std::mutex> lock(m_);
    stopping_ = false;
  }

  void worker_loop(int index, uint64_t seen) {
    t_inside_task = true;
    for (;;) {
      Job job;
      // Poll briefly before sleeping: a caller issuing parallel calls back to back (a training
      // loop, a benchmark) then finds this thread awake instead of paying a futex wake-up and a
      // reschedule per call. yield() leaves the core to others meanwhile.
      const auto poll_end = std::chrono::steady_clock::now() + kPollBeforeSleep;
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < poll_end) {
        std::this_thread::yield();
      }
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_work_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stopping_) return;
        job = job_;
      }
      if (index < job.chunks) {
        run_chunk(job, index);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lock(m_);
          cv_done_.notify_all();
        }
      }
    }
  }

  uint64_t generation_snapshot() {
    std::lock_guard<std::mutex> lock(m_);
    return generation_;
  }

  std::atomic<int> size_{1};  // written under use_mutex_
  std::vector<std::thread*> workers_;
  std::mutex m_;          // guards job_, generation_, stopping_
  std::mutex use_mutex_;  // held by the one caller using the pool
  std::condition_variable cv_work_, cv_done_;
  Job job_;
  std::atomic<uint64_t> generation_{0};  // written under m_; workers poll it
  bool stopping_ = false;
  std::atomic<int> pending_{0};
};

Pool& pool() {
  // Never destroyed: worker threads must not outlive the object they use at interpreter exit.
  static Pool* p = [] {
    Pool* created = new Pool();
    int n = 1;
    try {
      n = default_num_threads();
    } catch (const std::invalid_argument&) {
      // The module's init reports a bad NNFAST_NUM_THREADS before any kernel can run.
    }
    created->resize(n);
#if !defined(_WIN32)
    pthread_atfork([] { pool().lock_for_fork(); }, [] { pool().unlock_after_fork(); },
                   [] { pool().reset_after_fork(); });
#endif
    return created;
  }();
  return *p;
}

}  // namespace

int default_num_threads() {
  int n = 0;
  const char* own = std::getenv("NNFAST_NUM_THREADS");
  if (own != nullptr && *own != '\0') {
    if (!parse_positive_int(own, &n)) {
      throw std::invalid_argument(std::string("nnfast: NNFAST_NUM_THREADS must be a positive "
                                              "integer, got '") +
                                  own + "'");
    }
    return n;
  }
  if (parse_positive_int(std::getenv("OMP_NUM_THREADS"), &n)) return n;
  return usable_cores();
}

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(n); }

void parallel_for_impl(int64_t n, int64_t min_chunk, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, min_chunk, fn, ctx);
}

}  // namespace runtime
}  // namespace nnfast
