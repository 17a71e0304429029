#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

enum { MAX_WORKERS = 63 };

// How long an idle worker polls for the next job before it sleeps. A network's ops follow each
// other within microseconds; a pause longer than this (I/O, a BLAS call with its own threads)
// costs one wake-up per worker.
static const int64_t SPIN_NANOSECONDS = 200000;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_flag busy;              // held by the caller whose job is running
    // The job's generation (high 32 bits) and its next unclaimed item (low 32 bits), in one
    // word: a worker claims an item by a compare-and-swap that also proves the job is still
    // the one it woke for, so a worker arriving late from an earlier job can never run an
    // item of the next one with that job's count, or claim an item twice.
    _Atomic uint64_t ticket;
    _Atomic int64_t count;         // items in the current job
    _Atomic int64_t done;          // items finished
    void (*fn)(void *, int64_t);   // read only after a successful claim
    void *ctx;
    uint32_t generation;           // the caller's copy of the current generation
    int workers;                   // started so far
    _Atomic int wanted;            // workers that take part in jobs
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .busy = ATOMIC_FLAG_INIT,
};

static _Thread_local bool inside_job;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint32_t generation_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }

// Claims and runs items of job `gen` until none are left or another job has started.
static void work(uint32_t gen) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        if (generation_of(t) != gen) return;
        int64_t i = (int64_t)(t & 0xffffffffu);
        if (i >= atomic_load_explicit(&pool.count, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        // The claim succeeded, so the job is `gen` and cannot end before this item is done:
        // fn and ctx are its own.
        pool.fn(pool.ctx, i);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg;
    inside_job = true;
    uint32_t seen = generation_of(atomic_load_explicit(&pool.ticket, memory_order_acquire));
    for (;;) {
        uint32_t g = generation_of(atomic_load_explicit(&pool.ticket, memory_order_acquire));
        if (g == seen) {
            int64_t start = now_ns();
            int polls = 0;
            while ((g = generation_of(atomic_load_explicit(&pool.ticket, memory_order_acquire))) == seen) {
                cpu_relax();
                // Yield now and then: when the machine is busy and this thread shares a core
                // with the caller, spinning would take the time the caller needs.
                if (++polls % 16 == 0) {
                    sched_yield();
                    if (now_ns() - start > SPIN_NANOSECONDS) break;
                }
            }
            if (g == seen) {
                pthread_mutex_lock(&pool.lock);
                while ((g = generation_of(atomic_load_explicit(&pool.ticket, memory_order_acquire))) == seen)
                    pthread_cond_wait(&pool.wake, &pool.lock);
                pthread_mutex_unlock(&pool.lock);
            }
        }
        seen = g;
        if (index < atomic_load_explicit(&pool.wanted, memory_order_relaxed)) work(g);
    }
    return NULL;
}

void guise_pool_set_threads(int threads) {
    int w = threads - 1;
    if (w < 0) w = 0;
    if (w > MAX_WORKERS) w = MAX_WORKERS;
    atomic_store(&pool.wanted, w);
}

int guise_pool_threads(void) { return atomic_load(&pool.wanted) + 1; }

static void start_workers(int wanted) {
    while (pool.workers < wanted) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)pool.workers) != 0) {
            pthread_attr_destroy(&attr);
            atomic_store(&pool.wanted, pool.workers);  // run with the threads we have
            return;
        }
        pthread_attr_destroy(&attr);
        pool.workers++;
    }
}

void guise_pool_run(int64_t count, void (*fn)(void *ctx, int64_t i), void *ctx) {
    int wanted = atomic_load(&pool.wanted);
    if (count <= 1 || count > 0xffffffffLL || wanted == 0 || inside_job || atomic_flag_test_and_set(&pool.busy)) {
        for (int64_t i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    start_workers(wanted);
    // Close the previous job's ticket first: a worker still on its way out of it may have read
    // its ticket and be about to compare its next item with `count`; it must fail to claim, not
    // see this job's larger count and run an item twice.
    atomic_store_explicit(&pool.ticket, ((uint64_t)pool.generation << 32) | 0xffffffffu, memory_order_release);
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store_explicit(&pool.count, count, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint32_t gen = ++pool.generation;
    // The lock orders the new ticket against a worker that is about to sleep, so none misses it;
    // the release publishes fn, ctx, count and done with it.
    pthread_mutex_lock(&pool.lock);
    atomic_store_explicit(&pool.ticket, (uint64_t)gen << 32, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    inside_job = true;
    work(gen);
    inside_job = false;
    // The last items may be on a worker that a busy machine has descheduled: yield to it.
    for (int spins = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < count; spins++) {
        cpu_relax();
        if (spins % 16 == 0) sched_yield();
    }
    atomic_flag_clear(&pool.busy);
}
