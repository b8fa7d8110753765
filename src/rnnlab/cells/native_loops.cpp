// The whole time loop of one layer as one C++ function, forward and backward (native.py builds
// and loads this file; it is plain C++ with no torch headers, so it compiles in about a second).
//
// Why: the per-step graphs (compile_cache.py) pay a Python call, an ATen matmul call and a
// kernel launch per time step and direction; at small sizes (B = 64, H = 64) that is more than
// the arithmetic. Here a step is one register-tiled GEMM and one pass over the gates, with no
// call in between, as oneDNN's RNN primitive does.
//
// The equations are the cells' own, term for term and in the same order of operations (see the
// docstrings of lstm.py, variant "torch"/"np"; gru.py, variant "gru", reset "after"; rnn.py,
// tanh and ReLU; indrnn.py); the tests hold each kernel to the per-step Python path
// (tests/test_cells_native.py). Layouts are
// those of recurrence.py: time-major (T, B, ·) row-major stacks, step t's new state at
// seq + t·B·H, its previous one at t = 0 the initial state, else seq + (t−1)·B·H; mask (T, B)
// bytes (1 = the step is valid); past a sequence's end the state is frozen and the state
// gradient passes through unchanged.
//
// Threads: the rows of a batch never meet in a recurrence, so each thread runs the whole time
// loop for its own rows [b0, b1) with no synchronisation at all (W is read-only); the caller
// passes how many threads (torch's intra-op count).

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include <omp.h>

// glibc's vector math library (libmvec) has SIMD versions of these; declared "simd" so that the
// compiler calls them on whole vectors (glibc only declares them so under -ffast-math, which
// would also assume no inf or NaN: a diverging run must still produce them). Only where the
// build says libmvec has them (native.py's platform check): x86-64 glibc >= 2.22 for exp, >= 2.35
// for tanh (an older glibc has no _ZGVdN8v_tanhf: the library would not load); else scalar.
#ifndef RNNLAB_VECTOR_EXP
#define RNNLAB_VECTOR_EXP 0
#endif
#ifndef RNNLAB_VECTOR_TANH
#define RNNLAB_VECTOR_TANH 0
#endif
#if RNNLAB_VECTOR_EXP
#define RNNLAB_SIMD_EXP simd("notinbranch"),
#else
#define RNNLAB_SIMD_EXP
#endif
#if RNNLAB_VECTOR_TANH
#define RNNLAB_SIMD_TANH simd("notinbranch"),
#else
#define RNNLAB_SIMD_TANH
#endif
extern "C" {
float expf(float) __attribute__((RNNLAB_SIMD_EXP nothrow, const));
float tanhf(float) __attribute__((RNNLAB_SIMD_TANH nothrow, const));
double exp(double) __attribute__((RNNLAB_SIMD_EXP nothrow, const));
double tanh(double) __attribute__((RNNLAB_SIMD_TANH nothrow, const));
}

// The register tile of the GEMM, per instruction set: MR rows × 2 vectors of RNNLAB_VECTOR
// bytes, 2·MR accumulators + 2 vectors of B + 1 broadcast within the register file.
//   AVX-512: 64-byte vectors, 8 × 2 (16 accumulators of 32 zmm registers; the fastest of 4×2 ...
//            8×2 measured, 55-58 GFMA/s on one core of the EPYC this was written on)
//   AVX/AVX2: 32-byte vectors, 6 × 2 (12 accumulators + 3 of 16 ymm registers: 8 × 2 of 64-byte
//            vectors would be 32 registers' worth of accumulators and spill)
//   SSE2 (x86-64's baseline): 16-byte vectors, 6 × 2 (16 xmm registers)
//   aarch64 (NEON): 16-byte vectors, 8 × 2 (32 registers)
#if defined(__AVX512F__)
#define RNNLAB_VECTOR 64
#define RNNLAB_MR 8
#define RNNLAB_ISA "avx512"
#elif defined(__AVX__)
#define RNNLAB_VECTOR 32
#define RNNLAB_MR 6
#define RNNLAB_ISA "avx2"
#elif defined(__aarch64__)
#define RNNLAB_VECTOR 16
#define RNNLAB_MR 8
#define RNNLAB_ISA "neon"
#else
#define RNNLAB_VECTOR 16
#define RNNLAB_MR 6
#define RNNLAB_ISA "sse2"
#endif
#define RNNLAB_STR2(x) #x
#define RNNLAB_STR(x) RNNLAB_STR2(x)

namespace {

inline float exp_(float x) { return expf(x); }
inline double exp_(double x) { return exp(x); }
inline float tanh_(float x) { return tanhf(x); }
inline double tanh_(double x) { return tanh(x); }
// as torch's sigmoid on the CPU: 1 / (1 + exp(−x))
template <class T> inline T sigmoid_(T x) { return T(1) / (T(1) + exp_(-x)); }

template <class T> struct Vec {
  static constexpr int L = RNNLAB_VECTOR / sizeof(T);  // one vector register
  typedef T v __attribute__((vector_size(RNNLAB_VECTOR), aligned(sizeof(T))));  // unaligned
};

// One MR × (NV vectors) tile of C = A · B (or C += A · B), accumulated in registers over all K.
// A's element (r, k) is A[r·ars + k·aks]: row-major A (ars = lda, aks = 1), or A stored
// transposed (ars = 1, aks = lda: the weight gradients' Σ_t δ_tᵀ u_t, see outer below).
template <class T, int MR, int NV>
inline void tile(int K, const T* A, int64_t ars, int64_t aks, const T* B, int ldb, T* C, int ldc,
                 bool accumulate) {
  typedef typename Vec<T>::v V;
  constexpr int L = Vec<T>::L;
  V acc[MR][NV] = {};
  for (int k = 0; k < K; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int s = 0; s < NV; ++s) b[s] = *(const V*)(B + (int64_t)k * ldb + s * L);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const T a = A[r * ars + k * aks];
#pragma GCC unroll 4
      for (int s = 0; s < NV; ++s) acc[r][s] += a * b[s];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int s = 0; s < NV; ++s) {
      V* out = (V*)(C + (int64_t)r * ldc + s * L);
      *out = accumulate ? *out + acc[r][s] : acc[r][s];
    }
}

// One column block of NV vectors of C: its rows in tiles of RNNLAB_MR, then 4, then 1. Every
// element is the same sum over k in the same order whatever its tile, so the split changes no bit.
template <class T, int NV>
inline void row_tiles(int M, int K, const T* A, int64_t ars, int64_t aks, const T* B, int ldb,
                      T* C, int ldc, bool accumulate) {
  int i = 0;
  for (; i + RNNLAB_MR <= M; i += RNNLAB_MR)
    tile<T, RNNLAB_MR, NV>(K, A + i * ars, ars, aks, B, ldb, C + (int64_t)i * ldc, ldc,
                           accumulate);
  for (; i + 4 <= M; i += 4)
    tile<T, 4, NV>(K, A + i * ars, ars, aks, B, ldb, C + (int64_t)i * ldc, ldc, accumulate);
  for (; i < M; ++i)
    tile<T, 1, NV>(K, A + i * ars, ars, aks, B, ldb, C + (int64_t)i * ldc, ldc, accumulate);
}

// C = A · B   (M×K times K×N, row-major with leading dimensions), or C += A · B (accumulate).
// Register tiles of RNNLAB_MR rows × 2 vectors (see RNNLAB_MR above); B's K × 2-vector panel
// stays in L1 across the rows. Then 1-vector columns, a scalar remainder.
template <class T>
void gemm_strided(int M, int N, int K, const T* A, int64_t ars, int64_t aks, const T* B, int ldb,
                  T* C, int ldc, bool accumulate) {
  constexpr int L = Vec<T>::L;
  int j = 0;
  for (; j + 2 * L <= N; j += 2 * L)
    row_tiles<T, 2>(M, K, A, ars, aks, B + j, ldb, C + j, ldc, accumulate);
  for (; j + L <= N; j += L)
    row_tiles<T, 1>(M, K, A, ars, aks, B + j, ldb, C + j, ldc, accumulate);
  if (j < N) {  // the last N mod L columns
    for (int i = 0; i < M; ++i) {
      T* c = C + (int64_t)i * ldc;
      for (int jj = j; jj < N; ++jj) {
        T s = 0;
        for (int k = 0; k < K; ++k) s += A[i * ars + k * aks] * B[(int64_t)k * ldb + jj];
        c[jj] = accumulate ? c[jj] + s : s;
      }
    }
  }
}

// C = A · B with row-major A (M×K)
template <class T>
inline void gemm(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc,
                 bool accumulate) {
  gemm_strided<T>(M, N, K, A, lda, 1, B, ldb, C, ldc, accumulate);
}

// Wᵀ of a (rows × cols) matrix into out (cols × rows)
template <class T> void transpose(const T* w, int rows, int cols, T* out) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) out[(int64_t)c * rows + r] = w[(int64_t)r * cols + c];
}

template <class T> struct Scratch {  // per-call work memory, freed on every return path
  T* p;
  explicit Scratch(size_t n) : p((T*)std::malloc(sizeof(T) * (n ? n : 1))) {}
  ~Scratch() { std::free(p); }
};

// Past a sequence's end (mask 0) a step keeps the state: new = m ? new : old, row by row.
template <class T> inline void freeze_rows(const uint8_t* m, int B, int H, const T* old, T* cur) {
  for (int b = 0; b < B; ++b)
    if (!m[b]) std::memcpy(cur + (int64_t)b * H, old + (int64_t)b * H, sizeof(T) * H);
}

// Run fn(b0, b1) on up to `threads` slices of the B rows (multiples of R rows, at least R per
// thread: 4, a GEMM tile of the time loops; RNNLAB_MR, the weight gradients' full tile) in an
// OpenMP team; 0 if every slice returned 0. OpenMP, not threads of our own: torch's CPU build
// runs its intra-op work on libgomp, the same runtime this library links (one libgomp.so.1 per
// process), so the team is torch's own pool, awake right after the ops before it; a second pool
// would fight torch's spinning workers for the cores (measured: the 2-thread LSTM loops 1.3 ms
// alone, 2.5 ms with std::thread beside torch's pool).
template <int R = 4, class F> int parallel_rows(int B, int threads, F fn) {
  int n = threads < 1 ? 1 : threads;
  if (n > B / R) n = B / R > 0 ? B / R : 1;
  if (n == 1) return fn(0, B);
  int rc = 0;
#pragma omp parallel num_threads(n) reduction(| : rc)
  {
    const int k = omp_get_thread_num(), nt = omp_get_num_threads();
    const int per = (B / nt + R - 1) / R * R;
    const int b0 = k * per, b1 = k == nt - 1 ? B : (k + 1) * per < B ? (k + 1) * per : B;
    if (b0 < b1) rc |= fn(b0, b1);
  }
  return rc;
}

// ---- LSTM, variants "torch" and "np" (lstm.py: torch_forward / torch_backward) -------------
//   a = gi + b_ih + W_hh h + b_hh          blocks [i, f, g, o], G = 4H
//   i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  c' = f c + i g  o = σ(a_o)  tc = tanh(c')  h' = o tc
// saved per step: i, f, g, o, tc, each a (T, B, H) stack

template <class T>
int lstm_forward(int steps, int B, int H, const T* gi, const uint8_t* mask, const T* h0,
                 const T* wt, const T* b_ih, const T* b_hh, T* hseq, T* cbuf, T* si, T* sf,
                 T* sg, T* so, T* stc, int b0, int b1) {
  const int G = 4 * H, M = b1 - b0;
  const int64_t BH = (int64_t)B * H, BG = (int64_t)B * G;
  Scratch<T> acc((size_t)M * G);
  if (!acc.p) return 1;
  for (int t = 0; t < steps; ++t) {
    const T* h = t ? hseq + (t - 1) * BH : h0;
    const T* c = cbuf + t * BH;  // cbuf[0] = c_0
    T* h_new = hseq + t * BH;
    T* c_new = cbuf + (t + 1) * BH;
    gemm<T>(M, G, H, h + (int64_t)b0 * H, H, wt, G, acc.p, G, false);
    const T* x = gi + t * BG;
    for (int b = b0; b < b1; ++b) {
      const T* xb = x + (int64_t)b * G;
      const T* ab = acc.p + (int64_t)(b - b0) * G;
      const T* cb = c + (int64_t)b * H;
      const int64_t o = t * BH + (int64_t)b * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        T ai = xb[j] + b_ih[j] + ab[j] + b_hh[j];
        T af = xb[H + j] + b_ih[H + j] + ab[H + j] + b_hh[H + j];
        T ag = xb[2 * H + j] + b_ih[2 * H + j] + ab[2 * H + j] + b_hh[2 * H + j];
        T ao = xb[3 * H + j] + b_ih[3 * H + j] + ab[3 * H + j] + b_hh[3 * H + j];
        T i = sigmoid_(ai), f = sigmoid_(af), g = tanh_(ag);
        T cn = f * cb[j] + i * g;
        T og = sigmoid_(ao);
        T tc = tanh_(cn);
        si[o + j] = i; sf[o + j] = f; sg[o + j] = g; so[o + j] = og; stc[o + j] = tc;
        c_new[(int64_t)b * H + j] = cn;
        h_new[(int64_t)b * H + j] = og * tc;
      }
    }
    if (mask) {
      const uint8_t* m = mask + (int64_t)t * B;
      freeze_rows(m + b0, M, H, h + (int64_t)b0 * H, h_new + (int64_t)b0 * H);
      freeze_rows(m + b0, M, H, c + (int64_t)b0 * H, c_new + (int64_t)b0 * H);
    }
  }
  return 0;
}

//   dh = δh_t + dy_t (the total ∂L/∂h_t, recorded as its norm), dc = δc_t
//   dc += dh o (1 − tc²)   δa_o = dh tc o (1 − o)   δa_i = dc g i (1 − i)   δa_f = dc c f (1 − f)
//   δa_g = dc i (1 − g²)   δh_{t−1} = δa · W_hh     δc_{t−1} = dc f
// dh_io, dc_io: in, δ of the final state; out, δ of the initial state
template <class T>
int lstm_backward(int steps, int B, int H, const T* dy, const uint8_t* mask, const T* cbuf,
                  const T* si, const T* sf, const T* sg, const T* so, const T* stc,
                  const T* w_hh, T* dgi, T* norms, T* dh_io, T* dc_io, int b0, int b1) {
  const int G = 4 * H, M = b1 - b0;
  const int64_t BH = (int64_t)B * H, BG = (int64_t)B * G, MH = (int64_t)M * H;
  // this slice's rows: dh (the total ∂L/∂h_t), dc, and δh_{t−1} from the GEMM
  Scratch<T> dh((size_t)MH), dc((size_t)MH), dprev((size_t)MH);
  if (!dh.p || !dc.p || !dprev.p) return 1;
  std::memcpy(dprev.p, dh_io + (int64_t)b0 * H, sizeof(T) * MH);
  std::memcpy(dc.p, dc_io + (int64_t)b0 * H, sizeof(T) * MH);
  for (int t = steps - 1; t >= 0; --t) {
    const uint8_t* m = mask ? mask + (int64_t)t * B : nullptr;
    const T* dyt = dy + t * BH;
    const T* cp = cbuf + t * BH;  // c_{t−1}
    T* da = dgi + t * BG;
    for (int b = b0; b < b1; ++b) {
      const int64_t r = (int64_t)b * H, o = t * BH + r, l = (int64_t)(b - b0) * H;
      const bool valid = !m || m[b];
      T* dhb = dh.p + l;
      T* dcb = dc.p + l;
      const T* din = dprev.p + l;
      T sq = 0;
      for (int j = 0; j < H; ++j) {  // the total ∂L/∂h_t (no dy past the end)
        dhb[j] = din[j] + (valid ? dyt[r + j] : T(0));
        sq += dhb[j] * dhb[j];
      }
      if (norms) norms[(int64_t)t * B + b] = valid ? __builtin_sqrt(sq) : T(0);
      T* dab = da + (int64_t)b * G;
      if (!valid) {  // a frozen step: no gate gradient, the state gradient passes through
        std::memset(dab, 0, sizeof(T) * G);
        continue;
      }
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        T i = si[o + j], f = sf[o + j], g = sg[o + j], og = so[o + j], tc = stc[o + j];
        T h_ = dhb[j];
        T c_ = dcb[j] + h_ * og * (1 - tc * tc);
        T dao = h_ * tc * og * (1 - og);
        T dai = c_ * g * i * (1 - i);
        T daf = c_ * cp[r + j] * f * (1 - f);
        T dag = c_ * i * (1 - g * g);
        dab[j] = dai; dab[H + j] = daf; dab[2 * H + j] = dag; dab[3 * H + j] = dao;
        dcb[j] = c_ * f;
      }
    }
    gemm<T>(M, H, G, da + (int64_t)b0 * G, G, w_hh, H, dprev.p, H, false);  // δa · W_hh
    if (m) {  // frozen rows: δh_{t−1} = δh_t (δc_{t−1} = δc_t was kept above)
      for (int b = b0; b < b1; ++b)
        if (!m[b]) {
          const int64_t l = (int64_t)(b - b0) * H;
          std::memcpy(dprev.p + l, dh.p + l, sizeof(T) * H);
        }
    }
  }
  std::memcpy(dh_io + (int64_t)b0 * H, dprev.p, sizeof(T) * MH);
  std::memcpy(dc_io + (int64_t)b0 * H, dc.p, sizeof(T) * MH);
  return 0;
}

// ---- GRU, variant "gru", reset "after" (gru.py: gru_after_step / gru_after_step_backward) ----
//   gi' = gi + b_ih   gh = W_hh h + b_hh      blocks [r, z, n], G = 3H
//   g = σ(gi'_rz + gh_rz) = [r, z]   n = tanh(gi'_n + r gh_n)   h' = n + z (h − n)
// saved per step: g (T, B, 2H), n (T, B, H), gh_n (T, B, H)

template <class T>
int gru_forward(int steps, int B, int H, const T* gi, const uint8_t* mask, const T* h0,
                const T* wt, const T* b_ih, const T* b_hh, T* hseq, T* sg, T* sn, T* sghn,
                int b0, int b1) {
  const int G = 3 * H, K = 2 * H, M = b1 - b0;
  const int64_t BH = (int64_t)B * H, BG = (int64_t)B * G;
  Scratch<T> acc((size_t)M * G);
  if (!acc.p) return 1;
  for (int t = 0; t < steps; ++t) {
    const T* h = t ? hseq + (t - 1) * BH : h0;
    T* h_new = hseq + t * BH;
    gemm<T>(M, G, H, h + (int64_t)b0 * H, H, wt, G, acc.p, G, false);
    const T* x = gi + t * BG;
    for (int b = b0; b < b1; ++b) {
      const T* xb = x + (int64_t)b * G;
      const T* ab = acc.p + (int64_t)(b - b0) * G;
      const T* hb = h + (int64_t)b * H;
      T* gb = sg + t * (int64_t)B * K + (int64_t)b * K;
      const int64_t o = t * BH + (int64_t)b * H;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        T r = sigmoid_((xb[j] + b_ih[j]) + (ab[j] + b_hh[j]));
        T z = sigmoid_((xb[H + j] + b_ih[H + j]) + (ab[H + j] + b_hh[H + j]));
        T ghn = ab[K + j] + b_hh[K + j];
        T n = tanh_((xb[K + j] + b_ih[K + j]) + r * ghn);
        gb[j] = r; gb[H + j] = z; sn[o + j] = n; sghn[o + j] = ghn;
        h_new[(int64_t)b * H + j] = n + z * (hb[j] - n);
      }
    }
    if (mask)
      freeze_rows(mask + (int64_t)t * B + b0, M, H, h + (int64_t)b0 * H,
                  h_new + (int64_t)b0 * H);
  }
  return 0;
}

//   dz = dh (h − n)   δa_n = dh (1 − z)(1 − n²)   dr = δa_n gh_n   δa_[r,z] = [dr, dz] g (1 − g)
//   ∂L/∂gi = [δa_r, δa_z, δa_n]   ∂L/∂gh_n = δa_n r (an extra, stacked: dghn)
//   δh_{t−1} = dh z + [δa_r, δa_z, δa_n r] · W_hh
template <class T>
int gru_backward(int steps, int B, int H, const T* dy, const uint8_t* mask, const T* h0,
                 const T* hseq, const T* sg, const T* sn, const T* sghn, const T* w_hh, T* dgi,
                 T* dghn, T* norms, T* dh_io, int b0, int b1) {
  const int G = 3 * H, K = 2 * H, M = b1 - b0;
  const int64_t BH = (int64_t)B * H, BG = (int64_t)B * G, MH = (int64_t)M * H;
  Scratch<T> dh((size_t)MH), dprev((size_t)MH), dgh((size_t)M * G);
  if (!dh.p || !dprev.p || !dgh.p) return 1;
  std::memcpy(dprev.p, dh_io + (int64_t)b0 * H, sizeof(T) * MH);
  for (int t = steps - 1; t >= 0; --t) {
    const uint8_t* m = mask ? mask + (int64_t)t * B : nullptr;
    const T* dyt = dy + t * BH;
    const T* h = t ? hseq + (t - 1) * BH : h0;
    T* da = dgi + t * BG;
    for (int b = b0; b < b1; ++b) {
      const int64_t r = (int64_t)b * H, o = t * BH + r, l = (int64_t)(b - b0) * H;
      const bool valid = !m || m[b];
      T* dhb = dh.p + l;
      T* dpb = dprev.p + l;
      T sq = 0;
      for (int j = 0; j < H; ++j) {
        dhb[j] = dpb[j] + (valid ? dyt[r + j] : T(0));
        sq += dhb[j] * dhb[j];
      }
      if (norms) norms[(int64_t)t * B + b] = valid ? __builtin_sqrt(sq) : T(0);
      T* dab = da + (int64_t)b * G;
      T* dgb = dgh.p + (int64_t)(b - b0) * G;
      T* dnb = dghn + o;
      if (!valid) {
        std::memset(dab, 0, sizeof(T) * G);
        std::memset(dgb, 0, sizeof(T) * G);
        std::memset(dnb, 0, sizeof(T) * H);
        continue;
      }
      const T* gb = sg + t * (int64_t)B * K + (int64_t)b * K;
      const T* hb = h + r;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        T rg = gb[j], z = gb[H + j], n = sn[o + j], ghn = sghn[o + j], h_ = dhb[j];
        T dz = h_ * (hb[j] - n);
        T dan = h_ * (1 - z) * (1 - n * n);
        T dr = dan * ghn;
        T dar = dr * rg * (1 - rg);
        T daz = dz * z * (1 - z);
        T dn_r = dan * rg;
        dab[j] = dar; dab[H + j] = daz; dab[K + j] = dan;
        dgb[j] = dar; dgb[H + j] = daz; dgb[K + j] = dn_r;
        dnb[j] = dn_r;
        dpb[j] = h_ * z;  // the direct term; the GEMM adds dgh · W_hh
      }
    }
    gemm<T>(M, H, G, dgh.p, G, w_hh, H, dprev.p, H, true);
    if (m) {
      for (int b = b0; b < b1; ++b)
        if (!m[b]) {
          const int64_t l = (int64_t)(b - b0) * H;
          std::memcpy(dprev.p + l, dh.p + l, sizeof(T) * H);
        }
    }
  }
  std::memcpy(dh_io + (int64_t)b0 * H, dprev.p, sizeof(T) * MH);
  return 0;
}

// compiled once, not inlined into both of parallel_rows' call sites (the build is ~10% faster)
#define RNNLAB_NOINLINE __attribute__((noinline))

// ---- Elman RNN, tanh or ReLU (rnn.py: rnn_step / rnn_step_backward) ------------------------
//   a = gi + b_ih + W_hh h + b_hh   h' = φ(a)   φ = tanh, or relu: a ≤ 0 ? 0 : a (NaN stays NaN,
//   as torch.relu)   G = H; nothing saved: the backward reads h' from the state sequence

template <class T> inline T relu_(T a) { return a <= 0 ? T(0) : a; }

template <class T>
RNNLAB_NOINLINE int rnn_forward(int steps, int B, int H, const T* gi, const uint8_t* mask, const T* h0,
                const T* wt, const T* b_ih, const T* b_hh, T* hseq, bool relu, int b0, int b1) {
  const int M = b1 - b0;
  const int64_t BH = (int64_t)B * H;
  Scratch<T> acc((size_t)M * H);
  if (!acc.p) return 1;
  for (int t = 0; t < steps; ++t) {
    const T* h = t ? hseq + (t - 1) * BH : h0;
    T* h_new = hseq + t * BH;
    gemm<T>(M, H, H, h + (int64_t)b0 * H, H, wt, H, acc.p, H, false);
    const T* x = gi + t * BH;
    for (int b = b0; b < b1; ++b) {
      const T* xb = x + (int64_t)b * H;
      const T* ab = acc.p + (int64_t)(b - b0) * H;
      T* hn = h_new + (int64_t)b * H;
      if (relu) {
#pragma omp simd
        for (int j = 0; j < H; ++j) hn[j] = relu_(xb[j] + b_ih[j] + ab[j] + b_hh[j]);
      } else {
#pragma omp simd
        for (int j = 0; j < H; ++j) hn[j] = tanh_(xb[j] + b_ih[j] + ab[j] + b_hh[j]);
      }
    }
    if (mask)
      freeze_rows(mask + (int64_t)t * B + b0, M, H, h + (int64_t)b0 * H,
                  h_new + (int64_t)b0 * H);
  }
  return 0;
}

//   dh = δh_t + dy_t (the total ∂L/∂h_t, recorded as its norm)
//   δa = dh (1 − h'²) (tanh), or h' > 0 ? dh : 0 (relu)   ∂L/∂gi = δa   δh_{t−1} = δa · W_hh
// dh_io: in, δ of the final state; out, δ of the initial state
template <class T>
RNNLAB_NOINLINE int rnn_backward(int steps, int B, int H, const T* dy, const uint8_t* mask, const T* hseq,
                 const T* w_hh, T* dgi, T* norms, T* dh_io, bool relu, int b0, int b1) {
  const int M = b1 - b0;
  const int64_t BH = (int64_t)B * H, MH = (int64_t)M * H;
  Scratch<T> dh((size_t)MH), dprev((size_t)MH);
  if (!dh.p || !dprev.p) return 1;
  std::memcpy(dprev.p, dh_io + (int64_t)b0 * H, sizeof(T) * MH);
  for (int t = steps - 1; t >= 0; --t) {
    const uint8_t* m = mask ? mask + (int64_t)t * B : nullptr;
    const T* dyt = dy + t * BH;
    const T* hn = hseq + t * BH;  // h_t, the step's new state
    T* da = dgi + t * BH;
    for (int b = b0; b < b1; ++b) {
      const int64_t r = (int64_t)b * H, l = (int64_t)(b - b0) * H;
      const bool valid = !m || m[b];
      T* dhb = dh.p + l;
      const T* din = dprev.p + l;
      T sq = 0;
      for (int j = 0; j < H; ++j) {  // the total ∂L/∂h_t (no dy past the end)
        dhb[j] = din[j] + (valid ? dyt[r + j] : T(0));
        sq += dhb[j] * dhb[j];
      }
      if (norms) norms[(int64_t)t * B + b] = valid ? __builtin_sqrt(sq) : T(0);
      T* dab = da + r;
      if (!valid) {  // a frozen step: no gate gradient, the state gradient passes through
        std::memset(dab, 0, sizeof(T) * H);
        continue;
      }
      const T* hb = hn + r;
      if (relu) {
#pragma omp simd
        for (int j = 0; j < H; ++j) dab[j] = hb[j] > 0 ? dhb[j] : T(0);
      } else {
#pragma omp simd
        for (int j = 0; j < H; ++j) dab[j] = dhb[j] * (1 - hb[j] * hb[j]);
      }
    }
    gemm<T>(M, H, H, da + (int64_t)b0 * H, H, w_hh, H, dprev.p, H, false);  // δa · W_hh
    if (m) {  // frozen rows: δh_{t−1} = δh_t
      for (int b = b0; b < b1; ++b)
        if (!m[b]) {
          const int64_t l = (int64_t)(b - b0) * H;
          std::memcpy(dprev.p + l, dh.p + l, sizeof(T) * H);
        }
    }
  }
  std::memcpy(dh_io + (int64_t)b0 * H, dprev.p, sizeof(T) * MH);
  return 0;
}

// ---- IndRNN (indrnn.py: indrnn_step / indrnn_step_backward) ---------------------------------
//   a = gi + b_ih + u h + b_hh   h' = relu(a)     u: the recurrent vector (H); no GEMM, nothing
//   saved. Backward: δa = h' > 0 ? dh : 0   ∂L/∂gi = δa   δh_{t−1} = δa u

template <class T>
RNNLAB_NOINLINE int indrnn_forward(int steps, int B, int H, const T* gi, const uint8_t* mask, const T* h0,
                   const T* u, const T* b_ih, const T* b_hh, T* hseq, int b0, int b1) {
  const int64_t BH = (int64_t)B * H;
  for (int t = 0; t < steps; ++t) {
    const T* h = t ? hseq + (t - 1) * BH : h0;
    T* h_new = hseq + t * BH;
    const T* x = gi + t * BH;
    for (int b = b0; b < b1; ++b) {
      const int64_t r = (int64_t)b * H;
      const T* xb = x + r;
      const T* hb = h + r;
      T* hn = h_new + r;
#pragma omp simd
      for (int j = 0; j < H; ++j) hn[j] = relu_(xb[j] + b_ih[j] + u[j] * hb[j] + b_hh[j]);
    }
    if (mask)
      freeze_rows(mask + (int64_t)t * B + b0, b1 - b0, H, h + (int64_t)b0 * H,
                  h_new + (int64_t)b0 * H);
  }
  return 0;
}

// dh_io: in, δ of the final state; out, δ of the initial state (each row its own: no scratch)
template <class T>
RNNLAB_NOINLINE int indrnn_backward(int steps, int B, int H, const T* dy, const uint8_t* mask, const T* hseq,
                    const T* u, T* dgi, T* norms, T* dh_io, int b0, int b1) {
  const int64_t BH = (int64_t)B * H;
  for (int t = steps - 1; t >= 0; --t) {
    const uint8_t* m = mask ? mask + (int64_t)t * B : nullptr;
    const T* dyt = dy + t * BH;
    const T* hn = hseq + t * BH;
    T* da = dgi + t * BH;
    for (int b = b0; b < b1; ++b) {
      const int64_t r = (int64_t)b * H;
      const bool valid = !m || m[b];
      T* dhb = dh_io + r;  // δh_t in, δh_{t−1} out
      T sq = 0;
      for (int j = 0; j < H; ++j) {
        dhb[j] = dhb[j] + (valid ? dyt[r + j] : T(0));
        sq += dhb[j] * dhb[j];
      }
      if (norms) norms[(int64_t)t * B + b] = valid ? __builtin_sqrt(sq) : T(0);
      T* dab = da + r;
      if (!valid) {  // frozen: δh_{t−1} = δh_t, as it stands
        std::memset(dab, 0, sizeof(T) * H);
        continue;
      }
      const T* hb = hn + r;
#pragma omp simd
      for (int j = 0; j < H; ++j) {
        const T d = hb[j] > 0 ? dhb[j] : T(0);
        dab[j] = d;
        dhb[j] = d * u[j];
      }
    }
  }
  return 0;
}

// the forward loops stream rows of W_hhᵀ (H, G): transposed once per call, shared by the threads
template <class T, class F> int with_transposed(const T* w_hh, int G, int H, F fn) {
  Scratch<T> wt((size_t)G * H);
  if (!wt.p) return 1;
  transpose(w_hh, G, H, wt.p);
  return fn((const T*)wt.p);
}

// C (M×N) = Aᵀ · B (or C +=) for A (K×M, rows lda apart) and B (K×N, rows ldb apart): Σ_k
// A[k]ᵀ B[k] over the K = T·B rows of a layer, the weight gradients Σ_{t,b} δᵀ u. In chunks of
// 128 rows (64, 256 and 512 measured slower): a chunk of A, its rows 2 KB apart at M = 512,
// stays in L2 and in the TLB's reach while C's tiles sweep it (unchunked, K = 6,400 ran at half
// of torch's GEMM). The threads take C's rows (multiples of 8), none shared.
template <class T>
void outer(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, bool accumulate,
           int threads) {
  constexpr int KC = 128;
  parallel_rows<RNNLAB_MR>(M, threads, [&](int m0, int m1) {
    int k0 = 0;
    do {  // at least once: K = 0 still writes C (zeros, or C as it was)
      const int kc = K - k0 < KC ? K - k0 : KC;
      gemm_strided<T>(m1 - m0, N, kc, A + (int64_t)k0 * lda + m0, 1, lda, B + (int64_t)k0 * ldb,
                      ldb, C + (int64_t)m0 * N, N, accumulate || k0 > 0);
      k0 += KC;
    } while (k0 < K);
    return 0;
  });
}

// C (M×N) = A · B for row-major A (M×K) and B (K×N), the threads taking A's rows: the input
// projection W_ih x of all steps (B = W_ihᵀ) and its input gradient δ W_ih (B = W_ih). Bt: Bᵀ
// (N×K, row-major), read instead of B where N is narrow. Three shapes:
//   K < 16 (an input of 2 features): C's rows one by one, vectorised along N (the tiles would
//     spend their time storing after 2 FMAs);
//   N < 16 (its gradient): each C[m, n] a dot product of A's row m and Bt's row n, along K;
//   else the register-tiled GEMM.
template <class T>
void matmul(int M, int N, int K, const T* A, int lda, const T* B, int ldb, const T* Bt, T* C,
            int threads) {
  parallel_rows(M, threads, [&](int m0, int m1) {
    if (K < 16) {
      for (int m = m0; m < m1; ++m) {
        const T* a = A + (int64_t)m * lda;
        T* c = C + (int64_t)m * N;
#pragma omp simd
        for (int j = 0; j < N; ++j) c[j] = a[0] * B[j];
        for (int k = 1; k < K; ++k) {
          const T ak = a[k];
          const T* b = B + (int64_t)k * ldb;
#pragma omp simd
          for (int j = 0; j < N; ++j) c[j] += ak * b[j];
        }
      }
    } else if (N < 16) {
      for (int m = m0; m < m1; ++m) {
        const T* a = A + (int64_t)m * lda;
        for (int n = 0; n < N; ++n) {
          const T* b = Bt + (int64_t)n * K;
          T s = 0;
#pragma omp simd reduction(+ : s)
          for (int k = 0; k < K; ++k) s += a[k] * b[k];
          C[(int64_t)m * N + n] = s;
        }
      }
    } else {
      gemm<T>(m1 - m0, N, K, A + (int64_t)m0 * lda, lda, B, ldb, C + (int64_t)m0 * N, N, false);
    }
    return 0;
  });
}

}  // namespace

// ---- the C ABI native.py calls: typed, checked arrays -------------------------------------------
// Every array crosses as a descriptor: its data, element type, shape and strides (in elements).
// Each entry checks every descriptor against the shapes and the layout its loops assume (the
// sizes T, B, H, ... are read from the first arguments and every other one is held to them)
// and on a mismatch returns RNNLAB_BAD_ARGUMENT with the argument's index and what differs in
// *err, before it reads or writes anything; native.py names the argument and raises. A slip in
// the argument order or a stale library thus raises instead of corrupting memory.

extern "C" {
struct rnnlab_array {
  void* data;
  int32_t dtype;  // RNNLAB_ABSENT (an optional argument left out), _F32, _F64, _BOOL
  int32_t ndim;   // at most 4
  int64_t shape[4];
  int64_t strides[4];  // in elements
};
struct rnnlab_error {
  int32_t arg;   // the argument's index
  int32_t what;  // RNNLAB_WHAT_*
  int32_t dim;   // the dimension the shape or stride mismatch is in, else -1
  int64_t got, expected;
};
}

enum { RNNLAB_OK = 0, RNNLAB_NO_MEMORY = 1, RNNLAB_BAD_ARGUMENT = 2 };
enum { RNNLAB_ABSENT = 0, RNNLAB_F32 = 1, RNNLAB_F64 = 2, RNNLAB_BOOL = 3 };
enum {  // what differs (native.py's _WHAT words them)
  RNNLAB_WHAT_COUNT = 1, RNNLAB_WHAT_MISSING, RNNLAB_WHAT_DTYPE, RNNLAB_WHAT_NDIM,
  RNNLAB_WHAT_SHAPE, RNNLAB_WHAT_STRIDE, RNNLAB_WHAT_ROW_STRIDE, RNNLAB_WHAT_TOO_LARGE
};
#define RNNLAB_ABI 3  // native.py checks it: a library of another boundary is not called

namespace {

constexpr int64_t kAny = -1;  // a size not fixed by the arguments before

struct Args {
  const rnnlab_array* a;
  int n;
  rnnlab_error* err;
  int32_t f = 0;  // the call's floating type: its first argument's

  bool fail(int i, int what, int dim, int64_t got, int64_t expected) {
    *err = rnnlab_error{i, what, dim, got, expected};
    return false;
  }
  bool count(int expected) { return n == expected || fail(n, RNNLAB_WHAT_COUNT, -1, n, expected); }
  bool floating(int i) {
    f = a[i].dtype;
    return f == RNNLAB_F32 || f == RNNLAB_F64 || fail(i, RNNLAB_WHAT_DTYPE, -1, f, RNNLAB_F32);
  }
  // argument i: present (or absent, where optional), of `dtype`, with `shape` (kAny: any size,
  // at most INT_MAX), row-major contiguous; with row_free its rows may lie further apart (a
  // column slice: stride[0] >= the row's length). A dimension of size 1 may have any stride.
  bool check(int i, int32_t dtype, std::initializer_list<int64_t> shape, bool optional = false,
             bool row_free = false) {
    const rnnlab_array& x = a[i];
    if (x.dtype == RNNLAB_ABSENT)
      return optional || fail(i, RNNLAB_WHAT_MISSING, -1, 0, dtype);
    if (x.dtype != dtype) return fail(i, RNNLAB_WHAT_DTYPE, -1, x.dtype, dtype);
    if (x.ndim != (int)shape.size())
      return fail(i, RNNLAB_WHAT_NDIM, -1, x.ndim, (int64_t)shape.size());
    int d = 0;
    for (int64_t want : shape) {
      if (want != kAny && x.shape[d] != want)
        return fail(i, RNNLAB_WHAT_SHAPE, d, x.shape[d], want);
      if (x.shape[d] > INT32_MAX) return fail(i, RNNLAB_WHAT_TOO_LARGE, d, x.shape[d], INT32_MAX);
      ++d;
    }
    int64_t want = 1;
    for (d = x.ndim - 1; d >= 0; --d) {
      if (x.shape[d] > 1) {
        if (d == 0 && row_free) {
          if (x.strides[0] < want || x.strides[0] > INT32_MAX)
            return fail(i, RNNLAB_WHAT_ROW_STRIDE, 0, x.strides[0], want);
        } else if (x.strides[d] != want) {
          return fail(i, RNNLAB_WHAT_STRIDE, d, x.strides[d], want);
        }
      }
      want *= x.shape[d];
    }
    return true;
  }
  template <class T> T* p(int i) const { return (T*)a[i].data; }
  const uint8_t* mask(int i) const { return a[i].dtype == RNNLAB_ABSENT ? nullptr : p<uint8_t>(i); }
  int64_t size(int i, int d) const { return a[i].shape[d]; }
  int row_stride(int i) const {  // a matrix's leading dimension (any, for a single row)
    return a[i].shape[0] > 1 ? (int)a[i].strides[0] : (int)a[i].shape[1];
  }
};

inline int status(int rc) { return rc ? RNNLAB_NO_MEMORY : RNNLAB_OK; }

#define RNNLAB_CHECK(cond) \
  if (!(cond)) return RNNLAB_BAD_ARGUMENT

// lstm_forward: gi (T, B, 4H), mask? (T, B), h0 (B, H), w_hh (4H, H), b_ih (4H), b_hh (4H),
//   hseq (T, B, H), cbuf (T+1, B, H), i, f, g, o, tc (T, B, H)
template <class T> int lstm_forward_call(const Args& c, int s, int B, int h, int threads) {
  const T* w = c.p<T>(3);
  return status(with_transposed<T>(w, 4 * h, h, [&](const T* wt) {
    return parallel_rows(B, threads, [&](int b0, int b1) {
      return lstm_forward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), wt, c.p<T>(4), c.p<T>(5),
                             c.p<T>(6), c.p<T>(7), c.p<T>(8), c.p<T>(9), c.p<T>(10), c.p<T>(11),
                             c.p<T>(12), b0, b1);
    });
  }));
}

// lstm_backward: dy (T, B, H), mask?, cbuf (T+1, B, H), i, f, g, o, tc (T, B, H), w_hh (4H, H),
//   dgi (T, B, 4H), norms? (T, B), dh (B, H), dc (B, H)
template <class T> int lstm_backward_call(const Args& c, int s, int B, int h, int threads) {
  return status(parallel_rows(B, threads, [&](int b0, int b1) {
    return lstm_backward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), c.p<T>(3), c.p<T>(4),
                            c.p<T>(5), c.p<T>(6), c.p<T>(7), c.p<T>(8), c.p<T>(9),
                            c.a[10].dtype ? c.p<T>(10) : nullptr, c.p<T>(11), c.p<T>(12), b0, b1);
  }));
}

// gru_forward: gi (T, B, 3H), mask?, h0 (B, H), w_hh (3H, H), b_ih (3H), b_hh (3H),
//   hseq (T, B, H), g (T, B, 2H), n (T, B, H), ghn (T, B, H)
template <class T> int gru_forward_call(const Args& c, int s, int B, int h, int threads) {
  const T* w = c.p<T>(3);
  return status(with_transposed<T>(w, 3 * h, h, [&](const T* wt) {
    return parallel_rows(B, threads, [&](int b0, int b1) {
      return gru_forward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), wt, c.p<T>(4), c.p<T>(5),
                            c.p<T>(6), c.p<T>(7), c.p<T>(8), c.p<T>(9), b0, b1);
    });
  }));
}

// gru_backward: dy (T, B, H), mask?, h0 (B, H), hseq (T, B, H), g (T, B, 2H), n, ghn (T, B, H),
//   w_hh (3H, H), dgi (T, B, 3H), dghn (T, B, H), norms? (T, B), dh (B, H)
template <class T> int gru_backward_call(const Args& c, int s, int B, int h, int threads) {
  return status(parallel_rows(B, threads, [&](int b0, int b1) {
    return gru_backward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), c.p<T>(3), c.p<T>(4),
                           c.p<T>(5), c.p<T>(6), c.p<T>(7), c.p<T>(8), c.p<T>(9),
                           c.a[10].dtype ? c.p<T>(10) : nullptr, c.p<T>(11), b0, b1);
  }));
}

// rnn_forward: gi (T, B, H), mask?, h0 (B, H), w_hh (H, H), b_ih (H), b_hh (H), hseq (T, B, H)
template <class T>
int rnn_forward_call(const Args& c, int s, int B, int h, bool relu, int threads) {
  return status(with_transposed<T>(c.p<T>(3), h, h, [&](const T* wt) {
    return parallel_rows(B, threads, [&](int b0, int b1) {
      return rnn_forward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), wt, c.p<T>(4), c.p<T>(5),
                            c.p<T>(6), relu, b0, b1);
    });
  }));
}

// rnn_backward: dy (T, B, H), mask?, hseq (T, B, H), w_hh (H, H), dgi (T, B, H), norms? (T, B),
//   dh (B, H)
template <class T>
int rnn_backward_call(const Args& c, int s, int B, int h, bool relu, int threads) {
  return status(parallel_rows(B, threads, [&](int b0, int b1) {
    return rnn_backward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), c.p<T>(3), c.p<T>(4),
                           c.a[5].dtype ? c.p<T>(5) : nullptr, c.p<T>(6), relu, b0, b1);
  }));
}

// indrnn_forward: gi (T, B, H), mask?, h0 (B, H), u (H), b_ih (H), b_hh (H), hseq (T, B, H)
template <class T> int indrnn_forward_call(const Args& c, int s, int B, int h, int threads) {
  return status(parallel_rows(B, threads, [&](int b0, int b1) {
    return indrnn_forward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), c.p<T>(3), c.p<T>(4),
                             c.p<T>(5), c.p<T>(6), b0, b1);
  }));
}

// indrnn_backward: dy (T, B, H), mask?, hseq (T, B, H), u (H), dgi (T, B, H), norms? (T, B),
//   dh (B, H)
template <class T> int indrnn_backward_call(const Args& c, int s, int B, int h, int threads) {
  return status(parallel_rows(B, threads, [&](int b0, int b1) {
    return indrnn_backward<T>(s, B, h, c.p<T>(0), c.mask(1), c.p<T>(2), c.p<T>(3), c.p<T>(4),
                              c.a[5].dtype ? c.p<T>(5) : nullptr, c.p<T>(6), b0, b1);
  }));
}

}  // namespace

extern "C" int rnnlab_abi_version() { return RNNLAB_ABI; }

// what this build is: the instruction set its tile was chosen for, the tile, the vector math
extern "C" const char* rnnlab_target() {
  return "isa=" RNNLAB_ISA " vector=" RNNLAB_STR(RNNLAB_VECTOR) " tile=" RNNLAB_STR(RNNLAB_MR)
         "x2 vector_exp=" RNNLAB_STR(RNNLAB_VECTOR_EXP) " vector_tanh=" RNNLAB_STR(
             RNNLAB_VECTOR_TANH);
}

extern "C" int rnnlab_lstm_forward(const rnnlab_array* a, int n, int, int threads,
                                   rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(13) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}) &&
               c.check(2, c.f, {c.size(0, 1), kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(2, 1);
  RNNLAB_CHECK(c.check(0, c.f, {T, B, 4 * H}) && c.check(1, RNNLAB_BOOL, {T, B}, true) &&
               c.check(3, c.f, {4 * H, H}) && c.check(4, c.f, {4 * H}) &&
               c.check(5, c.f, {4 * H}) && c.check(6, c.f, {T, B, H}) &&
               c.check(7, c.f, {T + 1, B, H}));
  for (int i = 8; i < 13; ++i) RNNLAB_CHECK(c.check(i, c.f, {T, B, H}));
  return c.f == RNNLAB_F32 ? lstm_forward_call<float>(c, T, B, H, threads)
                           : lstm_forward_call<double>(c, T, B, H, threads);
}

extern "C" int rnnlab_lstm_backward(const rnnlab_array* a, int n, int, int threads,
                                    rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(13) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(0, 2);
  RNNLAB_CHECK(c.check(1, RNNLAB_BOOL, {T, B}, true) && c.check(2, c.f, {T + 1, B, H}));
  for (int i = 3; i < 8; ++i) RNNLAB_CHECK(c.check(i, c.f, {T, B, H}));
  RNNLAB_CHECK(c.check(8, c.f, {4 * H, H}) && c.check(9, c.f, {T, B, 4 * H}) &&
               c.check(10, c.f, {T, B}, true) && c.check(11, c.f, {B, H}) &&
               c.check(12, c.f, {B, H}));
  return c.f == RNNLAB_F32 ? lstm_backward_call<float>(c, T, B, H, threads)
                           : lstm_backward_call<double>(c, T, B, H, threads);
}

extern "C" int rnnlab_gru_forward(const rnnlab_array* a, int n, int, int threads,
                                  rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(10) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}) &&
               c.check(2, c.f, {c.size(0, 1), kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(2, 1);
  RNNLAB_CHECK(c.check(0, c.f, {T, B, 3 * H}) && c.check(1, RNNLAB_BOOL, {T, B}, true) &&
               c.check(3, c.f, {3 * H, H}) && c.check(4, c.f, {3 * H}) &&
               c.check(5, c.f, {3 * H}) && c.check(6, c.f, {T, B, H}) &&
               c.check(7, c.f, {T, B, 2 * H}) && c.check(8, c.f, {T, B, H}) &&
               c.check(9, c.f, {T, B, H}));
  return c.f == RNNLAB_F32 ? gru_forward_call<float>(c, T, B, H, threads)
                           : gru_forward_call<double>(c, T, B, H, threads);
}

extern "C" int rnnlab_gru_backward(const rnnlab_array* a, int n, int, int threads,
                                   rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(12) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(0, 2);
  RNNLAB_CHECK(c.check(1, RNNLAB_BOOL, {T, B}, true) && c.check(2, c.f, {B, H}) &&
               c.check(3, c.f, {T, B, H}) && c.check(4, c.f, {T, B, 2 * H}) &&
               c.check(5, c.f, {T, B, H}) && c.check(6, c.f, {T, B, H}) &&
               c.check(7, c.f, {3 * H, H}) && c.check(8, c.f, {T, B, 3 * H}) &&
               c.check(9, c.f, {T, B, H}) && c.check(10, c.f, {T, B}, true) &&
               c.check(11, c.f, {B, H}));
  return c.f == RNNLAB_F32 ? gru_backward_call<float>(c, T, B, H, threads)
                           : gru_backward_call<double>(c, T, B, H, threads);
}

// The Elman RNN and IndRNN share a form: 7 arrays each way, the recurrent weight (H, H) or (H).
// rnn_*: flags bit 0 = ReLU (else tanh).
extern "C" int rnnlab_rnn_forward(const rnnlab_array* a, int n, int flags, int threads,
                                  rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(7) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}) &&
               c.check(2, c.f, {c.size(0, 1), kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(2, 1);
  RNNLAB_CHECK(c.check(0, c.f, {T, B, H}) && c.check(1, RNNLAB_BOOL, {T, B}, true) &&
               c.check(3, c.f, {H, H}) && c.check(4, c.f, {H}) && c.check(5, c.f, {H}) &&
               c.check(6, c.f, {T, B, H}));
  const bool relu = flags & 1;
  return c.f == RNNLAB_F32 ? rnn_forward_call<float>(c, T, B, H, relu, threads)
                           : rnn_forward_call<double>(c, T, B, H, relu, threads);
}

extern "C" int rnnlab_rnn_backward(const rnnlab_array* a, int n, int flags, int threads,
                                   rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(7) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(0, 2);
  RNNLAB_CHECK(c.check(1, RNNLAB_BOOL, {T, B}, true) && c.check(2, c.f, {T, B, H}) &&
               c.check(3, c.f, {H, H}) && c.check(4, c.f, {T, B, H}) &&
               c.check(5, c.f, {T, B}, true) && c.check(6, c.f, {B, H}));
  const bool relu = flags & 1;
  return c.f == RNNLAB_F32 ? rnn_backward_call<float>(c, T, B, H, relu, threads)
                           : rnn_backward_call<double>(c, T, B, H, relu, threads);
}

extern "C" int rnnlab_indrnn_forward(const rnnlab_array* a, int n, int, int threads,
                                     rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(7) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}) &&
               c.check(2, c.f, {c.size(0, 1), kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(2, 1);
  RNNLAB_CHECK(c.check(0, c.f, {T, B, H}) && c.check(1, RNNLAB_BOOL, {T, B}, true) &&
               c.check(3, c.f, {H}) && c.check(4, c.f, {H}) && c.check(5, c.f, {H}) &&
               c.check(6, c.f, {T, B, H}));
  return c.f == RNNLAB_F32 ? indrnn_forward_call<float>(c, T, B, H, threads)
                           : indrnn_forward_call<double>(c, T, B, H, threads);
}

extern "C" int rnnlab_indrnn_backward(const rnnlab_array* a, int n, int, int threads,
                                      rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(7) && c.floating(0) && c.check(0, c.f, {kAny, kAny, kAny}));
  const int64_t T = c.size(0, 0), B = c.size(0, 1), H = c.size(0, 2);
  RNNLAB_CHECK(c.check(1, RNNLAB_BOOL, {T, B}, true) && c.check(2, c.f, {T, B, H}) &&
               c.check(3, c.f, {H}) && c.check(4, c.f, {T, B, H}) &&
               c.check(5, c.f, {T, B}, true) && c.check(6, c.f, {B, H}));
  return c.f == RNNLAB_F32 ? indrnn_backward_call<float>(c, T, B, H, threads)
                           : indrnn_backward_call<double>(c, T, B, H, threads);
}

// outer: d (K, M), u (K, N), out (M, N): out = Σ_k d[k]ᵀ u[k], or out += with flags = 1. d's
// and u's rows may lie further apart than their length (column slices).
extern "C" int rnnlab_outer(const rnnlab_array* a, int n, int flags, int threads,
                            rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(3) && c.floating(0) && c.check(0, c.f, {kAny, kAny}, false, true));
  const int64_t K = c.size(0, 0), M = c.size(0, 1);
  RNNLAB_CHECK(c.check(1, c.f, {K, kAny}, false, true));
  const int64_t N = c.size(1, 1);
  RNNLAB_CHECK(c.check(2, c.f, {M, N}));
  if (c.f == RNNLAB_F32)
    outer<float>(M, N, K, c.p<float>(0), c.row_stride(0), c.p<float>(1), c.row_stride(1),
                 c.p<float>(2), flags & 1, threads);
  else
    outer<double>(M, N, K, c.p<double>(0), c.row_stride(0), c.p<double>(1), c.row_stride(1),
                  c.p<double>(2), flags & 1, threads);
  return RNNLAB_OK;
}

// matmul: a (M, K), b (K, N), bt? (N, K, given where N < 16 <= K), out (M, N): out = a · b.
// a's and b's rows may lie further apart than their length.
extern "C" int rnnlab_matmul(const rnnlab_array* a, int n, int, int threads, rnnlab_error* err) {
  Args c{a, n, err};
  RNNLAB_CHECK(c.count(4) && c.floating(0) && c.check(0, c.f, {kAny, kAny}, false, true));
  const int64_t M = c.size(0, 0), K = c.size(0, 1);
  RNNLAB_CHECK(c.check(1, c.f, {K, kAny}, false, true));
  const int64_t N = c.size(1, 1);
  RNNLAB_CHECK(c.check(2, c.f, {N, K}, !(N < 16 && K >= 16)) && c.check(3, c.f, {M, N}));
  if (c.f == RNNLAB_F32)
    matmul<float>(M, N, K, c.p<float>(0), c.row_stride(0), c.p<float>(1), c.row_stride(1),
                  c.a[2].dtype ? c.p<float>(2) : nullptr, c.p<float>(3), threads);
  else
    matmul<double>(M, N, K, c.p<double>(0), c.row_stride(0), c.p<double>(1), c.row_stride(1),
                   c.a[2].dtype ? c.p<double>(2) : nullptr, c.p<double>(3), threads);
  return RNNLAB_OK;
}
