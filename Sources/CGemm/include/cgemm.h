#pragma once
#include <stddef.h>

/// 1 when this build has the AVX2/FMA kernel and the CPU it runs on has AVX2 and FMA.
int guise_sgemm_available(void);

/// Row-major single-precision GEMM on the calling thread: C = alpha·op(A)·op(B) + beta·C, with
/// op(A) m×k and op(B) k×n; cblas_sgemm's contract (beta = 0 ignores C's old values).
/// Only call it when guise_sgemm_available() says 1.
void guise_sgemm(int transA, int transB, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                 const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                 float beta, float *c, ptrdiff_t ldc);
