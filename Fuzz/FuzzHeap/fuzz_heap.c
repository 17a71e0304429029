#include "fuzz_heap.h"
#include <sanitizer/allocator_interface.h>

static long long live, base, peak;

static void on_malloc(const volatile void *p, size_t size) {
    (void)p;
    long long now = __atomic_add_fetch(&live, (long long)size, __ATOMIC_RELAXED);
    long long seen = __atomic_load_n(&peak, __ATOMIC_RELAXED);
    while (now > seen && !__atomic_compare_exchange_n(&peak, &seen, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

static void on_free(const volatile void *p) {
    if (p) __atomic_sub_fetch(&live, (long long)__sanitizer_get_allocated_size((const void *)p), __ATOMIC_RELAXED);
}

void fuzz_heap_install(void) { __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free); }

void fuzz_heap_begin(void) {
    base = __atomic_load_n(&live, __ATOMIC_RELAXED);
    __atomic_store_n(&peak, base, __ATOMIC_RELAXED);
}

long long fuzz_heap_peak_growth(void) { return __atomic_load_n(&peak, __ATOMIC_RELAXED) - base; }
