#include "allocator.h"

#include <stdlib.h>  // defines __GLIBC__ where the C library is glibc

#if defined(__GLIBC__)
#include <malloc.h>

int guise_keep_freed_memory(void) {
    int a = mallopt(M_MMAP_MAX, 0);
    // -1: never trim (mallopt(3)); a positive int caps the threshold at 2 GB, and a step that
    // frees more than that at once would hand it back only to fault it in again.
    int b = mallopt(M_TRIM_THRESHOLD, -1);
    return a && b;
}

size_t guise_mapped_bytes(void) { return mallinfo2().hblkhd; }
#else
int guise_keep_freed_memory(void) { return 0; }
size_t guise_mapped_bytes(void) { return 0; }
#endif
