// Fused Walsh-Hadamard transform passes for intrinsic-bench (compiled at run time with NVRTC).
//
// A batch of `rows` rows of length n = 2^log_n (row-major, contiguous) is transformed along its
// rows, unnormalised. The log_n index bits are cut into passes (see `plan.rs`, which also holds a
// CPU emulation of this exact index arithmetic that the CPU tests check against the reference
// FWHT). One launch is one pass: it transforms the `log_m` "mid" index bits [lo, lo + log_m) of
// every row. A thread block owns one tile of E = 2^(log_m + log_t) elements: all 2^log_m values
// of the mid bits times a contiguous run of 2^log_t values of the low bits [0, log_t) (so global
// loads and stores are runs of at least 2^log_t floats); the bits [log_t, lo) and
// [lo + log_m, log_n) and the row come from the block index. The tile is loaded into shared
// memory, transformed in rounds of up to three bits (radix-8 butterflies in registers, one
// __syncthreads per round), and stored.
//
// The first pass can read a different buffer than it writes, with the Fastfood steps fused into
// its load: zero padding (source elements at or past `src_len` read as 0), a gather through an
// index array (a permutation), one source row broadcast to every row, a source whose rows are
// periodic (the row of `2^log_period` values it holds is read as repeated along the row: how
// Fastfood's first transform of a short input looks, see `fastfood.rs`), and multiplications by a
// per-element f32 vector (indexed at the destination or at the gathered source), per-element
// signs and a per-row scale. The last pass can multiply by a per-element f32 vector, a per-row
// scale and per-element signs as it stores. Every destination element of the batch is written exactly once per pass.

typedef long long i64;

#define MAX_RADIX_BITS 3

// Launched with up to 1024 threads: the bound makes the compiler keep registers within what a
// 1024-thread block may use (64 per thread); the CPU tests check the count and that nothing spills.
extern "C" __global__ void __launch_bounds__(1024) fwht_pass(
    const float* __restrict__ src,
    float* dst,
    i64 src_len,
    i64 rows,
    int log_n,
    int lo,
    int log_m,
    int log_t,
    int first,
    int last,
    const int* __restrict__ gather,
    int broadcast_src,
    int log_period,
    const float* __restrict__ pre_vec,
    int pre_at_source,
    const signed char* __restrict__ pre_sign,
    const float* __restrict__ pre_row,
    const float* __restrict__ post_vec,
    const float* __restrict__ post_row,
    const signed char* __restrict__ post_sign)
{
    extern __shared__ float tile[];
    const int log_e = log_m + log_t;
    const i64 e_len = (i64)1 << log_e;
    const i64 n = (i64)1 << log_n;
    const int lowhi_bits = lo - log_t;          // bits [log_t, lo)
    const int hi_bits = log_n - lo - log_m;     // bits [lo + log_m, log_n)

    i64 tile_id = (i64)blockIdx.x;
    const i64 lowhi = tile_id & (((i64)1 << lowhi_bits) - 1);
    tile_id >>= lowhi_bits;
    const i64 hi = tile_id & (((i64)1 << hi_bits) - 1);
    const i64 row = tile_id >> hi_bits;
    if (row >= rows) return;
    const i64 row_base = row * n;
    const i64 fixed = (hi << (lo + log_m)) | (lowhi << log_t);

    // Load.
    for (i64 e = threadIdx.x; e < e_len; e += blockDim.x) {
        const i64 mid = e >> log_t;
        const i64 low = e & (((i64)1 << log_t) - 1);
        const i64 g = row_base + (fixed | (mid << lo) | low);
        float value;
        if (first) {
            const i64 s = gather ? (i64)gather[g] : g;
            const i64 row_of_s = broadcast_src ? 0 : (s >> log_n);
            const i64 from = (row_of_s << log_period) | (s & (((i64)1 << log_period) - 1));
            value = from < src_len ? src[from] : 0.0f;
            if (pre_vec) value *= pre_vec[pre_at_source ? s : g];
            if (pre_sign) value *= (float)pre_sign[g];
            if (pre_row) value *= pre_row[row];
        } else {
            value = dst[g];
        }
        tile[e] = value;
    }
    __syncthreads();

    // Rounds of up to three mid bits each; tile bit b = log_t + (mid bit).
    for (int done = 0; done < log_m; done += MAX_RADIX_BITS) {
        const int r = min(MAX_RADIX_BITS, log_m - done);
        const int b = log_t + done;
        const i64 groups = e_len >> r;
        const int width = 1 << r;
        for (i64 grp = threadIdx.x; grp < groups; grp += blockDim.x) {
            const i64 base = ((grp >> b) << (b + r)) | (grp & (((i64)1 << b) - 1));
            float v[1 << MAX_RADIX_BITS];
#pragma unroll
            for (int q = 0; q < (1 << MAX_RADIX_BITS); q++) {
                if (q < width) v[q] = tile[base + ((i64)q << b)];
            }
#pragma unroll
            for (int h = 1; h < (1 << MAX_RADIX_BITS); h <<= 1) {
                if (h < width) {
#pragma unroll
                    for (int q = 0; q < (1 << MAX_RADIX_BITS); q++) {
                        if (q < width && !(q & h)) {
                            const float x = v[q];
                            const float y = v[q | h];
                            v[q] = x + y;
                            v[q | h] = x - y;
                        }
                    }
                }
            }
#pragma unroll
            for (int q = 0; q < (1 << MAX_RADIX_BITS); q++) {
                if (q < width) tile[base + ((i64)q << b)] = v[q];
            }
        }
        __syncthreads();
    }

    // Store.
    for (i64 e = threadIdx.x; e < e_len; e += blockDim.x) {
        const i64 mid = e >> log_t;
        const i64 low = e & (((i64)1 << log_t) - 1);
        const i64 g = row_base + (fixed | (mid << lo) | low);
        float value = tile[e];
        if (last) {
            if (post_vec) value *= post_vec[g];
            if (post_row) value *= post_row[row];
            if (post_sign) value *= (float)post_sign[g];
        }
        dst[g] = value;
    }
}
