"""CUDA source of the GPU codec kernels (compiled once per process by CuPy's RawModule).

Every kernel is batched: ``blockIdx.y`` picks a job (a table, or an entropy-coded plane) whose
parameters come from small device arrays, so one launch covers every table of a batch.
Reconstructions use ``__dmul_rn`` / ``__dadd_rn`` (no FMA contraction), so they match the CPU
quantizer bit for bit; the rANS kernels follow :mod:`dlrmcomp.codecs.entropy`'s layout exactly.
"""
SOURCE = r"""
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// ---- ordered integer images of floats, so atomicMin/Max work on them ------------------------
__device__ __forceinline__ u32 ord_enc(float f) {
    u32 u = __float_as_uint(f); return (u & 0x80000000u) ? ~u : (u | 0x80000000u); }
__device__ __forceinline__ u64 ord_enc(double f) {
    u64 u = (u64)__double_as_longlong(f); return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull); }
__device__ __forceinline__ bool is_fin(float v) { return fabsf(v) <= 3.4028234663852886e38f; }
__device__ __forceinline__ bool is_fin(double v) { return fabs(v) <= 1.7976931348623157e308; }
template <typename T> __device__ __forceinline__ T pos_inf();
template <> __device__ __forceinline__ float pos_inf<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double pos_inf<double>() { return __longlong_as_double(0x7ff0000000000000LL); }
template <typename T> struct OrdT;
template <> struct OrdT<float> { typedef u32 U; };
template <> struct OrdT<double> { typedef u64 U; };

// ---- per-table finite min / max --------------------------------------------------------------
// ptrs[t] -> T data, sizes[t] elements; out[2t] = ord(min), out[2t+1] = ord(max) (pre-set to +-inf)
template <typename T>
__global__ void range_kernel(const u64* ptrs, const i64* sizes, typename OrdT<T>::U* out) {
    const int t = blockIdx.y;
    const T* x = (const T*)ptrs[t];
    const i64 n = sizes[t];
    T lo = pos_inf<T>(), hi = -pos_inf<T>();
    const i64 stride = (i64)gridDim.x * blockDim.x;
    i64 i0 = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (sizeof(T) == 4 && ((u64)x & 15) == 0) {
        const float4* v = (const float4*)x;
#pragma unroll 4
        for (i64 i = i0; i < n / 4; i += stride) {
            float4 a = v[i];
            if (is_fin(a.x)) { lo = fmin(lo, (T)a.x); hi = fmax(hi, (T)a.x); }
            if (is_fin(a.y)) { lo = fmin(lo, (T)a.y); hi = fmax(hi, (T)a.y); }
            if (is_fin(a.z)) { lo = fmin(lo, (T)a.z); hi = fmax(hi, (T)a.z); }
            if (is_fin(a.w)) { lo = fmin(lo, (T)a.w); hi = fmax(hi, (T)a.w); }
        }
        i0 += (n / 4) * 4;
    }
    for (i64 i = i0; i < n; i += stride) {
        T a = x[i];
        if (is_fin(a)) { lo = fmin(lo, a); hi = fmax(hi, a); }
    }
    for (int o = 16; o > 0; o >>= 1) {
        lo = fmin(lo, __shfl_down_sync(0xffffffffu, lo, o));
        hi = fmax(hi, __shfl_down_sync(0xffffffffu, hi, o));
    }
    __shared__ T slo[32], shi[32];
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    if (l == 0) { slo[w] = lo; shi[w] = hi; }
    __syncthreads();
    if (w == 0) {
        const int nw = blockDim.x >> 5;
        lo = l < nw ? slo[l] : pos_inf<T>();
        hi = l < nw ? shi[l] : -pos_inf<T>();
        for (int o = 16; o > 0; o >>= 1) {
            lo = fmin(lo, __shfl_down_sync(0xffffffffu, lo, o));
            hi = fmax(hi, __shfl_down_sync(0xffffffffu, hi, o));
        }
        if (l == 0 && lo <= hi) {
            atomicMin(&out[2 * t], ord_enc(lo));
            atomicMax(&out[2 * t + 1], ord_enc(hi));
        }
    }
}

// ---- error-bounded quantization with escapes -------------------------------------------------
// params[4t..4t+3] = base, step, eb_abs, qmax; outs[t] -> C codes; esc_count[t] += escapes
template <typename T, typename C>
__device__ __forceinline__ C quant1(T v, double base, double step, double inv, double eb, double qmax, C esc, int& n_esc) {
    const double xv = (double)v;
    const double q = floor(__dadd_rn(__dmul_rn(__dadd_rn(xv, -base), inv), 0.5));
    const T r = (T)__dadd_rn(base, __dmul_rn(q, step));
    const bool ok = fabs(xv - (double)r) <= eb && fabs(q) <= qmax;
    n_esc += !ok;
    return ok ? (C)(i64)q : esc;
}

template <typename T, typename C>
__global__ void quantize_kernel(const u64* ptrs, const i64* sizes, const double* params, const u64* outs,
                                unsigned long long* esc_count, int esc_code) {
    const int t = blockIdx.y;
    const T* x = (const T*)ptrs[t];
    C* out = (C*)outs[t];
    const i64 n = sizes[t];
    const double base = params[4 * t], step = params[4 * t + 1], eb = params[4 * t + 2], qmax = params[4 * t + 3];
    const double inv = step > 0.0 ? 1.0 / step : 0.0;
    const C esc = (C)esc_code;
    int n_esc = 0;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    i64 i0 = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (sizeof(T) == 4 && ((u64)x & 15) == 0 && ((u64)out & (4 * sizeof(C) - 1)) == 0) {
        const float4* v = (const float4*)x;
        for (i64 i = i0; i < n / 4; i += stride) {
            float4 a = v[i];
            C c0 = quant1<T, C>((T)a.x, base, step, inv, eb, qmax, esc, n_esc);
            C c1 = quant1<T, C>((T)a.y, base, step, inv, eb, qmax, esc, n_esc);
            C c2 = quant1<T, C>((T)a.z, base, step, inv, eb, qmax, esc, n_esc);
            C c3 = quant1<T, C>((T)a.w, base, step, inv, eb, qmax, esc, n_esc);
            if (sizeof(C) == 1) {
                uchar4 o = make_uchar4((u8)c0, (u8)c1, (u8)c2, (u8)c3);
                ((uchar4*)out)[i] = o;
            } else {
                ushort4 o = make_ushort4((u16)c0, (u16)c1, (u16)c2, (u16)c3);
                ((ushort4*)out)[i] = o;
            }
        }
        i0 += (n / 4) * 4;
    }
    for (i64 i = i0; i < n; i += stride) out[i] = quant1<T, C>(x[i], base, step, inv, eb, qmax, esc, n_esc);
    n_esc = __reduce_add_sync(0xffffffffu, (unsigned)n_esc);
    if ((threadIdx.x & 31) == 0 && n_esc) atomicAdd(&esc_count[t], (unsigned long long)n_esc);
}

// ---- grid parameters on the device (no host sync between range and quantize) -----------------
// Grid.for_range + ErrorBound.resolve of the CPU, in float64 with no contraction, bit for bit.
// rng: ord(min), ord(max) per table; params[4t..4t+3] = base, step, eb_abs, qmax (as quantize reads them)
// ord images -> (lo, hi) as float64 (an empty range is (0, 0))
template <typename T>
__device__ __forceinline__ void range_of(const typename OrdT<T>::U* rng, int t, double& lo, double& hi) {
    typedef typename OrdT<T>::U U;
    const U top = (U)1 << (8 * sizeof(U) - 1);
    U a = rng[2 * t], b = rng[2 * t + 1];
    a = (a & top) ? (a & ~top) : ~a;
    b = (b & top) ? (b & ~top) : ~b;
    T lo_t, hi_t;
    if (sizeof(T) == 4) { lo_t = (T)__uint_as_float((u32)a); hi_t = (T)__uint_as_float((u32)b); }
    else { lo_t = (T)__longlong_as_double((i64)a); hi_t = (T)__longlong_as_double((i64)b); }
    lo = (double)lo_t; hi = (double)hi_t;
    if (!(lo <= hi)) { lo = 0.0; hi = 0.0; }
}

// out[0..3] = base, step, eb_abs, qmax of the grid of [lo, hi] at bound eb (relative unless is_abs)
__device__ __forceinline__ void grid_of(double lo, double hi, double eb, int is_abs, double qmax, double* out) {
    const double eb_abs = is_abs ? eb : __dmul_rn(eb, __dadd_rn(hi, -lo));
    const double step = __dmul_rn(2.0, eb_abs);
    const double mid = __dadd_rn(__dmul_rn(0.5, lo), __dmul_rn(0.5, hi));
    double base, st;
    if (!(is_fin(step) && step > 0.0 && is_fin(__ddiv_rn(1.0, step)))) { base = mid; st = 0.0; }
    else {
        const double k = floor(__dadd_rn(__ddiv_rn(mid, step), 0.5));
        base = __dmul_rn(k, step);
        if (!is_fin(base)) base = mid;
        st = step;
    }
    out[0] = base; out[1] = st; out[2] = eb_abs; out[3] = qmax;
}

template <typename T>
__global__ void grid_params(const typename OrdT<T>::U* rng, int T_, double eb, int is_abs, double qmax, double* params) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T_) return;
    double lo, hi;
    range_of<T>(rng, t, lo, hi);
    grid_of(lo, hi, eb, is_abs, qmax, params + 4 * t);
}

// quantize (int8 codes) with the code histogram fused: per-warp shared 256-bin histograms, equal keys of a
// warp merged with __match_any_sync (hot Zipf bins), flushed once per block into counts + 256 t
template <typename T>
__global__ void quantize_hist_kernel(const u64* ptrs, const i64* sizes, const double* params, const u64* outs,
                                     unsigned long long* esc_count, int esc_code, unsigned long long* counts) {
    __shared__ u32 hs[8 * 256];
    const int t = blockIdx.y;
    for (int b = threadIdx.x; b < 8 * 256; b += blockDim.x) hs[b] = 0;
    __syncthreads();
    u32* mine = hs + (threadIdx.x >> 5) * 256;
    const int lane = threadIdx.x & 31;
    const T* x = (const T*)ptrs[t];
    signed char* out = (signed char*)outs[t];
    const i64 n = sizes[t];
    const double base = params[4 * t], step = params[4 * t + 1], eb = params[4 * t + 2], qmax = params[4 * t + 3];
    const double inv = step > 0.0 ? 1.0 / step : 0.0;
    const signed char esc = (signed char)esc_code;
    int n_esc = 0;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    i64 i0 = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (sizeof(T) == 4 && ((u64)x & 15) == 0 && ((u64)out & 3) == 0) {
        const float4* v = (const float4*)x;
        for (i64 i = i0; i < n / 4; i += stride) {
            float4 a = v[i];
            u32 k[4];
            k[0] = (u8)quant1<T, signed char>((T)a.x, base, step, inv, eb, qmax, esc, n_esc);
            k[1] = (u8)quant1<T, signed char>((T)a.y, base, step, inv, eb, qmax, esc, n_esc);
            k[2] = (u8)quant1<T, signed char>((T)a.z, base, step, inv, eb, qmax, esc, n_esc);
            k[3] = (u8)quant1<T, signed char>((T)a.w, base, step, inv, eb, qmax, esc, n_esc);
            ((u32*)out)[i] = k[0] | (k[1] << 8) | (k[2] << 16) | (k[3] << 24);
            const unsigned am = __activemask();
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const unsigned m = __match_any_sync(am, k[q]);
                if (lane == __ffs(m) - 1) atomicAdd(&mine[k[q]], (u32)__popc(m));
            }
        }
        i0 += (n / 4) * 4;
    }
    for (i64 i = i0; i < n; i += stride) {
        const signed char c = quant1<T, signed char>(x[i], base, step, inv, eb, qmax, esc, n_esc);
        out[i] = c;
        atomicAdd(&mine[(u8)c], 1u);
    }
    n_esc = __reduce_add_sync(0xffffffffu, (unsigned)n_esc);
    if (lane == 0 && n_esc) atomicAdd(&esc_count[t], (unsigned long long)n_esc);
    __syncthreads();
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
        u32 v = 0;
        for (int q = 0; q < 8; ++q) v += hs[q * 256 + b];
        if (v) atomicAdd(&counts[256 * (i64)t + b], (unsigned long long)v);
    }
}

// ---- dequantization (optionally through a dedup index) --------------------------------------
// codes[t] -> C [U, W]; index[t] -> u8/u16/u32 [R] (iw bytes each; iw = 0: no index, row r is code row r)
// out[t] -> T [R, W]; params[2t] = base, params[2t+1] = step; rows[t] = R; width[t] = W
template <typename T, typename C>
__global__ void dequantize_kernel(const u64* codes, const u64* index, const int* iw, const u64* outs,
                                  const double* params, const i64* rows, const i64* width,
                                  unsigned long long* esc_count, int esc_code, const i64* nuniq, int* bad) {
    const int t = blockIdx.y;
    const C* c = (const C*)codes[t];
    T* out = (T*)outs[t];
    const i64 W = width[t], n = rows[t] * W;
    const double base = params[2 * t], step = params[2 * t + 1];
    const int w = iw[t];
    const u8* idx = (const u8*)index[t];
    int n_esc = 0;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        i64 src = i;
        if (w) {
            const i64 r = i / W;
            const i64 u = w == 1 ? (i64)idx[r] : w == 2 ? (i64)((const u16*)idx)[r] : (i64)((const u32*)idx)[r];
            if (u >= nuniq[t]) { atomicExch(bad, 1); continue; }
            src = u * W + (i - r * W);
        }
        const C code = c[src];
        n_esc += code == (C)esc_code;
        out[i] = (T)__dadd_rn(base, __dmul_rn((double)code, step));
    }
    n_esc = __reduce_add_sync(0xffffffffu, (unsigned)n_esc);
    if ((threadIdx.x & 31) == 0 && n_esc) atomicAdd(&esc_count[t], (unsigned long long)n_esc);
}

// ---- dedup: open-addressing hash of rows; the slot keeps the smallest equal row ------------
// codes[t] -> rows of rb bytes (rb % 4 == 0); slots: int [sum cap], -1 = empty
__device__ __forceinline__ bool rows_equal(const u32* a, const u32* b, int nw) {
    for (int k = 0; k < nw; ++k) if (a[k] != b[k]) return false;
    return true;
}

__global__ void dedup_insert(const u64* codes, const i64* nrows, const int* row_bytes, const i64* slot_off,
                             const i64* caps, int* slots, int* row_slot, const i64* row_off) {
    const int t = blockIdx.y;
    const i64 R = nrows[t];
    const int nw = row_bytes[t] >> 2;
    const u32* base = (const u32*)codes[t];
    int* table = slots + slot_off[t];
    const u64 mask = (u64)caps[t] - 1;
    for (i64 r = (i64)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (i64)gridDim.x * blockDim.x) {
        const u32* row = base + r * nw;
        u64 h = (u64)nw;
        for (int k = 0; k < nw; ++k) { h = (h ^ row[k]) * 0x9E3779B97F4A7C15ull; h ^= h >> 29; }
        u64 s = h & mask;
        while (true) {
            int cur = ((volatile int*)table)[s];
            if (cur < 0) {
                int prev = atomicCAS(&table[s], -1, (int)r);
                if (prev < 0) break;
                cur = prev;
            }
            if (rows_equal(base + (i64)cur * nw, row, nw)) { atomicMin(&table[s], (int)r); break; }
            s = (s + 1) & mask;
        }
        row_slot[row_off[t] + r] = (int)s;
    }
}

// flags[row_off[t] + r] = 1 where row r is the first of its kind
__global__ void dedup_flag(const i64* nrows, const i64* slot_off, const int* slots, const int* row_slot,
                           const i64* row_off, int* flags) {
    const int t = blockIdx.y;
    const int* table = slots + slot_off[t];
    for (i64 r = (i64)blockIdx.x * blockDim.x + threadIdx.x; r < nrows[t]; r += (i64)gridDim.x * blockDim.x)
        flags[row_off[t] + r] = table[row_slot[row_off[t] + r]] == (int)r;
}

// incl = inclusive scan of flags (all tables); writes inverse (u32) and the unique rows
__global__ void dedup_finish(const u64* codes, const i64* nrows, const int* row_bytes, const i64* slot_off,
                             const int* slots, const int* row_slot, const i64* row_off, const int* incl,
                             const u64* uniq, u32* inverse) {
    const int t = blockIdx.y;
    const int* table = slots + slot_off[t];
    const i64 ro = row_off[t];
    const int before = ro ? incl[ro - 1] : 0;
    const int nw = row_bytes[t] >> 2;
    const u32* src = (const u32*)codes[t];
    u32* dst = (u32*)uniq[t];
    for (i64 r = (i64)blockIdx.x * blockDim.x + threadIdx.x; r < nrows[t]; r += (i64)gridDim.x * blockDim.x) {
        const int rep = table[row_slot[ro + r]];
        const int id = incl[ro + rep] - 1 - before;
        inverse[ro + r] = (u32)id;
        if (rep == (int)r) for (int k = 0; k < nw; ++k) dst[(i64)id * nw + k] = src[r * nw + k];
    }
}

// ---- plane jobs: key(i) = (load_w(ptr + i * stride) >> shift) & mask ------------------------
struct Job {
    u64 src;      // keys (encode) / output (decode)
    u64 table;    // encode: u32 [nbins, 5]; decode: u16 lut_sym [2^M] then (aligned) u32 lut_fb at table2
    u64 table2;
    u64 scratch;  // encode: u16 scratch words; decode: u16 data words
    u64 ends;     // u32 lane ends (decode) / lane sizes out index base (encode)
    i64 n;
    i64 chunk;
    i64 lane_base; // first global lane index of this job
    int lanes;
    int width;    // bytes loaded / stored per key
    int stride;   // bytes between keys
    int shift;
    u32 mask;
    int cap;      // encode: u16 words of scratch per lane; decode: scale bits M
    int nbins;
    int pad;
};

__device__ __forceinline__ u32 load_key(const Job& J, i64 i) {
    const u8* p = (const u8*)J.src + i * J.stride;
    u32 v = J.width == 1 ? (u32)*p : J.width == 2 ? (u32)*(const u16*)p : *(const u32*)p;
    return (v >> J.shift) & J.mask;
}

// histogram of every job's keys into counts + hist_off[job] (nbins each). blockIdx.x = window * splits + split:
// a block counts the keys of its split that fall in its window of `win` bins, in shared memory (one copy per
// warp for alphabets <= 256 bins), lanes holding equal keys merged with __match_any_sync (hot Zipf bins)
__global__ void histogram_kernel(const Job* jobs, unsigned long long* counts, const i64* hist_off, int win, int splits) {
    const Job J = jobs[blockIdx.y];
    extern __shared__ u32 sh[];
    const int nwin = (J.nbins + win - 1) / win;
    const int wi = blockIdx.x / splits, sp = blockIdx.x - wi * splits;
    if (wi >= nwin) return;
    const u32 lo = (u32)wi * win, nb = (u32)min(J.nbins - (int)lo, win);
    const int nsub = J.nbins <= 256 ? (int)(blockDim.x >> 5) : 1;
    u32* mine = sh + (nsub > 1 ? (threadIdx.x >> 5) * nb : 0);
    for (u32 b = threadIdx.x; b < nsub * nb; b += blockDim.x) sh[b] = 0;
    __syncthreads();
    for (i64 b0 = (i64)sp * blockDim.x; b0 < J.n; b0 += (i64)splits * blockDim.x) {
        const i64 i = b0 + threadIdx.x;
        u32 k = 0xFFFFFFFFu;
        if (i < J.n) { k = load_key(J, i) - lo; if (k >= nb) k = 0xFFFFFFFFu; }
        const unsigned m = __match_any_sync(0xffffffffu, k);
        if (k != 0xFFFFFFFFu && (int)(threadIdx.x & 31) == __ffs(m) - 1) atomicAdd(&mine[k], (u32)__popc(m));
    }
    __syncthreads();
    unsigned long long* out = counts + hist_off[blockIdx.y] + lo;
    for (u32 b = threadIdx.x; b < nb; b += blockDim.x) {
        u32 v = 0;
        for (int q = 0; q < nsub; ++q) v += sh[q * nb + b];
        if (v) atomicAdd(&out[b], (unsigned long long)v);
    }
}

// ---- block helpers (blockDim.x == 1024) ---------------------------------------------------------
template <typename V>
__device__ __forceinline__ V block_sum(V v, V* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : (V)0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

// exclusive prefix sum over threads in order; *total = block sum
__device__ __forceinline__ i64 block_exscan(i64 v, i64* red, i64* total) {
    const int l = threadIdx.x & 31, w = threadIdx.x >> 5;
    i64 inc = v;
    for (int o = 1; o < 32; o <<= 1) { i64 t = __shfl_up_sync(0xffffffffu, inc, o); if (l >= o) inc += t; }
    __syncthreads();
    if (l == 31) red[w] = inc;
    __syncthreads();
    if (w == 0) {
        i64 s = l < (int)(blockDim.x >> 5) ? red[l] : 0, si = s;
        for (int o = 1; o < 32; o <<= 1) { i64 t = __shfl_up_sync(0xffffffffu, si, o); if (l >= o) si += t; }
        red[l] = si - s;
        if (l == 31) red[32] = si;
    }
    __syncthreads();
    const i64 r = red[w] + inc - v;
    *total = red[32];
    __syncthreads();
    return r;
}

// ---- rANS tables on the device, exactly entropy.Rans.code_table / _normalise_freqs -------------------
// One 1024-thread block per plane. counts (nbins u64) -> present symbols (ascending), scale bits M, frequencies
// (float64 pinning loop, floor, largest remainder with ties to the lower index), encoder rows written at
// enc[5 * symbol]. scratch: sym u32[nb] | freq u32[nb] | fixed u8[nb]; meta[2j] = K, meta[2j+1] = M.
__global__ void __launch_bounds__(1024) build_tables(const u64* cnt_ptrs, const int* nbins_arr, const u64* enc_ptrs,
                                                     const u64* scratch_ptrs, int* meta) {
    const int j = blockIdx.x;
    const unsigned long long* cnt = (const unsigned long long*)cnt_ptrs[j];
    const int nb = nbins_arr[j];
    u32* sym = (u32*)scratch_ptrs[j];
    u32* freq = sym + nb;
    u8* fixed = (u8*)(freq + nb);
    u32* enc = (u32*)enc_ptrs[j];
    __shared__ i64 red[33];
    __shared__ u32 hist[256];
    __shared__ unsigned long long sel[2];
    const int T = blockDim.x;
    // 1. compact the present symbols in ascending order (contiguous segments per thread)
    const int seg = (nb + T - 1) / T, b0 = min(nb, (int)threadIdx.x * seg), b1 = min(nb, b0 + seg);
    i64 mine = 0;
    for (int b = b0; b < b1; ++b) mine += cnt[b] != 0;
    i64 K;
    i64 pos = block_exscan(mine, red, &K);
    for (int b = b0; b < b1; ++b) if (cnt[b]) sym[pos++] = (u32)b;
    __syncthreads();
    int M = 0;
    if (K >= 2) { const int lg = 32 - __clz((int)(K - 1)); M = min(15, max(12, lg + 3)); }
    if (threadIdx.x == 0) { meta[2 * j] = (int)K; meta[2 * j + 1] = M; }
    if (K < 2) return;  // constant plane: no table
    const i64 total = 1ll << M;
    for (int i = threadIdx.x; i < K; i += T) fixed[i] = 0;
    __syncthreads();
    // 2. pin rare symbols at 1 until no share is < 1
    double scale;
    while (true) {
        i64 nfix = 0, free_sum = 0;
        for (int i = threadIdx.x; i < K; i += T) { if (fixed[i]) ++nfix; else free_sum += (i64)cnt[sym[i]]; }
        nfix = block_sum<i64>(nfix, red);
        free_sum = block_sum<i64>(free_sum, red);
        scale = (double)(total - nfix) / (double)free_sum;
        i64 newly = 0;
        for (int i = threadIdx.x; i < K; i += T)
            if (!fixed[i] && __dmul_rn((double)cnt[sym[i]], scale) < 1.0) { fixed[i] = 1; ++newly; }
        newly = block_sum<i64>(newly, red);
        if (!newly) break;
    }
    // 3. floor, leftover
    i64 fsum = 0;
    for (int i = threadIdx.x; i < K; i += T) {
        const u32 f = fixed[i] ? 1u : (u32)floor(__dmul_rn((double)cnt[sym[i]], scale));
        freq[i] = f;
        fsum += f;
    }
    fsum = block_sum<i64>(fsum, red);
    const i64 leftover = total - fsum;
    // 4. the `leftover` largest remainders get +1 (key: remainder bits + 1; pinned symbols key 0; ties: lower index)
    if (leftover > 0) {
        unsigned long long prefix = 0;
        i64 rank = leftover;
        for (int pass = 7; pass >= 0; --pass) {
            for (int d = threadIdx.x; d < 256; d += T) hist[d] = 0;
            __syncthreads();
            for (int i = threadIdx.x; i < K; i += T) {
                unsigned long long key = 0;
                if (!fixed[i]) { const double s = __dmul_rn((double)cnt[sym[i]], scale); key = (unsigned long long)__double_as_longlong(s - floor(s)) + 1ull; }
                if (pass == 7 || (key >> (8 * pass + 8)) == prefix) atomicAdd(&hist[(key >> (8 * pass)) & 255], 1u);
            }
            __syncthreads();
            if (threadIdx.x == 0) {
                int d = 255;
                for (; d > 0; --d) { if ((i64)hist[d] >= rank) break; rank -= hist[d]; }
                sel[0] = (prefix << 8) | (unsigned long long)d;
                sel[1] = (unsigned long long)rank;
            }
            __syncthreads();
            prefix = sel[0];
            rank = (i64)sel[1];
            __syncthreads();
        }
        // keys > prefix all win; of the keys == prefix, the first `rank` by index win
        i64 eq = 0;
        const int k0 = min((int)K, (int)threadIdx.x * (int)((K + T - 1) / T)), k1 = min((int)K, k0 + (int)((K + T - 1) / T));
        for (int i = k0; i < k1; ++i) {
            unsigned long long key = 0;
            if (!fixed[i]) { const double s = __dmul_rn((double)cnt[sym[i]], scale); key = (unsigned long long)__double_as_longlong(s - floor(s)) + 1ull; }
            eq += key == prefix;
        }
        i64 eq_total;
        i64 before = block_exscan(eq, red, &eq_total);
        for (int i = k0; i < k1; ++i) {
            unsigned long long key = 0;
            if (!fixed[i]) { const double s = __dmul_rn((double)cnt[sym[i]], scale); key = (unsigned long long)__double_as_longlong(s - floor(s)) + 1ull; }
            if (key > prefix) freq[i] += 1;
            else if (key == prefix) { if (before < rank) freq[i] += 1; ++before; }
        }
        __syncthreads();
    }
    // 5. cumulative frequencies and encoder rows (x_max, rcp, shift, bias, cmpl)
    const int k0 = min((int)K, (int)threadIdx.x * (int)((K + T - 1) / T)), k1 = min((int)K, k0 + (int)((K + T - 1) / T));
    i64 part = 0;
    for (int i = k0; i < k1; ++i) part += freq[i];
    i64 all;
    i64 cum = block_exscan(part, red, &all);
    for (int i = k0; i < k1; ++i) {
        const u64 f = freq[i];
        const int sh = f == 1 ? 0 : 32 - __clz((int)(f - 1));
        u32* e = enc + 5 * (u64)sym[i];
        e[0] = (u32)(f << (31 - M));
        e[1] = f == 1 ? 0xFFFFFFFFu : (u32)(((1ull << (sh + 31)) + f - 1) / f);
        e[2] = f == 1 ? 32u : (u32)(31 + sh);
        e[3] = (u32)(f == 1 ? cum + total - 1 : cum);
        e[4] = (u32)(total - (i64)f);
        cum += f;
    }
}

// ---- layout choice inputs of 2-byte streams: whole vs byte planes --------------------------------
// counts (65536 u64) of stream j -> planes lo (low byte) / hi (high byte) counts (256 u64 each, at planes[j]),
// out[4j..4j+3] = entropy bits of whole, lo, hi (n*H0, float64) and present counts packed (K_whole, K_lo, K_hi)
__global__ void __launch_bounds__(1024) plane_costs(const u64* cnt_ptrs, const u64* plane_ptrs, double* out, int* kout) {
    const int j = blockIdx.x;
    const unsigned long long* c = (const unsigned long long*)cnt_ptrs[j];
    unsigned long long* lo = (unsigned long long*)plane_ptrs[j];
    unsigned long long* hi = lo + 256;
    __shared__ double dred[33];
    __shared__ i64 red[33];
    // byte planes (exact integer sums)
    for (int b = threadIdx.x; b < 512; b += blockDim.x) {
        unsigned long long s = 0;
        if (b < 256) { for (int h = 0; h < 256; ++h) s += c[h * 256 + b]; lo[b] = s; }
        else { const int h = b - 256; for (int q = 0; q < 256; ++q) s += c[h * 256 + q]; hi[h] = s; }
    }
    __syncthreads();
    i64 nsum = 0, kw = 0, kl = 0, kh = 0;
    for (int v = threadIdx.x; v < 65536; v += blockDim.x) { nsum += (i64)c[v]; kw += c[v] != 0; }
    for (int b = threadIdx.x; b < 256; b += blockDim.x) { kl += lo[b] != 0; kh += hi[b] != 0; }
    nsum = block_sum<i64>(nsum, red);
    kw = block_sum<i64>(kw, red); kl = block_sum<i64>(kl, red); kh = block_sum<i64>(kh, red);
    const double N = (double)nsum;
    double hw = 0.0, hl = 0.0, hh = 0.0;
    for (int v = threadIdx.x; v < 65536; v += blockDim.x) if (c[v]) { const double x = (double)c[v]; hw -= x * log2(x / N); }
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
        if (lo[b]) { const double x = (double)lo[b]; hl -= x * log2(x / N); }
        if (hi[b]) { const double x = (double)hi[b]; hh -= x * log2(x / N); }
    }
    hw = block_sum<double>(hw, dred); hl = block_sum<double>(hl, dred); hh = block_sum<double>(hh, dred);
    if (threadIdx.x == 0) {
        out[4 * j] = hw; out[4 * j + 1] = hl; out[4 * j + 2] = hh; out[4 * j + 3] = N;
        kout[3 * j] = (int)kw; kout[3 * j + 1] = (int)kl; kout[3 * j + 2] = (int)kh;
    }
}

// ---- coder tables in shared memory where they are small (byte keys) ----------------------------------
// encode: the 256 rows (x_max, rcp, shift, bias, cmpl) of a byte plane (5 KB); decode: one u32 a slot,
// symbol | freq << 8 | (slot - cum) << 20, for byte symbols and M <= 12 (16 KB). Every block of a launch
// works on one job (blockIdx.y), so the choice is uniform; other jobs read the tables from global memory.
__device__ __forceinline__ bool enc_in_smem(const Job& J) { return J.n > 0 && J.mask <= 0xFFu; }
__device__ __forceinline__ const u32* load_enc(const Job& J, u32* s_enc) {
    const u32* enc = (const u32*)J.table;
    if (!enc_in_smem(J)) return enc;
    for (int i = threadIdx.x; i < 256 * 5; i += blockDim.x) s_enc[i] = enc[i];
    return s_enc;
}
__device__ __forceinline__ bool lut_in_smem(const Job& J) { return J.n > 0 && J.width == 1 && J.cap <= 12; }
__device__ __forceinline__ void load_lut(const Job& J, u32* s_lut) {
    if (!lut_in_smem(J)) return;
    const u16* ls = (const u16*)J.table;
    const u32* lf = (const u32*)J.table2;
    for (int i = threadIdx.x; i < (1 << J.cap); i += blockDim.x) {
        const u32 fb = lf[i];
        s_lut[i] = (u32)(ls[i] & 0xFF) | ((fb & 0xFFFu) << 8) | ((fb >> 16) << 20);
    }
}
// one decode step: symbol of x's slot, and x advanced past it
__device__ __forceinline__ u32 rans_step(const Job& J, bool small, const u32* s_lut, u64& x, u64 mask, int M) {
    const u64 slot = x & mask;
    u32 v, f, b;
    if (small) { const u32 e = s_lut[slot]; v = e & 0xFF; f = (e >> 8) & 0xFFF; b = e >> 20; }
    else { v = ((const u16*)J.table)[slot]; const u32 fb = ((const u32*)J.table2)[slot]; f = fb & 0xFFFF; b = fb >> 16; }
    x = (u64)f * (x >> M) + b;
    return v;
}

// rANS encode: one thread per (chunk, lane) of a job; enc rows (x_max, rcp, shift, bias, cmpl).
// Words go down from the top of the lane's scratch; sizes[lane_base + j] = lane bytes, tops[...] = first word
__global__ void rans_encode(const Job* jobs, i64* sizes, int* tops) {
    const Job J = jobs[blockIdx.y];
    __shared__ u32 s_enc[256 * 5];
    const u32* enc = load_enc(J, s_enc);
    __syncthreads();
    const i64 n_chunks = (J.n + J.chunk - 1) / J.chunk;
    const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_chunks * J.lanes) return;
    const i64 c = j / J.lanes;
    const int l = (int)(j - c * J.lanes);
    const i64 start = c * J.chunk;
    const i64 m = min(J.chunk, J.n - start);
    const i64 count = m / J.lanes + (l < m % J.lanes);
    if (J.table2 && *(const int*)J.table2 < 2) { sizes[J.lane_base + j] = 0; tops[J.lane_base + j] = J.cap; return; }
    u16* s = (u16*)J.scratch + j * J.cap;
    int pos = J.cap;
    u64 x = 1u << 15;
    for (i64 r = count - 1; r >= 0; --r) {
        const u32 k = load_key(J, start + r * J.lanes + l);
        const u32* e = enc + 5 * k;
        if (x >= e[0]) { s[--pos] = (u16)(x & 0xFFFF); x >>= 16; }
        const u64 q = (x * (u64)e[1]) >> e[2];
        x = x + e[3] + q * e[4];
    }
    if (count > 0) { s[--pos] = (u16)(x >> 16); s[--pos] = (u16)(x & 0xFFFF); }
    sizes[J.lane_base + j] = count > 0 ? 2 * (i64)(J.cap - pos) : 0;
    tops[J.lane_base + j] = pos;
}

// rANS encode, S interleaved lanes per thread (S consecutive lanes of one chunk; lanes % S == 0): S independent
// states in flight per thread, so the serial state chain is not the bound; the same words as rans_encode.
// Keys of the S lanes are one aligned S-byte load where the plane is a plain byte stream.
template <int S>
__global__ void rans_encode_multi(const Job* jobs, i64* sizes, int* tops) {
    const Job J = jobs[blockIdx.y];
    __shared__ u32 s_enc[256 * 5];
    const u32* enc = load_enc(J, s_enc);
    __syncthreads();
    const i64 n_chunks = (J.n + J.chunk - 1) / J.chunk;
    const int G = J.lanes / S;
    const i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_chunks * G) return;
    const i64 c = g / G;
    const int l0 = (int)(g - c * G) * S;
    const i64 j0 = c * J.lanes + l0;
    const i64 start = c * J.chunk;
    const i64 m = min(J.chunk, J.n - start);
    if (J.table2 && *(const int*)J.table2 < 2) {
#pragma unroll
        for (int k = 0; k < S; ++k) { sizes[J.lane_base + j0 + k] = 0; tops[J.lane_base + j0 + k] = J.cap; }
        return;
    }
    i64 count[S];
    int pos[S];
    u64 x[S];
#pragma unroll
    for (int k = 0; k < S; ++k) { count[k] = m / J.lanes + (l0 + k < m % J.lanes); pos[k] = J.cap; x[k] = 1u << 15; }
    
    u16* s0 = (u16*)J.scratch + j0 * J.cap;
    const bool vec = S == 4 && J.width == 1 && J.stride == 1 && J.shift == 0 && J.mask == 0xFF &&
                     (((u64)J.src + start + l0) & 3) == 0 && (J.lanes & 3) == 0;
    for (i64 r = count[0] - 1; r >= 0; --r) {
        u32 keys[S];
        const bool full = r < count[S - 1];
        if (vec && full) {
            const u32 w4 = *(const u32*)((const u8*)J.src + start + r * J.lanes + l0);
#pragma unroll
            for (int k = 0; k < S; ++k) keys[k] = (w4 >> (8 * k)) & 0xFF;
        } else {
#pragma unroll
            for (int k = 0; k < S; ++k) keys[k] = r < count[k] ? load_key(J, start + r * J.lanes + l0 + k) : 0u;
        }
#pragma unroll
        for (int k = 0; k < S; ++k) {
            if (r < count[k]) {
                const u32* e = enc + 5 * keys[k];
                const u32 xmax = e[0], rcp = e[1], sh = e[2], bias = e[3], cmpl = e[4];
                u16* s = s0 + (i64)k * J.cap;
                if (x[k] >= xmax) { s[--pos[k]] = (u16)(x[k] & 0xFFFF); x[k] >>= 16; }
                const u64 q = (x[k] * (u64)rcp) >> sh;
                x[k] = x[k] + bias + q * cmpl;
            }
        }
    }
#pragma unroll
    for (int k = 0; k < S; ++k) {
        u16* s = s0 + (i64)k * J.cap;
        if (count[k] > 0) { s[--pos[k]] = (u16)(x[k] >> 16); s[--pos[k]] = (u16)(x[k] & 0xFFFF); }
        sizes[J.lane_base + j0 + k] = count[k] > 0 ? 2 * (i64)(J.cap - pos[k]) : 0;
        tops[J.lane_base + j0 + k] = pos[k];
    }
}

// a lane's u16 word, or 0 past the lane's end (corrupt lane data never reads past its lane)
__device__ __forceinline__ u32 word_at(const u16* w, i64 p, i64 end) { return p < end ? (u32)w[p] : 0u; }

// rANS decode, S interleaved lanes per thread (see rans_encode_multi); the same checks as rans_decode
template <int S>
__global__ void rans_decode_multi(const Job* jobs, int* err) {
    const Job J = jobs[blockIdx.y];
    __shared__ u32 s_lut[4096];
    const bool small = lut_in_smem(J);
    load_lut(J, s_lut);
    __syncthreads();
    const i64 n_chunks = (J.n + J.chunk - 1) / J.chunk;
    const int G = J.lanes / S;
    const i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_chunks * G) return;
    const i64 c = g / G;
    const int l0 = (int)(g - c * G) * S;
    const i64 j0 = c * J.lanes + l0;
    const i64 start = c * J.chunk;
    const i64 m = min(J.chunk, J.n - start);
    const u32* ends = (const u32*)J.ends;
    const u16* w = (const u16*)J.scratch;
    const int M = J.cap;
    const u64 mask = (1ull << M) - 1;
    i64 count[S], p[S], pend[S];
    u64 x[S];
#pragma unroll
    for (int k = 0; k < S; ++k) {
        const i64 j = j0 + k;
        count[k] = m / J.lanes + (l0 + k < m % J.lanes);
        p[k] = (j ? (i64)ends[j - 1] : 0) >> 1;
        pend[k] = (i64)ends[j] >> 1;
        x[k] = 1u << 15;
        if (count[k] > 0) { x[k] = (u64)word_at(w, p[k], pend[k]) | ((u64)word_at(w, p[k] + 1, pend[k]) << 16); p[k] += 2; }
    }
    u8* out = (u8*)J.src;
    const bool vec = S == 4 && J.width == 1 && J.stride == 1 && (((u64)out + start + l0) & 3) == 0 && (J.lanes & 3) == 0;
    for (i64 r = 0; r < count[0]; ++r) {
        const i64 i = start + r * J.lanes + l0;
        u32 v[S];
#pragma unroll
        for (int k = 0; k < S; ++k) {
            if (r < count[k]) {
                v[k] = rans_step(J, small, s_lut, x[k], mask, M);
                if (x[k] < (1u << 15)) { x[k] = (x[k] << 16) | word_at(w, p[k], pend[k]); ++p[k]; }
            }
        }
        if (vec && r < count[S - 1]) {
            *(u32*)(out + i) = (v[0] & 0xFF) | ((v[1] & 0xFF) << 8) | ((v[2] & 0xFF) << 16) | ((v[3 % S] & 0xFF) << 24);
        } else {
#pragma unroll
            for (int k = 0; k < S; ++k) if (r < count[k]) {
                if (J.width == 1) out[(i + k) * J.stride] = (u8)v[k]; else *(u16*)(out + (i + k) * J.stride) = (u16)v[k];
            }
        }
    }
#pragma unroll
    for (int k = 0; k < S; ++k)
        if (count[k] > 0 && (x[k] != (1u << 15) || 2 * p[k] != (i64)ends[j0 + k])) atomicExch(err, 1);
}

// copy each lane's words (one warp per lane) to out + (lane's begin); ends = inclusive scan of sizes (global),
// job data begins at out_off[job] bytes, and the job's first lane has global scan base ends[lane_base - 1]
__global__ void rans_gather(const Job* jobs, const i64* ends, const int* tops, const i64* out_off, u8* out) {
    const Job J = jobs[blockIdx.y];
    const i64 n_lanes = ((J.n + J.chunk - 1) / J.chunk) * J.lanes;
    const i64 base = J.lane_base ? ends[J.lane_base - 1] : 0;
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, l = threadIdx.x & 31;
    const int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (i64 j = warp; j < n_lanes; j += nwarps) {
        const i64 g = J.lane_base + j;
        const i64 begin = (g ? ends[g - 1] : 0) - base;
        const i64 nw = (ends[g] - (g ? ends[g - 1] : 0)) >> 1;
        const u16* s = (const u16*)J.scratch + j * J.cap + tops[g];
        u16* d = (u16*)(out + out_off[blockIdx.y] + begin);
        for (i64 k = l; k < nw; k += 32) d[k] = s[k];
    }
}

// rANS decode: one thread per (chunk, lane); J.scratch = u16 words (reads stop at each lane's end), J.ends = u32 lane ends,
// J.table = u16 lut_sym, J.table2 = u32 lut_fb (freq | (slot - cum) << 16), J.cap = M; errors -> err[0]
__global__ void rans_decode(const Job* jobs, int* err) {
    const Job J = jobs[blockIdx.y];
    __shared__ u32 s_lut[4096];
    const bool small = lut_in_smem(J);
    load_lut(J, s_lut);
    __syncthreads();
    const i64 n_chunks = (J.n + J.chunk - 1) / J.chunk;
    const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_chunks * J.lanes) return;
    const i64 c = j / J.lanes;
    const int l = (int)(j - c * J.lanes);
    const i64 start = c * J.chunk;
    const i64 m = min(J.chunk, J.n - start);
    const i64 count = m / J.lanes + (l < m % J.lanes);
    const u32* ends = (const u32*)J.ends;
    const u16* w = (const u16*)J.scratch;
    const int M = J.cap;
    const u64 mask = (1ull << M) - 1;
    i64 p = (j ? (i64)ends[j - 1] : 0) >> 1;
    const i64 pend = (i64)ends[j] >> 1;
    u64 x = 1u << 15;
    if (count > 0) { x = (u64)word_at(w, p, pend) | ((u64)word_at(w, p + 1, pend) << 16); p += 2; }
    u8* out = (u8*)J.src;
    for (i64 r = 0; r < count; ++r) {
        const i64 i = start + r * J.lanes + l;
        const u32 v = rans_step(J, small, s_lut, x, mask, M);
        if (J.width == 1) out[i * J.stride] = (u8)v; else *(u16*)(out + i * J.stride) = (u16)v;
        if (x < (1u << 15)) { x = (x << 16) | word_at(w, p, pend); ++p; }
    }
    if (count > 0 && (x != (1u << 15) || 2 * p != (i64)ends[j])) atomicExch(err, 1);
}

// constant planes (K == 1): every key is the one symbol
__global__ void fill_kernel(const Job* jobs) {
    const Job J = jobs[blockIdx.y];
    u8* out = (u8*)J.src;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < J.n; i += (i64)gridDim.x * blockDim.x) {
        if (J.width == 1) out[i * J.stride] = (u8)J.mask; else *(u16*)(out + i * J.stride) = (u16)J.mask;
    }
}

// ==== the device wire format (dlrmcomp.exchange.wire) ==============================================
// A slice on the wire: an 80-byte descriptor, the codes. entropy stream (codecs/stream.py format), zero
// padding to 8, the escaped values verbatim, zero padding to 16. Slices are packed back to back (16-aligned).
// One WireSlice a slice (host mirror: dlrmcomp.exchange.device.WIRE_SLICE); fields marked "out" are written here.
struct WireSlice {
    u64 src;         // encode: the slice's values; decode: where its values go
    u64 codes;       // code buffer (n codes of code_bytes)
    i64 rows;
    i64 n;           // rows * dim
    i64 offset;      // decode: slice offset in the received buffer; encode (out): offset in the send buffer
    i64 length;      // decode: expected slice length; encode (out): slice length
    i64 stream_len;  // out: entropy-stream bytes
    i64 esc_off;     // out: offset of the escaped values in the slice
    i64 n_esc;       // decode (out): escape count of the descriptor
    double eb;       // encode: the bound (relative unless mode == 1)
    int dim;
    int job;         // first plane job of the slice (code_bytes jobs)
    int lanes;       // the stream's lanes (stream.stream_lanes)
    int chunk;
    int code_bytes;  // 1 (int8) or 2 (int16)
    int value_bytes; // 4 (float32) or 8 (float64)
    int mode;        // 0 relative, 1 absolute
    int pad;
};

#define WIRE_DESC 80
#define WIRE_STREAM_HEAD 23
#define WIRE_MAGIC 0x31574C44u
#define LUT_SLOTS 32768

__device__ u32 crc32_bytes(const u8* p, int n) {
    u32 c = 0xFFFFFFFFu;
    for (int i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}
__device__ __forceinline__ void put_le(u8* p, u64 v, int nbytes) { for (int i = 0; i < nbytes; ++i) p[i] = (u8)(v >> (8 * i)); }
__device__ __forceinline__ u64 get_le(const u8* p, int nbytes) {
    u64 v = 0;
    for (int i = 0; i < nbytes; ++i) v |= (u64)p[i] << (8 * i);
    return v;
}
__device__ __forceinline__ i64 align_up(i64 v, i64 a) { return (v + a - 1) / a * a; }
__device__ __forceinline__ i64 lane_count(i64 n, i64 chunk, int lanes, i64 j) {
    const i64 c = j / lanes, l = j - c * lanes, m = min(chunk, n - c * chunk);
    return m / lanes + (l < m % lanes);
}
__device__ __forceinline__ i64 n_lanes_of(i64 n, i64 chunk, int lanes) { return (n + chunk - 1) / chunk * lanes; }

// where plane j of an encoded slice lands in its stream (positions from the stream's start)
struct PlanePos { i64 head, ends, data, data_len, next, nl, lb; int K, M; };
__device__ PlanePos plane_pos(i64 pos, const Job& J, const int* meta, int j, const i64* lane_ends) {
    PlanePos q;
    q.head = pos; q.K = meta[2 * j]; q.M = meta[2 * j + 1];
    q.nl = n_lanes_of(J.n, J.chunk, J.lanes); q.lb = J.lane_base;
    pos += 4 + q.K;
    q.ends = q.data = pos; q.data_len = 0;
    if (q.K >= 2) {
        pos += 1 + 2 * (i64)q.K;
        pos = align_up(pos, 4);
        q.ends = pos;
        pos += 4 * q.nl;
        q.data = pos;
        q.data_len = lane_ends[q.lb + q.nl - 1] - (q.lb ? lane_ends[q.lb - 1] : 0);
        pos += q.data_len;
    }
    q.next = pos;
    return q;
}

// per slice (one thread each): stream length, escape offset, slice length (encode)
__global__ void wire_sizes(WireSlice* S, int nS, const Job* jobs, const int* meta, const i64* lane_ends,
                           const unsigned long long* esc, i64* slice_len) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= nS) return;
    WireSlice& s = S[t];
    i64 pos = WIRE_STREAM_HEAD;
    if (s.n > 0)
        for (int p = 0; p < s.code_bytes; ++p) pos = plane_pos(pos, jobs[s.job + p], meta, s.job + p, lane_ends).next;
    s.stream_len = pos;
    s.esc_off = WIRE_DESC + align_up(pos, 8);
    s.n_esc = (i64)esc[t];
    s.length = align_up(s.esc_off + s.n_esc * s.value_bytes, 16);
    slice_len[t] = s.length;
}

// descriptor, stream header, plane heads and lane ends (block 0 of each slice), lane words (every block);
// offs[t] = the slice's offset in out (exclusive scan of the lengths); params: base, step, eb_abs, qmax
__global__ void wire_write(const WireSlice* S, const Job* jobs, const int* meta, const u64* sym_ptrs,
                           const i64* lane_ends, const int* tops, const double* params, const i64* offs, u8* out) {
    const int t = blockIdx.y;
    const WireSlice s = S[t];
    u8* d = out + offs[t];
    u8* st = d + WIRE_DESC;
    const int layout = s.code_bytes == 1 ? 0 : 1;
    if (blockIdx.x == 0) {
        if (threadIdx.x == 0) {
            ((WireSlice*)S)[t].offset = offs[t];  // for escape_move
            put_le(d, WIRE_MAGIC, 4);
            d[4] = 1; d[5] = 1; d[6] = s.value_bytes == 4 ? 0 : 1; d[7] = s.code_bytes == 1 ? 0 : 2;
            d[8] = (u8)s.mode; d[9] = d[10] = d[11] = 0;
            put_le(d + 12, (u64)s.dim, 4); put_le(d + 16, (u64)s.rows, 4); put_le(d + 20, (u64)s.n_esc, 4);
            put_le(d + 24, (u64)s.stream_len, 4); put_le(d + 28, (u64)s.length, 4);
            put_le(d + 32, (u64)__double_as_longlong(s.eb), 8);
            put_le(d + 40, (u64)__double_as_longlong(params[4 * t + 2]), 8);
            put_le(d + 48, (u64)__double_as_longlong(params[4 * t]), 8);
            put_le(d + 56, (u64)__double_as_longlong(params[4 * t + 1]), 8);
            put_le(d + 64, (u64)s.lanes, 4); put_le(d + 68, (u64)s.chunk, 4); put_le(d + 72, 0, 4);
            put_le(d + 76, crc32_bytes(d, 76), 4);
            st[0] = 'R'; st[1] = 'A'; st[2] = 1; st[3] = s.code_bytes == 1 ? 0 : 2; st[4] = (u8)layout;
            put_le(st + 5, (u64)s.lanes, 2); put_le(st + 7, (u64)s.chunk, 4); put_le(st + 11, (u64)s.n, 8);
            put_le(st + 19, crc32_bytes(st, 19), 4);
        }
        i64 pos = WIRE_STREAM_HEAD;
        for (int p = 0; p < (s.n > 0 ? s.code_bytes : 0); ++p) {
            const int j = s.job + p;
            const PlanePos q = plane_pos(pos, jobs[j], meta, j, lane_ends);
            const u32* sym = (const u32*)sym_ptrs[j];
            if (threadIdx.x == 0) put_le(st + q.head, (u64)q.K, 4);
            for (int k = threadIdx.x; k < q.K; k += blockDim.x) st[q.head + 4 + k] = (u8)sym[k];
            if (q.K >= 2) {
                const u32* freq = sym + 256;
                if (threadIdx.x == 0) st[q.head + 4 + q.K] = (u8)q.M;
                for (int k = threadIdx.x; k < q.K; k += blockDim.x) put_le(st + q.head + 5 + q.K + 2 * k, freq[k], 2);
                for (i64 b = q.head + 5 + 3 * (i64)q.K + threadIdx.x; b < q.ends; b += blockDim.x) st[b] = 0;
                const i64 base = q.lb ? lane_ends[q.lb - 1] : 0;
                u32* e = (u32*)(st + q.ends);
                for (i64 l = threadIdx.x; l < q.nl; l += blockDim.x) e[l] = (u32)(lane_ends[q.lb + l] - base);
            }
            pos = q.next;
        }
        for (i64 b = WIRE_DESC + s.stream_len + threadIdx.x; b < s.esc_off; b += blockDim.x) d[b] = 0;
        for (i64 b = s.esc_off + s.n_esc * s.value_bytes + threadIdx.x; b < s.length; b += blockDim.x) d[b] = 0;
    }
    // lane words: one warp a lane, spread over the slice's blocks
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, wl = threadIdx.x & 31;
    const int nwarps = (gridDim.x * blockDim.x) >> 5;
    i64 pos = WIRE_STREAM_HEAD;
    for (int p = 0; p < (s.n > 0 ? s.code_bytes : 0); ++p) {
        const int j = s.job + p;
        const Job J = jobs[j];
        const PlanePos q = plane_pos(pos, J, meta, j, lane_ends);
        if (q.K >= 2) {
            const i64 base = q.lb ? lane_ends[q.lb - 1] : 0;
            for (i64 l = warp; l < q.nl; l += nwarps) {
                const i64 g = q.lb + l;
                const i64 prev = g ? lane_ends[g - 1] : 0;
                const i64 nw = (lane_ends[g] - prev) >> 1;
                const u16* src = (const u16*)J.scratch + l * J.cap + tops[g];
                u16* dst = (u16*)(st + q.data + (prev - base));
                for (i64 k = wl; k < nw; k += 32) dst[k] = src[k];
            }
        }
        pos = q.next;
    }
}

// error codes per slice (err[t]); dlrmcomp.exchange.device.WIRE_ERRORS says them in words
#define E_BOUNDS 1
#define E_DESC 2
#define E_SHAPE 3
#define E_STREAM 4
#define E_TABLE 5
#define E_ENDS 6
#define E_LANES 7
#define E_ESCAPES 8

// ---- escaped values, in element order, moved between the values and the slice's escape area ----------
// Slices are cut into B segments (multiples of 1024 elements); only slices with escapes do any work.
__device__ __forceinline__ bool is_esc(const WireSlice& s, i64 i) {
    return s.code_bytes == 1 ? ((const signed char*)s.codes)[i] == -128 : ((const short*)s.codes)[i] == -32768;
}
__device__ __forceinline__ i64 esc_segment(i64 n, int B) { return align_up((n + B - 1) / B, 1024); }

// seg_counts[t * B + b] = escape codes in segment b of slice t (grid (B, S), 1024 threads)
__global__ void __launch_bounds__(1024) escape_counts(const WireSlice* S, int B, int* seg_counts) {
    const WireSlice s = S[blockIdx.y];
    if (s.n_esc == 0) return;
    __shared__ i64 red[33];
    const i64 seg = esc_segment(s.n, B), i0 = blockIdx.x * seg, i1 = min(s.n, i0 + seg);
    i64 c = 0;
    for (i64 i = i0 + threadIdx.x; i < i1; i += blockDim.x) c += is_esc(s, i);
    c = block_sum<i64>(c, red);
    if (threadIdx.x == 0) seg_counts[(i64)blockIdx.y * B + blockIdx.x] = (int)c;
}

// encode (to_wire): the values at escape codes -> wire + s.offset + s.esc_off, in order;
// decode: back into the values. Decode checks first that the escape codes found (found[t]) match the
// descriptor's count (else err[t] = E_ESCAPES, or E_LANES when the rANS lane flag is set).
template <typename T, bool to_wire>
__global__ void __launch_bounds__(1024) escape_move(const WireSlice* S, int B, const int* seg_counts, u8* wire,
                                                    const unsigned long long* found, int* err, const int* lane_err) {
    const int t = blockIdx.y;
    const WireSlice s = S[t];
    if (!to_wire) {
        if (err[t]) return;
        if ((i64)found[t] != s.n_esc) { if (blockIdx.x == 0 && threadIdx.x == 0) err[t] = *lane_err ? E_LANES : E_ESCAPES; return; }
    }
    if (s.n_esc == 0) return;
    const int* cnt = seg_counts + (i64)t * B;
    if (cnt[blockIdx.x] == 0) return;
    i64 done = 0;
    for (int b = 0; b < (int)blockIdx.x; ++b) done += cnt[b];
    __shared__ i64 red[33];
    T* esc = (T*)(wire + s.offset + s.esc_off);
    T* x = (T*)s.src;
    const i64 seg = esc_segment(s.n, B), i0 = blockIdx.x * seg, i1 = min(s.n, i0 + seg);
    for (i64 j0 = i0; j0 < i1; j0 += blockDim.x) {
        const i64 i = j0 + threadIdx.x;
        const int f = i < i1 && is_esc(s, i);
        i64 total;
        const i64 before = block_exscan((i64)f, red, &total);
        if (f && done + before < s.n_esc) { if (to_wire) esc[done + before] = x[i]; else x[i] = esc[done + before]; }
        done += total;
    }
}

// ---- decode: validate each slice on the device, fill its decode jobs and lookup tables --------------

// one block a slice. jobs: two per slice (s.job, s.job + 1), chunk/lanes preset by the host (n = 0); the code
// dtype (s.code_bytes) is read from the descriptor;
// lut_sym/lut_fb: LUT_SLOTS entries per job; cum: 65537 u32 per job; params[2t] = base, step
__global__ void __launch_bounds__(256) wire_parse(WireSlice* S, const u8* buf, i64 buf_len, Job* jobs, u16* lut_sym,
                                                  u32* lut_fb, u32* cum_all, double* params, int* err) {
    const int t = blockIdx.x;
    WireSlice& s = S[t];
    __shared__ int bad, K, M, width, cb;
    if (threadIdx.x == 0) { width = 1; cb = 1; }
    __shared__ i64 pos, pos_ends, pos_data, data_len, stream_len;
    const u8* d = buf + s.offset;
    const u8* st = d + WIRE_DESC;
    if (threadIdx.x == 0) {
        bad = 0;
        if (s.offset < 0 || (s.offset & 15) || s.length < WIRE_DESC + WIRE_STREAM_HEAD || s.offset + s.length > buf_len) bad = E_BOUNDS;
        else if ((u32)get_le(d, 4) != WIRE_MAGIC || d[4] != 1 || d[5] != 1 || (u32)get_le(d + 76, 4) != crc32_bytes(d, 76)) bad = E_DESC;
        else if (d[6] != (s.value_bytes == 4 ? 0 : 1) || (d[7] != 0 && d[7] != 2) ||
                 (i64)get_le(d + 12, 4) != s.dim || (i64)get_le(d + 16, 4) != s.rows || (i64)get_le(d + 28, 4) != s.length) bad = E_SHAPE;
        else {
            cb = d[7] == 0 ? 1 : 2;
            s.code_bytes = cb;
            stream_len = (i64)get_le(d + 24, 4);
            s.n_esc = (i64)get_le(d + 20, 4);
            s.stream_len = stream_len;
            s.esc_off = WIRE_DESC + align_up(stream_len, 8);
            if (stream_len < WIRE_STREAM_HEAD || s.esc_off + s.n_esc * s.value_bytes > s.length || s.n_esc > s.n) bad = E_BOUNDS;
            params[2 * t] = __longlong_as_double((i64)get_le(d + 48, 8));
            params[2 * t + 1] = __longlong_as_double((i64)get_le(d + 56, 8));
        }
        if (!bad) {
            const int layout = st[4];
            if (st[0] != 'R' || st[1] != 'A' || st[2] != 1 || (u32)get_le(st + 19, 4) != crc32_bytes(st, 19) ||
                st[3] != (cb == 1 ? 0 : 2) || layout > 1 || (i64)get_le(st + 5, 2) != s.lanes ||
                (i64)get_le(st + 7, 4) != s.chunk || (i64)get_le(st + 11, 8) != s.n) bad = E_STREAM;
            width = layout == 0 ? cb : 1;
        }
        pos = WIRE_STREAM_HEAD;
    }
    __syncthreads();
    const int planes = s.n > 0 ? cb / width : 0;
    for (int p = 0; p < planes && !bad; ++p) {
        const int j = s.job + p;
        u32* cum = cum_all + (i64)j * 65537;
        if (threadIdx.x == 0) {
            K = 0;
            if (pos + 4 > stream_len) bad = E_TABLE;
            else {
                K = (int)get_le(st + pos, 4);
                if (K < 1 || K > (1 << (8 * width)) || pos + 4 + (i64)K * width > stream_len) bad = E_TABLE;
            }
            for (int k = 1; k < K && !bad; ++k)
                if (get_le(st + pos + 4 + (i64)k * width, width) <= get_le(st + pos + 4 + (i64)(k - 1) * width, width)) bad = E_TABLE;
            M = 0;
            if (!bad && K >= 2) {
                const i64 tp = pos + 4 + (i64)K * width;
                if (tp + 1 + 2 * (i64)K > stream_len) bad = E_TABLE;
                else {
                    M = st[tp];
                    u32 c = 0;
                    for (int k = 0; k < K; ++k) {
                        const u32 f = (u32)get_le(st + tp + 1 + 2 * (i64)k, 2);
                        if (f < 1) bad = E_TABLE;
                        cum[k] = c; c += f;
                    }
                    cum[K] = c;
                    if (M < 1 || M > 15 || c != (1u << M)) bad = E_TABLE;
                    i64 q = tp + 1 + 2 * (i64)K;
                    for (; (q & 3) && !bad; ++q) if (q >= stream_len || st[q]) bad = E_TABLE;
                    pos_ends = q;
                    const i64 nl = n_lanes_of(s.n, s.chunk, s.lanes);
                    if (!bad && pos_ends + 4 * nl > stream_len) bad = E_ENDS;
                    if (!bad) {
                        pos_data = pos_ends + 4 * nl;
                        data_len = (i64)((const u32*)(st + pos_ends))[nl - 1];
                        if (pos_data + data_len > stream_len) bad = E_ENDS;
                    }
                }
            }
        }
        __syncthreads();
        if (bad) break;
        if (K == 1) {  // constant plane: every code byte (or code) is the one symbol
            const u32 v = (u32)get_le(st + pos + 4, width);
            u8* out = (u8*)s.codes + p;
            for (i64 i = threadIdx.x; i < s.n; i += blockDim.x) {
                if (width == 1) out[i * cb] = (u8)v; else ((u16*)s.codes)[i] = (u16)v;
            }
            __syncthreads();
            if (threadIdx.x == 0) pos = pos + 4 + width;
            __syncthreads();
            continue;
        }
        // lane ends: non-decreasing, each lane's size fits its symbol count (entropy.Rans.lane_sizes_ok)
        const u32* ends = (const u32*)(st + pos_ends);
        const i64 nl = n_lanes_of(s.n, s.chunk, s.lanes);
        int lane_bad = 0;
        for (i64 l = threadIdx.x; l < nl; l += blockDim.x) {
            const i64 prev = l ? (i64)ends[l - 1] : 0, size = (i64)ends[l] - prev;
            const i64 cnt = lane_count(s.n, s.chunk, s.lanes, l);
            if (cnt == 0) lane_bad |= size != 0;
            else lane_bad |= size < 4 || size > 4 + 2 * cnt || (size & 1);
        }
        if (__syncthreads_or(lane_bad)) { if (threadIdx.x == 0) bad = E_ENDS; __syncthreads(); break; }
        // lookup tables: slot -> symbol, (freq | (slot - cum) << 16)
        const i64 tp = pos + 4 + (i64)K * width;
        u16* ls = lut_sym + (i64)j * LUT_SLOTS;
        u32* lf = lut_fb + (i64)j * LUT_SLOTS;
        for (int slot = threadIdx.x; slot < (1 << M); slot += blockDim.x) {
            int lo = 0, hi = K - 1;  // the last k with cum[k] <= slot
            while (lo < hi) { const int mid = (lo + hi + 1) >> 1; if (cum[mid] <= (u32)slot) lo = mid; else hi = mid - 1; }
            ls[slot] = (u16)get_le(st + pos + 4 + (i64)lo * width, width);
            lf[slot] = (u32)get_le(st + tp + 1 + 2 * (i64)lo, 2) | (((u32)slot - cum[lo]) << 16);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            Job& J = jobs[j];
            J.n = s.n; J.scratch = (u64)(st + pos_data); J.ends = (u64)ends;
            J.table = (u64)ls; J.table2 = (u64)lf; J.cap = M;
            J.width = width; J.stride = cb; J.src = s.codes + (width == 1 ? p : 0);
            pos = pos_data + data_len;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        if (!bad && pos != stream_len) bad = E_STREAM;
        if (bad) { err[t] = bad; jobs[s.job].n = 0; jobs[s.job + 1].n = 0; }
    }
}

// values = base + code * step (no contraction, as the CPU), escape codes counted into found[t]
template <typename T, typename C>
__device__ __forceinline__ int dequant_slice(const WireSlice& s, double base, double step) {
    const C* c = (const C*)s.codes;
    T* out = (T*)s.src;
    const C esc = sizeof(C) == 1 ? (C)-128 : (C)-32768;
    int n_esc = 0;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    i64 i0 = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (sizeof(T) == 4 && (((u64)out | (u64)c) & (4 * sizeof(C) - 1)) == 0 && ((u64)out & 15) == 0) {
        for (i64 q = i0; q < s.n / 4; q += stride) {  // 4 codes in, one float4 out
            C k[4];
            if (sizeof(C) == 1) { const u32 w = ((const u32*)c)[q]; for (int j = 0; j < 4; ++j) k[j] = (C)(w >> (8 * j)); }
            else { const ushort4 w = ((const ushort4*)c)[q]; k[0] = (C)w.x; k[1] = (C)w.y; k[2] = (C)w.z; k[3] = (C)w.w; }
            float4 v;
            v.x = (float)__dadd_rn(base, __dmul_rn((double)k[0], step)); v.y = (float)__dadd_rn(base, __dmul_rn((double)k[1], step));
            v.z = (float)__dadd_rn(base, __dmul_rn((double)k[2], step)); v.w = (float)__dadd_rn(base, __dmul_rn((double)k[3], step));
            n_esc += (k[0] == esc) + (k[1] == esc) + (k[2] == esc) + (k[3] == esc);
            ((float4*)out)[q] = v;
        }
        i0 += (s.n / 4) * 4;
    }
    for (i64 i = i0; i < s.n; i += stride) {
        const C code = c[i];
        n_esc += code == esc;
        out[i] = (T)__dadd_rn(base, __dmul_rn((double)code, step));
    }
    return n_esc;
}

template <typename T>
__global__ void wire_dequant(const WireSlice* S, const double* params, unsigned long long* found, const int* err) {
    const int t = blockIdx.y;
    const WireSlice s = S[t];
    if (err[t]) return;
    const double base = params[2 * t], step = params[2 * t + 1];
    int n_esc = s.code_bytes == 1 ? dequant_slice<T, signed char>(s, base, step) : dequant_slice<T, short>(s, base, step);
    n_esc = __reduce_add_sync(0xffffffffu, (unsigned)n_esc);
    if ((threadIdx.x & 31) == 0 && n_esc) atomicAdd(&found[t], (unsigned long long)n_esc);
}

// per-slice grid parameters from the ranges, each slice with its own bound
template <typename T>
__global__ void wire_grid(const typename OrdT<T>::U* rng, const WireSlice* S, int nS, double* params) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= nS) return;
    double lo, hi;
    range_of<T>(rng, t, lo, hi);
    grid_of(lo, hi, S[t].eb, S[t].mode, S[t].code_bytes == 1 ? 127.0 : 32767.0, params + 4 * t);
}

"""

NAMES = (
    "range_kernel<float>", "range_kernel<double>",
    "quantize_kernel<float,signed char>", "quantize_kernel<float,short>",
    "quantize_kernel<double,signed char>", "quantize_kernel<double,short>",
    "dequantize_kernel<float,signed char>", "dequantize_kernel<float,short>",
    "dequantize_kernel<double,signed char>", "dequantize_kernel<double,short>",
    "dedup_insert", "dedup_flag", "dedup_finish", "histogram_kernel", "rans_encode", "rans_gather",
    "rans_decode", "fill_kernel", "build_tables", "plane_costs",
    "grid_params<float>", "grid_params<double>", "quantize_hist_kernel<float>", "quantize_hist_kernel<double>",
    "rans_encode_multi<2>", "rans_encode_multi<4>", "rans_decode_multi<2>", "rans_decode_multi<4>",
    "wire_sizes", "wire_write", "wire_parse", "wire_grid<float>", "wire_grid<double>",
    "escape_counts", "escape_move<float,true>", "escape_move<double,true>", "escape_move<float,false>",
    "escape_move<double,false>",
    "wire_dequant<float>", "wire_dequant<double>",
)
