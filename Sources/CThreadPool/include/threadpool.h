#ifndef GUISE_THREADPOOL_H
#define GUISE_THREADPOOL_H

// A tiny fork-join pool for the tensor engine's loops.
//
// A network like BlazeFace is ~100 ops of tens of microseconds each, and every op splits its
// loop across the cores. Waking a sleeping thread per op costs about as much as the op, so
// the pool's workers spin for a while after each job before they sleep, and the calling thread
// takes part in every job instead of waiting.

#include <stdint.h>

// Runs fn(ctx, i) once for every i in 0..<count, spread over the pool's threads and the
// caller. Returns when all have finished. A call made while the pool is busy (from inside a
// job, or from a second thread) runs its items on the calling thread, in order.
void guise_pool_run(int64_t count, void (*fn)(void *ctx, int64_t i), void *ctx);

// Total threads taking part in a job, the caller included (1: everything runs inline).
void guise_pool_set_threads(int threads);
int guise_pool_threads(void);

#endif
