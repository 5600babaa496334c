// Loss kernels; compiled once per ISA (see isa.h).
#include "kernels/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/row_tasks.h"
#include "kernels/simd.h"
#include "kernels/vmath.h"
#include "runtime/threadpool.h"

namespace nnfast {
namespace NNFAST_ISA_NS {
namespace {

using D = Simd<double>;

// Reductions split [0, n) into fixed blocks whatever the thread count, sum each block in a
// fixed order, then add the block sums in order: bit-identical results for any thread count.
constexpr int64_t kSumBlock = 1 << 13;
constexpr int64_t kElementwiseGrain = 1 << 15;
// Rows of softmax cross-entropy: elements per task below which another thread does not pay.
constexpr int64_t kRowsGrain = 1 << 14;

template <typename BlockSum>
double blocked_sum(int64_t n, BlockSum block_sum) {
  if (n <= 0) return 0.0;
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  if (blocks == 1) return block_sum(int64_t{0}, n);
  std::vector<double> part(static_cast<size_t>(blocks));
  runtime::parallel_for(blocks, 2, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      part[static_cast<size_t>(b)] = block_sum(b * kSumBlock, std::min(n, (b + 1) * kSumBlock));
    }
  });
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

// Maps op over registers of (a, b) into c, in parallel above the grain.
template <typename T, typename Op>
void map2(const T* a, const T* b, T* c, int64_t n, Op op) {
  using S = Simd<T>;
  runtime::parallel_for(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + S::width <= i1; i += S::width) {
      S::storeu(c + i, op(S::loadu(a + i), S::loadu(b + i)));
    }
    if (i < i1) {
      S::store_partial(c + i, op(S::load_partial(a + i, i1 - i), S::load_partial(b + i, i1 - i)),
                       i1 - i);
    }
  });
}

// Row r of a softmax cross-entropy: writes e = exp(z - shift) to g (see vmath::row_softmax_exp).
template <typename T>
struct RowExp {
  T max;  // m, the row's max
  T sum;  // s, the sum of e
  // s / e_m in double, e_m the e of an element equal to m as stored: logsumexp(z) is
  // m + log(ratio), exactly m when m's term is the whole sum (one class, or the others negligible).
  double ratio;
};
template <typename T>
inline RowExp<T> row_softmax_exp(const T* zr, T* gr, int64_t k, const T* next) {
  RowExp<T> r;
  T e_m;
  r.sum = vmath::row_softmax_exp(zr, gr, k, &r.max, &e_m, next);
  r.ratio = static_cast<double>(r.sum) / static_cast<double>(e_m);
  return r;
}

// Runs row_fn(r, r1) for every row r < n of length k, in parallel (r1: the end of the block of
// rows the thread works on, for prefetching).
template <typename RowFn>
void for_each_row(int64_t n, int64_t k, RowFn row_fn) {
  for_each_row_block(n, k, kRowsGrain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) row_fn(r, r1);
  });
}

// Runs row_loss = row_fn(r, r1) over rows in parallel (see for_each_row) and sums the row losses
// in row order.
template <typename RowFn>
double sum_over_rows(int64_t n, int64_t k, RowFn row_fn) {
  if (n <= 0) return 0.0;
  std::vector<double> loss(static_cast<size_t>(n));
  for_each_row(n, k, [&](int64_t r, int64_t r1) { loss[static_cast<size_t>(r)] = row_fn(r, r1); });
  double s = 0.0;
  for (double v : loss) s += v;
  return s;
}

// y[j] = op(y[j], t[j]) over a row of k elements (t[j] = 0 where t is null), op on registers.
template <typename T, typename Op>
inline void map_row(T* y, const T* t, int64_t k, Op op) {
  using S = Simd<T>;
  int64_t j = 0;
  for (; j + S::width <= k; j += S::width) {
    S::storeu(y + j, op(S::loadu(y + j), t != nullptr ? S::loadu(t + j) : S::zero()));
  }
  if (j < k) {
    const int64_t c = k - j;
    const auto tj = t != nullptr ? S::load_partial(t + j, c) : S::zero();
    S::store_partial(y + j, op(S::load_partial(y + j, c), tj), c);
  }
}

// A row's softmax cross-entropy gradient scale (e / s - t), in place over e = exp(z - shift)
// in g, for one-hot rows t or (t null) class index label. With c = scale / s normal:
// fmadd(e, c, -(t scale)), c rounded once (one multiply per element for class indices); when c
// would be subnormal (a large s: z is not shifted when its max is in [0, ~80]),
// fmadd(e, 1 / s, -t) scale. Both label forms give the same bits: off the label t = 0, where
// fmadd(e, c, -0) rounds e c once, as a multiply does.
template <typename T>
inline void ce_grad_row(T* g, const T* t, int64_t label, int64_t k, T sum, T scale) {
  using S = Simd<T>;
  using Reg = typename S::Reg;
  const T c = scale / sum;
  const auto vs = S::set1(scale);
  // NOTE: the label's element through the same Simd ops, not scalar code: a scalar e * c - scale
  // may or may not be contracted into an FMA depending on the build (it was not under
  // -fsanitize, 1 ulp away from the one-hot form).
  if (c >= std::numeric_limits<T>::min()) {
    const auto vc = S::set1(c);
    if (t != nullptr) {
      map_row(g, t, k, [&](Reg e, Reg tj) { return S::fmadd(e, vc, S::neg(S::mul(tj, vs))); });
      return;
    }
    const T e_label = g[label];
    map_row(g, t, k, [&](Reg e, Reg) { return S::mul(e, vc); });
    S::store_partial(g + label, S::fmadd(S::set1(e_label), vc, S::neg(vs)), 1);
    return;
  }
  const auto inv = S::set1(T(1) / sum);
  if (t != nullptr) {
    map_row(g, t, k, [&](Reg e, Reg tj) { return S::mul(S::fmadd(e, inv, S::neg(tj)), vs); });
    return;
  }
  const T e_label = g[label];
  map_row(g, t, k, [&](Reg e, Reg) { return S::mul(S::mul(e, inv), vs); });
  S::store_partial(g + label, S::mul(S::fmadd(S::set1(e_label), inv, S::set1(T(-1))), vs), 1);
}

}  // namespace

template <typename T>
double mse_sum(const T* p, const T* t, int64_t n) {
  // Scalar spec: sum += (double(p) - double(t))^2; float inputs widen exactly to double.
  return blocked_sum(n, [&](int64_t i0, int64_t i1) {
    auto a0 = D::zero(), a1 = D::zero();
    int64_t i = i0;
    for (; i + 2 * D::width <= i1; i += 2 * D::width) {
      const auto d0 = D::sub(D::load_from(p + i), D::load_from(t + i));
      const auto d1 = D::sub(D::load_from(p + i + D::width), D::load_from(t + i + D::width));
      a0 = D::fmadd(d0, d0, a0);
      a1 = D::fmadd(d1, d1, a1);
    }
    for (; i < i1; i += D::width) {
      const int64_t m = std::min<int64_t>(D::width, i1 - i);
      const auto d = D::sub(D::load_from_partial(p + i, m), D::load_from_partial(t + i, m));
      a0 = D::fmadd(d, d, a0);
    }
    return D::reduce_add(D::add(a0, a1));
  });
}

template <typename T>
void mse_grad(const T* p, const T* t, T* g, int64_t n, T scale) {
  using S = Simd<T>;
  const auto vs = S::set1(scale);
  map2(p, t, g, n, [&](typename S::Reg a, typename S::Reg b) { return S::mul(S::sub(a, b), vs); });
}

template <typename T>
double bce_sum(const T* p, const T* t, int64_t n) {
  // Scalar spec: s += t max(log p, -100) + (1 - t) max(log1p(-p), -100), in double (log1p keeps
  // log(1 - p) accurate for small p). max(-100, v) returns a NaN v (x86 semantics): NaN
  // propagates.
  const auto clamp = D::set1(-100.0), one = D::set1(1.0);
  auto term = [&](D::Reg pd, D::Reg td) {
    const auto lp = D::max(clamp, vmath::log(pd));
    const auto l1p = D::max(clamp, vmath::log1p(D::neg(pd)));
    return D::fmadd(td, lp, D::mul(D::sub(one, td), l1p));
  };
  const double sum = blocked_sum(n, [&](int64_t i0, int64_t i1) {
    auto a0 = D::zero(), a1 = D::zero();
    int64_t i = i0;
    for (; i + 2 * D::width <= i1; i += 2 * D::width) {
      a0 = D::add(a0, term(D::load_from(p + i), D::load_from(t + i)));
      a1 = D::add(a1, term(D::load_from(p + i + D::width), D::load_from(t + i + D::width)));
    }
    for (; i < i1; i += D::width) {
      const int64_t m = std::min<int64_t>(D::width, i1 - i);
      // Lanes past the end load p = t = 0, whose term is exactly 0.
      a0 = D::add(a0, term(D::load_from_partial(p + i, m), D::load_from_partial(t + i, m)));
    }
    // NOTE: lanes summed through memory, not D::reduce_add: inlined here, gcc 12's
    // _mm512_extractf64x4_pd trips a false -Wuninitialized.
    alignas(64) double lanes[D::width];
    D::storeu(lanes, D::add(a0, a1));
    double s = 0.0;
    for (int l = 0; l < D::width; ++l) s += lanes[l];
    return s;
  });
  return -sum;
}

template <typename T>
void bce_grad(const T* p, const T* t, T* g, int64_t n, T scale) {
  using S = Simd<T>;
  // NOTE: PyTorch's clamp is the float 1e-12 (9.99999996e-13), also for float64.
  const auto vs = S::set1(scale), eps = S::set1(T(1e-12f)), one = S::set1(T(1));
  map2(p, t, g, n, [&](typename S::Reg a, typename S::Reg b) {
    const auto den = S::max(S::mul(a, S::sub(one, a)), eps);
    return S::mul(S::div(S::sub(a, b), den), vs);
  });
}

template <typename T>
double softmax_ce_index(const T* z, const int64_t* labels, T* grad, int64_t n, int64_t k, T scale) {
  if (n <= 0) return 0.0;
  // Row r's loss is (m - z_label) + log(ratio): the rows store both parts, and the logs are taken
  // afterwards a register of rows at a time (vmath::log) instead of one scalar log per row.
  std::vector<double> parts(static_cast<size_t>(2 * n));
  double* base = parts.data();
  double* ratio = base + n;
  for_each_row(n, k, [&](int64_t r, int64_t r1) {
    const T* zr = z + r * k;
    T* gr = grad + r * k;
    const int64_t y = labels[r];
    const RowExp<T> row = row_softmax_exp(zr, gr, k, vmath::next_row(z, grad, r, r1, n, k));
    ce_grad_row<T>(gr, nullptr, y, k, row.sum, scale);
    base[r] = static_cast<double>(row.max) - static_cast<double>(zr[y]);
    ratio[r] = row.ratio;
  });
  // Summed in row order, as sum_over_rows does.
  double s = 0.0;
  alignas(64) double logs[D::width];
  for (int64_t r = 0; r < n; r += D::width) {
    const int64_t c = std::min<int64_t>(D::width, n - r);
    D::storeu(logs, vmath::log(D::load_partial_or(ratio + r, c, 1.0)));
    for (int64_t i = 0; i < c; ++i) s += base[r + i] + logs[i];
  }
  return s;
}

template <typename T>
double softmax_ce_dense(const T* z, const T* y, T* grad, int64_t n, int64_t k, T scale) {
  return sum_over_rows(n, k, [&](int64_t r, int64_t r1) {
    const T* zr = z + r * k;
    const T* yr = y + r * k;
    T* gr = grad + r * k;
    if (k <= 0) return 0.0;  // NOTE: also keeps gcc 12 from a false warning (see vmath row_max)
    const RowExp<T> row = row_softmax_exp(zr, gr, k, vmath::next_row(z, grad, r, r1, n, k));
    // Row loss sum_j y_j ((m - z_j) + log(ratio)) in double; terms with y_j = 0 are skipped so a
    // -inf logit of a zero target adds nothing (0 * inf would be NaN); a NaN target propagates.
    const auto vm = D::set1(static_cast<double>(row.max));
    const auto vlog = D::set1(std::log(row.ratio));
    auto acc = D::zero();
    for (int64_t j = 0; j < k; j += D::width) {
      const int64_t c = std::min<int64_t>(D::width, k - j);
      const auto yj = c == D::width ? D::load_from(yr + j) : D::load_from_partial(yr + j, c);
      const auto zj = c == D::width ? D::load_from(zr + j) : D::load_from_partial(zr + j, c);
      const auto term = D::mul(yj, D::add(D::sub(vm, zj), vlog));
      const auto keep = D::select(D::cmp_gt(D::abs(yj), D::zero()), term, D::zero());
      acc = D::add(acc, D::select(D::is_nan(yj), yj, keep));
    }
    ce_grad_row(gr, yr, 0, k, row.sum, scale);
    return D::reduce_add(acc);
  });
}

#define NNFAST_INSTANTIATE(T)                                                             \
  template double mse_sum<T>(const T*, const T*, int64_t);                                \
  template void mse_grad<T>(const T*, const T*, T*, int64_t, T);                          \
  template double bce_sum<T>(const T*, const T*, int64_t);                                \
  template void bce_grad<T>(const T*, const T*, T*, int64_t, T);                          \
  template double softmax_ce_index<T>(const T*, const int64_t*, T*, int64_t, int64_t, T); \
  template double softmax_ce_dense<T>(const T*, const T*, T*, int64_t, int64_t, T);
NNFAST_INSTANTIATE(float)
NNFAST_INSTANTIATE(double)
#undef NNFAST_INSTANTIATE

}  // namespace NNFAST_ISA_NS
}  // namespace nnfast
