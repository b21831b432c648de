// CPU kernels of the windowed attention, the conv taps and the training dropout.
//
// Frame t's window is the k frames t + o_j, o_j = (j - k / 2) * d, j in [0, k). Keys outside
// [0, T) are zero: they add nothing. The kernels are the native form of PyTorch code in
// twostream_das/kernels/fast.py (attend, attend_backward, _ConvAttention, dropout), which the
// tests compare them with:
//
//   window_attention_           weights = softmax_j(mask ? scale q . k_j : lowest), out += sum_j w_j v_j
//                               (or DiffAct's handling of the masked positions, see Outside)
//   window_attention_backward_  its gradients with respect to q, k and v
//   window_taps_                out[c, t] += sum_j z[j C + c, t + o_j]   (the conv from its taps)
//   dropout_apply               x * scale where a hashed 16-bit share < threshold, else x * 0
//
// Two row functions do the window arithmetic: dot_row (out[j, t] += sum_c a[c, t] b[c, t + o_j])
// and mix_row (out[c, t] += sum_j w[j, t] v[c, t + o_j], or its transpose, a gather over the
// keys, so no two tasks write one element). Work is split over (batch row, chunk of frames) with
// at::parallel_for (torch's own OpenMP threads). Inside a chunk, frames go in blocks of kLanes
// whose k partial sums stay in registers across the channel loop. Tensors may be views (any
// batch and channel strides); frames must be contiguous (stride 1).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <cstdint>
#include <optional>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kChunk = 512;  // frames per task
constexpr int64_t kLanes = 16;   // frames per register block
constexpr int64_t kMaxTaps = 15;

struct Window {
  int64_t taps, dilation, frames;
  int64_t offset(int64_t j) const { return (j - taps / 2) * dilation; }
  // frames t of [t0, t1) whose neighbour t + o is inside [0, T): [lo, hi), possibly empty
  int64_t lo(int64_t o, int64_t t0) const { return std::max(t0, -o); }
  int64_t hi(int64_t o, int64_t t1) const { return std::min(t1, frames - o); }
};

template <typename Body>
void for_chunks(int64_t batch, int64_t frames, const Body& body) {
  const int64_t chunks = (frames + kChunk - 1) / kChunk;
  at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / chunks, t0 = (task % chunks) * kChunk;
      body(row, t0, std::min(frames, t0 + kChunk));
    }
  });
}

// Where tap j's neighbours of the frames [tb, te) lie: all inside [0, T), all outside, or
// some of each (only in the few blocks that straddle a sequence end).
enum class Reach { kInside, kOutside, kPartial };

inline Reach reach(const Window& w, int64_t o, int64_t tb, int64_t te) {
  const int64_t lo = w.lo(o, tb), hi = w.hi(o, te);
  if (lo == tb && hi == te) return Reach::kInside;
  return hi <= lo ? Reach::kOutside : Reach::kPartial;
}

template <typename T>
struct ZeroLanes {  // stands in for the neighbours outside the sequence in the vector loops
  alignas(64) static constexpr T values[kLanes] = {};
};

// out[j, t] += sum_c a[c, t] b[c, t + o_j] for one row and frames [t0, t1). Full blocks of
// kLanes frames keep the k sums in registers over all channels; taps whose neighbours leave
// the sequence read zeros there, and a tap that leaves it inside the block adds its valid
// frames afterwards (scalar).
template <typename T, int K>
void dot_row(T* __restrict__ const* out, const T* __restrict__ const* a,
             const T* __restrict__ const* b, int64_t channels, const Window& w, int64_t t0,
             int64_t t1) {
  int64_t offs[K];
  for (int j = 0; j < K; ++j) offs[j] = w.offset(j);
  for (int64_t tb = t0; tb < t1; tb += kLanes) {
    const int64_t te = std::min(t1, tb + kLanes);
    Reach where[K];
    for (int j = 0; j < K; ++j) where[j] = te - tb == kLanes ? reach(w, offs[j], tb, te)
                                                             : Reach::kPartial;
    bool any_inside = false;
    for (int j = 0; j < K; ++j) any_inside = any_inside || where[j] == Reach::kInside;
    T acc[K][kLanes] = {};
    for (int64_t c = 0; any_inside && c < channels; ++c) {
      const T* ar = a[c] + tb;
#pragma GCC unroll 16
      for (int j = 0; j < K; ++j) {
        const T* br = where[j] == Reach::kInside ? b[c] + tb + offs[j] : ZeroLanes<T>::values;
#pragma GCC unroll 16
        for (int64_t i = 0; i < kLanes; ++i) acc[j][i] += ar[i] * br[i];
      }
    }
    for (int j = 0; j < K; ++j) {
      if (where[j] == Reach::kInside) {
        for (int64_t i = 0; i < kLanes; ++i) out[j][tb + i] += acc[j][i];
      } else if (where[j] == Reach::kPartial) {
        const int64_t lo = w.lo(offs[j], tb), hi = w.hi(offs[j], te);
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t t = lo; t < hi; ++t) out[j][t] += a[c][t] * b[c][t + offs[j]];
      }
    }
  }
}

// out[c, t] += sum_j w[j, t + s_j] v[j R + c, t + o_j], with s_j = 0 (plain) or o_j
// (transposed, where o_j is the negated offset) for one row and frames [t0, t1). R = tap_rows
// is 0 for the attention (every tap reads the same rows) and C for the conv's taps (tap j's
// own C rows). Blocks as in dot_row.
template <typename T, int K>
void mix_row(T* __restrict__ const* out, const T* __restrict__ const* v, int64_t tap_rows,
             const T* __restrict__ const* wt, int64_t channels, const Window& w, bool transposed,
             int64_t t0, int64_t t1) {
  int64_t offs[K], wshift[K];
  for (int j = 0; j < K; ++j) {
    offs[j] = transposed ? -w.offset(j) : w.offset(j);
    wshift[j] = transposed ? offs[j] : 0;
  }
  for (int64_t tb = t0; tb < t1; tb += kLanes) {
    const int64_t te = std::min(t1, tb + kLanes);
    Reach where[K];
    for (int j = 0; j < K; ++j) where[j] = te - tb == kLanes ? reach(w, offs[j], tb, te)
                                                             : Reach::kPartial;
    T weight[K][kLanes];
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < kLanes; ++i)
        weight[j][i] = where[j] == Reach::kInside ? wt[j][tb + wshift[j] + i] : T(0);
    bool any_inside = false;
    for (int j = 0; j < K; ++j) any_inside = any_inside || where[j] == Reach::kInside;
    if (any_inside) {
      for (int64_t c = 0; c < channels; ++c) {
        T acc[kLanes];
        for (int64_t i = 0; i < kLanes; ++i) acc[i] = out[c][tb + i];
#pragma GCC unroll 16
        for (int j = 0; j < K; ++j) {
          const T* vr = where[j] == Reach::kInside ? v[j * tap_rows + c] + tb + offs[j]
                                                   : ZeroLanes<T>::values;
#pragma GCC unroll 16
          for (int64_t i = 0; i < kLanes; ++i) acc[i] += weight[j][i] * vr[i];
        }
        for (int64_t i = 0; i < kLanes; ++i) out[c][tb + i] = acc[i];
      }
    }
    for (int j = 0; j < K; ++j) {
      if (where[j] != Reach::kPartial) continue;
      const int64_t lo = w.lo(offs[j], tb), hi = w.hi(offs[j], te);
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t t = lo; t < hi; ++t)
          out[c][t] += wt[j][t + wshift[j]] * v[j * tap_rows + c][t + offs[j]];
    }
  }
}

// Pointers to the C rows (channels) of batch row b of a (B, C, T) tensor.
template <typename T, typename Ptr = const T*>
std::vector<Ptr> channel_rows(const at::Tensor& x, int64_t b) {
  std::vector<Ptr> rows(x.size(1));
  T* base = static_cast<T*>(x.data_ptr()) + b * x.stride(0);
  for (int64_t c = 0; c < x.size(1); ++c) rows[c] = base + c * x.stride(1);
  return rows;
}

template <typename T>
std::vector<T*> mutable_rows(at::Tensor& x, int64_t b) {
  return channel_rows<T, T*>(x, b);
}

// Calls f(std::integral_constant<int, K>) for the window size k (odd, 1 <= k <= kMaxTaps).
template <typename F>
void with_taps(int64_t taps, const F& f) {
  switch (taps) {
    case 1: return f(std::integral_constant<int, 1>());
    case 3: return f(std::integral_constant<int, 3>());
    case 5: return f(std::integral_constant<int, 5>());
    case 7: return f(std::integral_constant<int, 7>());
    case 9: return f(std::integral_constant<int, 9>());
    case 11: return f(std::integral_constant<int, 11>());
    case 13: return f(std::integral_constant<int, 13>());
    case 15: return f(std::integral_constant<int, 15>());
    default: TORCH_CHECK(false, "window size must be odd and at most ", kMaxTaps, ", got ", taps);
  }
}

void check(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.dim() == 3, name, " must be (B, *, T), got ", t.sizes());
  TORCH_CHECK(t.size(0) == like.size(0) && t.size(2) == like.size(2), name, " must be (",
              like.size(0), ", *, ", like.size(2), "), got ", t.sizes());
  TORCH_CHECK(t.stride(2) == 1 || t.size(2) <= 1, name, " must be contiguous over frames");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must be ", like.scalar_type(),
              ", got ", t.scalar_type());
}

// exp(x) for x <= 0 (softmax after subtracting the maximum), in a form the compiler vectorizes:
// x = n ln2 + r with |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial (about 1 ulp), 2^n by
// building the exponent bits. Below -87 (2^-125) it returns 0, as expf underflows to.
inline float exp_nonpositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x < -87.0f ? -87.0f : x;
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = xc - n * kLn2Hi - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : y * two_n;
}

inline double exp_nonpositive(double x) { return std::exp(x); }

// How the softmax treats the window positions without a key (mask false). Exact: their score
// is lowest, so they get no weight (a row with every key masked gets uniform weights, as in
// the PyTorch path). DiffAct's (model.attention_outside = diffact): every score gets
// log(mask + eps), i.e. log(1 + eps) where the key exists and log(eps) where it does not, the
// softmax runs over the whole window, and the weights without a key are then set to 0 (the
// weights of a frame near the sequence ends sum to less than 1).
template <typename T>
struct Outside {
  T inside_bias;    // added to the score of an existing key
  T outside_score;  // the score of a position without a key
  bool zero_weights;  // whether those positions' weights become 0 after the softmax

  static Outside exact() { return {T(0), std::numeric_limits<T>::lowest(), false}; }
  static Outside diffact(double eps) {
    return {std::log(T(1) + static_cast<T>(eps)), std::log(static_cast<T>(eps)), true};
  }
};

// In place over frames [t0, t1) of one row: s[j, t] <- softmax_j(mask[j, t] ? scale s[j, t] +
// inside_bias : outside_score), then 0 where the key is masked if zero_weights: the
// masked_fill-then-softmax of the PyTorch path (fast.attend).
template <typename T, int K>
void softmax_row(T* const* s, const bool* const* mask, T scale, const Outside<T>& outside,
                 int64_t t0, int64_t t1) {
  constexpr T kLowest = std::numeric_limits<T>::lowest();
  for (int64_t tb = t0; tb < t1; tb += kLanes) {
    const int64_t n = std::min(kLanes, t1 - tb);
    T x[K][kLanes], top[kLanes], total[kLanes];
    for (int64_t i = 0; i < kLanes; ++i) top[i] = kLowest, total[i] = 0;
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < n; ++i) {
        x[j][i] = mask[j][tb + i] ? scale * s[j][tb + i] + outside.inside_bias
                                  : outside.outside_score;
        top[i] = std::max(top[i], x[j][i]);
      }
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < n; ++i) total[i] += x[j][i] = exp_nonpositive(x[j][i] - top[i]);
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < n; ++i)
        s[j][tb + i] = outside.zero_weights && !mask[j][tb + i] ? T(0) : x[j][i] / total[i];
  }
}

// weights = softmax_j(mask ? scale q . k_j : lowest) (B, k, T); out += sum_j weights_j v_j;
// with diffact_eps, DiffAct's handling of the masked positions instead (Outside::diffact).
// Per (row, chunk) the scores, their softmax and the weighted sum of values run back to back,
// so the chunk's scores stay in cache. Returns the weights (the backward needs them; its
// formula is the same for both handlings, given these weights).
at::Tensor window_attention_(at::Tensor out, const at::Tensor& q, const at::Tensor& k,
                             const at::Tensor& v, const at::Tensor& key_mask, int64_t dilation,
                             double scale, std::optional<double> diffact_eps) {
  check(k, "k", q);
  check(v, "v", q);
  check(out, "out", q);
  TORCH_CHECK(q.size(1) == k.size(1), "q and k must have the same channels");
  TORCH_CHECK(out.size(1) == v.size(1), "out and v must have the same channels");
  TORCH_CHECK(key_mask.scalar_type() == at::kBool, "key_mask must be bool");
  TORCH_CHECK(key_mask.dim() == 3 && key_mask.size(0) == q.size(0) &&
                  key_mask.size(2) == q.size(2) && key_mask.stride(2) == 1,
              "key_mask must be (B, k, T) with frames contiguous, got ", key_mask.sizes());
  TORCH_CHECK(dilation >= 1, "dilation must be >= 1, got ", dilation);
  const Window w{key_mask.size(1), dilation, q.size(2)};
  at::Tensor weights = at::zeros(key_mask.sizes(), q.options());  // (B, k, T)
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_attention_", [&] {
    with_taps(w.taps, [&](auto taps) {
      constexpr int K = decltype(taps)::value;
      const auto outside = diffact_eps ? Outside<scalar_t>::diffact(*diffact_eps)
                                       : Outside<scalar_t>::exact();
      for_chunks(q.size(0), w.frames, [&](int64_t row, int64_t t0, int64_t t1) {
        auto s = mutable_rows<scalar_t>(weights, row);
        auto o = mutable_rows<scalar_t>(out, row);
        auto qr = channel_rows<scalar_t>(q, row), kr = channel_rows<scalar_t>(k, row);
        auto vr = channel_rows<scalar_t>(v, row);
        auto m = channel_rows<bool>(key_mask, row);
        dot_row<scalar_t, K>(s.data(), qr.data(), kr.data(), q.size(1), w, t0, t1);
        softmax_row<scalar_t, K>(s.data(), m.data(), static_cast<scalar_t>(scale), outside, t0,
                                 t1);
        mix_row<scalar_t, K>(o.data(), vr.data(), 0, s.data(), v.size(1), w, false, t0, t1);
      });
    });
  });
  return weights;
}

// Softmax backward over frames [t0, t1) of one row, in place: gs holds dL/dweights and
// becomes dL/dscores = ((gs - sum_j w_j gs_j) * w) * scale, 0 where the key is masked (the
// order of the PyTorch ops of attend_backward).
template <typename T, int K>
void softmax_backward_row(T* const* gs, const T* const* w, const bool* const* mask, T scale,
                          int64_t t0, int64_t t1) {
  for (int64_t tb = t0; tb < t1; tb += kLanes) {
    const int64_t n = std::min(kLanes, t1 - tb);
    T dot[kLanes] = {};
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < n; ++i) dot[i] += gs[j][tb + i] * w[j][tb + i];
    for (int j = 0; j < K; ++j)
      for (int64_t i = 0; i < n; ++i)
        gs[j][tb + i] = mask[j][tb + i] ? (gs[j][tb + i] - dot[i]) * w[j][tb + i] * scale : T(0);
  }
}

// The backward of window_attention_ given its weights: adds dL/dq, dL/dk, dL/dv to grad_q,
// grad_k, grad_v. First per chunk the weights' and scores' gradients and dL/dq (a gather);
// then, once every chunk's score gradients exist, dL/dk and dL/dv as gathers over the keys.
void window_attention_backward_(at::Tensor grad_q, at::Tensor grad_k, at::Tensor grad_v,
                                const at::Tensor& grad_out, const at::Tensor& q,
                                const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& weights, const at::Tensor& key_mask,
                                int64_t dilation, double scale) {
  check(grad_q, "grad_q", q);
  check(grad_k, "grad_k", q);
  check(grad_v, "grad_v", q);
  check(grad_out, "grad_out", q);
  check(k, "k", q);
  check(v, "v", q);
  check(weights, "weights", q);
  TORCH_CHECK(key_mask.scalar_type() == at::kBool && key_mask.sizes() == weights.sizes() &&
                  key_mask.stride(2) == 1,
              "key_mask must be bool of the weights' shape, frames contiguous");
  TORCH_CHECK(dilation >= 1, "dilation must be >= 1, got ", dilation);
  const Window w{weights.size(1), dilation, q.size(2)};
  at::Tensor grad_scores = at::zeros_like(weights);  // (B, k, T)
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "window_attention_backward_", [&] {
    with_taps(w.taps, [&](auto taps) {
      constexpr int K = decltype(taps)::value;
      const auto sc = static_cast<scalar_t>(scale);
      for_chunks(q.size(0), w.frames, [&](int64_t row, int64_t t0, int64_t t1) {
        auto gs = mutable_rows<scalar_t>(grad_scores, row);
        auto gq = mutable_rows<scalar_t>(grad_q, row);
        auto g = channel_rows<scalar_t>(grad_out, row), vr = channel_rows<scalar_t>(v, row);
        auto kr = channel_rows<scalar_t>(k, row), wr = channel_rows<scalar_t>(weights, row);
        auto m = channel_rows<bool>(key_mask, row);
        dot_row<scalar_t, K>(gs.data(), g.data(), vr.data(), v.size(1), w, t0, t1);
        softmax_backward_row<scalar_t, K>(gs.data(), wr.data(), m.data(), sc, t0, t1);
        mix_row<scalar_t, K>(gq.data(), kr.data(), 0, gs.data(), q.size(1), w, false, t0, t1);
      });
      for_chunks(q.size(0), w.frames, [&](int64_t row, int64_t t0, int64_t t1) {
        auto gk = mutable_rows<scalar_t>(grad_k, row), gv = mutable_rows<scalar_t>(grad_v, row);
        auto qr = channel_rows<scalar_t>(q, row), g = channel_rows<scalar_t>(grad_out, row);
        auto gs = channel_rows<scalar_t>(grad_scores, row);
        auto wr = channel_rows<scalar_t>(weights, row);
        mix_row<scalar_t, K>(gk.data(), qr.data(), 0, gs.data(), q.size(1), w, true, t0, t1);
        mix_row<scalar_t, K>(gv.data(), g.data(), 0, wr.data(), v.size(1), w, true, t0, t1);
      });
    });
  });
}

// The dilated conv from its taps' projections: out[c, t] += sum_j z[j C + c, t + o_j], z the
// (B, k C, T) stacked projections [W_0 h; ...; W_{k-1} h] (see _ConvAttention in fast.py).
void window_taps_(at::Tensor out, const at::Tensor& z, int64_t taps, int64_t dilation) {
  check(z, "z", out);
  TORCH_CHECK(taps >= 1 && z.size(1) == taps * out.size(1), "z must have ", taps, " x ",
              out.size(1), " rows, got ", z.size(1));
  TORCH_CHECK(dilation >= 1, "dilation must be >= 1, got ", dilation);
  const Window w{taps, dilation, out.size(2)};
  const at::Tensor ones = at::ones({taps, out.size(2)}, out.options());  // unit tap weights
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "window_taps_", [&] {
    with_taps(taps, [&](auto k) {
      for_chunks(out.size(0), w.frames, [&](int64_t row, int64_t t0, int64_t t1) {
        auto o = mutable_rows<scalar_t>(out, row);
        auto zr = channel_rows<scalar_t>(z, row);
        std::vector<const scalar_t*> unit(taps);
        for (int64_t j = 0; j < taps; ++j) unit[j] = ones.data_ptr<scalar_t>() + j * w.frames;
        mix_row<scalar_t, decltype(k)::value>(o.data(), zr.data(), out.size(1), unit.data(),
                                              out.size(1), w, false, t0, t1);
      });
    });
  });
}

// splitmix64's output for the given counter: a fast, well-mixed 64-bit hash (Steele, Lea and
// Flood 2014). Draw d of a dropout mask is splitmix64(seed, d + 1), and its four 16-bit halves
// (in memory order) are the shares of elements 4d .. 4d + 3; fast.py computes the same values
// with tensor ops where these kernels are not built.
inline uint64_t splitmix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + counter * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr int64_t kDraws = 64;  // draws per batch: the hashes, then the elements (both vectorise)

// Dropout of the elements of batches [begin, end) (4 * kDraws elements each). A function of
// its own: with every operand a by-value parameter, stores through dst alias none of them
// and both loops vectorise (inside the parallel_for lambda they did not: 10x slower).
template <typename T>
void mask_batches(const T* __restrict__ src, T* __restrict__ dst, int64_t count, uint64_t seed,
                  int64_t threshold, T factor, int64_t begin, int64_t end) {
  uint64_t z[kDraws];
  int16_t share[4 * kDraws];
  for (int64_t b = begin; b < end; ++b) {
    const int64_t d0 = b * kDraws, e0 = 4 * d0;
    for (int64_t d = 0; d < kDraws; ++d) z[d] = splitmix64(seed, static_cast<uint64_t>(d0 + d + 1));
    std::memcpy(share, z, sizeof(z));  // the 16-bit halves in memory order
    const int64_t n = std::min<int64_t>(4 * kDraws, count - e0);
    // x * 0 rather than 0, like the tensor-op path (NaN and inf stay NaN)
    for (int64_t i = 0; i < n; ++i)
      dst[e0 + i] = src[e0 + i] * (share[i] < threshold ? factor : T(0));
  }
}

// Dropout (see dropout in fast.py): out[i] = x[i] * scale where share i < threshold,
// else x[i] * 0, the shares hashed from the seed on the fly, in one pass. The backward is the same
// call on the output gradient with the same seed: no mask is stored.
at::Tensor dropout_apply(const at::Tensor& x, int64_t seed, int64_t threshold, double scale) {
  TORCH_CHECK(x.device().is_cpu() && x.is_contiguous(), "x must be a contiguous CPU tensor");
  TORCH_CHECK(threshold >= -32768 && threshold <= 32768, "threshold must be a 16-bit share");
  at::Tensor out = at::empty_like(x);
  const int64_t count = x.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dropout_apply", [&] {
    const scalar_t* src = x.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const scalar_t factor = static_cast<scalar_t>(scale);
    const int64_t batches = (count + 4 * kDraws - 1) / (4 * kDraws);
    at::parallel_for(0, batches, 32, [&](int64_t begin, int64_t end) {
      mask_batches(src, dst, count, static_cast<uint64_t>(seed), threshold, factor, begin, end);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(twostream_das, m) {
  m.def(
      "window_attention_(Tensor(a!) out, Tensor q, Tensor k, Tensor v, Tensor key_mask, "
      "int dilation, float scale, float? diffact_eps=None) -> Tensor");
  m.def("window_taps_(Tensor(a!) out, Tensor z, int taps, int dilation) -> ()");
  m.def(
      "window_attention_backward_(Tensor(a!) grad_q, Tensor(b!) grad_k, Tensor(c!) grad_v, "
      "Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor weights, Tensor key_mask, "
      "int dilation, float scale) -> ()");
  m.def("dropout_apply(Tensor x, int seed, int threshold, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(twostream_das, CPU, m) {
  m.impl("window_attention_", &window_attention_);
  m.impl("window_taps_", &window_taps_);
  m.impl("window_attention_backward_", &window_attention_backward_);
  m.impl("dropout_apply", &dropout_apply);
}
