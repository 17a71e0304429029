// A GEMM in the usual three-level blocking: op(B) is packed in KC×NC blocks as panels of NR
// columns, op(A) is taken in MC×KC blocks as panels of MR rows (packed when transposed, read in
// place when plain), and a 6×16 micro-kernel keeps its tile of C in 12 AVX registers while it
// walks a panel pair along k. Every element of C sums its k products in the same order
// (KC-blocks in turn, FMA within each), whatever m, n and the caller's split, so a block of C
// gets the same bits as the whole product would.
#include "cgemm.h"
#include <pthread.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

enum { MR = 6, NR = 16, KC = 256, MC = 144, NC = 2048 };

int guise_sgemm_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Per-thread packing buffers, grown on demand and kept: the engine's pool threads live as
// long as the process, and every GEMM they run reuses them. A thread that ends (a batch
// worker) frees its own.
struct buffers { float *a, *b; size_t aCap, bCap; };
static pthread_key_t buffersKey;
static pthread_once_t buffersOnce = PTHREAD_ONCE_INIT;

static void free_buffers(void *p) {
    struct buffers *q = p;
    free(q->a);
    free(q->b);
    free(q);
}

static void make_buffers_key(void) {
    if (pthread_key_create(&buffersKey, free_buffers) != 0) abort();
}

static struct buffers *thread_buffers(void) {
    pthread_once(&buffersOnce, make_buffers_key);
    struct buffers *q = pthread_getspecific(buffersKey);
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q || pthread_setspecific(buffersKey, q) != 0) abort();
    }
    return q;
}

static float *grow(float **buf, size_t *cap, size_t count) {
    if (*cap < count) {
        free(*buf);
        *buf = aligned_alloc(64, (count * sizeof(float) + 63) & ~(size_t)63);
        if (!*buf) abort();
        *cap = count;
    }
    return *buf;
}

// op(A)[i0 ..< i0+mc, p0 ..< p0+kc] as panels of MR rows: panel r holds, for each kk, the MR
// values of column kk; rows past mc are zero.
static void pack_a(int trans, const float *a, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t p0,
                   ptrdiff_t mc, ptrdiff_t kc, float *dst) {
    for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
        ptrdiff_t rows = mc - ir < MR ? mc - ir : MR;
        float *d = dst + ir * kc;
        if (!trans) {
            for (ptrdiff_t i = 0; i < rows; i++) {
                const float *src = a + (i0 + ir + i) * lda + p0;
                for (ptrdiff_t kk = 0; kk < kc; kk++) d[kk * MR + i] = src[kk];
            }
        } else {
            for (ptrdiff_t kk = 0; kk < kc; kk++) {
                const float *src = a + (p0 + kk) * lda + i0 + ir;
                for (ptrdiff_t i = 0; i < rows; i++) d[kk * MR + i] = src[i];
            }
        }
        if (rows < MR)
            for (ptrdiff_t kk = 0; kk < kc; kk++)
                for (ptrdiff_t i = rows; i < MR; i++) d[kk * MR + i] = 0;
    }
}

// op(B)[p0 ..< p0+kc, j0 ..< j0+nc] as panels of NR columns: panel r holds, for each kk, the
// NR values of row kk; columns past nc are zero.
static void pack_b(int trans, const float *b, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t j0,
                   ptrdiff_t kc, ptrdiff_t nc, float *dst) {
    for (ptrdiff_t jr = 0; jr < nc; jr += NR) {
        ptrdiff_t cols = nc - jr < NR ? nc - jr : NR;
        float *d = dst + jr * kc;
        if (!trans) {
            if (cols == NR) {
                for (ptrdiff_t kk = 0; kk < kc; kk++) {
                    const float *src = b + (p0 + kk) * ldb + j0 + jr;
                    _mm256_store_ps(d + kk * NR, _mm256_loadu_ps(src));
                    _mm256_store_ps(d + kk * NR + 8, _mm256_loadu_ps(src + 8));
                }
            } else {
                for (ptrdiff_t kk = 0; kk < kc; kk++) {
                    const float *src = b + (p0 + kk) * ldb + j0 + jr;
                    for (ptrdiff_t j = 0; j < cols; j++) d[kk * NR + j] = src[j];
                    for (ptrdiff_t j = cols; j < NR; j++) d[kk * NR + j] = 0;
                }
            }
        } else {
            for (ptrdiff_t j = 0; j < cols; j++) {
                const float *src = b + (j0 + jr + j) * ldb + p0;
                for (ptrdiff_t kk = 0; kk < kc; kk++) d[kk * NR + j] = src[kk];
            }
            for (ptrdiff_t j = cols; j < NR; j++)
                for (ptrdiff_t kk = 0; kk < kc; kk++) d[kk * NR + j] = 0;
        }
    }
}

// C tile (mr ≤ MR rows, nr ≤ NR columns) = alpha·(A panel · B panel) + beta·C tile, where
// beta = 0 means C's old values are not read. Row i of the A panel at column kk is
// a[i·ars + kk·acs]: a packed panel (1, MR) or op(A) read where it lies (lda, 1 plain; 1, lda
// transposed).
static inline __attribute__((always_inline)) void
kernel(ptrdiff_t kc, const float *restrict a, ptrdiff_t ars, ptrdiff_t acs, const float *restrict b, float alpha,
       float beta, float *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma clang loop unroll_count(4)
    for (ptrdiff_t kk = 0; kk < kc; kk++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a + 0 * ars); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1 * ars); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2 * ars); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3 * ars); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4 * ars); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5 * ars); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
        a += acs;
        b += NR;
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++) {
            float *row = c + i * ldc;
            __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
            if (beta != 0) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
            }
            _mm256_storeu_ps(row, r0);
            _mm256_storeu_ps(row + 8, r1);
        }
        return;
    }
    // Edge tiles go through memory with the same arithmetic, element by element.
    float tile[MR][NR] __attribute__((aligned(32)));
    for (int i = 0; i < MR; i++) {
        _mm256_store_ps(tile[i], _mm256_mul_ps(va, acc[i][0]));
        _mm256_store_ps(tile[i] + 8, _mm256_mul_ps(va, acc[i][1]));
    }
    for (ptrdiff_t i = 0; i < mr; i++)
        for (ptrdiff_t j = 0; j < nr; j++) {
            float *e = c + i * ldc + j;
            *e = beta != 0 ? __builtin_fmaf(beta, *e, tile[i][j]) : tile[i][j];
        }
}

void guise_sgemm(int transA, int transB, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                 const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                 float beta, float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) {
        // No products: C = beta·C, with beta = 0 clearing C whatever it held.
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
    ptrdiff_t ncMax = n < NC ? (n + NR - 1) / NR * NR : NC;
    ptrdiff_t kcMax = k < KC ? k : KC;
    struct buffers *buf = thread_buffers();
    float *pb = grow(&buf->b, &buf->bCap, (size_t)(kcMax * ncMax));
    ptrdiff_t mcMax = m < MC ? (m + MR - 1) / MR * MR : MC;
    float *pa = grow(&buf->a, &buf->aCap, (size_t)(kcMax * mcMax));
    for (ptrdiff_t jc = 0; jc < n; jc += NC) {
        ptrdiff_t nc = n - jc < NC ? n - jc : NC;
        for (ptrdiff_t pc = 0; pc < k; pc += KC) {
            ptrdiff_t kc = k - pc < KC ? k - pc : KC;
            float betaBlock = pc == 0 ? beta : 1;
            pack_b(transB, b, ldb, pc, jc, kc, nc, pb);
            for (ptrdiff_t ic = 0; ic < m; ic += MC) {
                ptrdiff_t mc = m - ic < MC ? m - ic : MC;
                // A plain op(A)'s full panels of MR rows are read where they lie (six rows, each
                // along k): packing them cost as much as the products when n is a few tiles
                // (Winograd's GEMMs). A transposed op(A) would be read down columns, one cache
                // line per k for six floats, so it is packed, as is a last, partial panel (zero
                // rows below it, so no kernel reads past A).
                ptrdiff_t direct = transA ? 0 : mc / MR * MR;
                pack_a(transA, a, lda, ic + direct, pc, mc - direct, kc, pa);
                for (ptrdiff_t jr = 0; jr < nc; jr += NR) {
                    ptrdiff_t nr = nc - jr < NR ? nc - jr : NR;
                    for (ptrdiff_t ir = 0; ir < direct; ir += MR)
                        kernel(kc, a + (ic + ir) * lda + pc, lda, 1, pb + jr * kc, alpha, betaBlock,
                               c + (ic + ir) * ldc + jc + jr, ldc, MR, nr);
                    for (ptrdiff_t ir = direct; ir < mc; ir += MR) {
                        ptrdiff_t mr = mc - ir < MR ? mc - ir : MR;
                        kernel(kc, pa + (ir - direct) * kc, 1, MR, pb + jr * kc, alpha, betaBlock,
                               c + (ic + ir) * ldc + jc + jr, ldc, mr, nr);
                    }
                }
            }
        }
    }
}

#else

int guise_sgemm_available(void) { return 0; }

void guise_sgemm(int transA, int transB, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                 const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                 float beta, float *c, ptrdiff_t ldc) {
    (void)transA; (void)transB; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
    (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    abort();  // callers check guise_sgemm_available() first
}

#endif
