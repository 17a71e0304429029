#ifndef GUISE_ALLOCATOR_H
#define GUISE_ALLOCATOR_H

#include <stddef.h>

// Keeps freed memory in the process for the next allocation (glibc: no mmap'd chunks, no heap
// trimming). Returns 1 where it took effect, 0 where the C library has no such switches.
int guise_keep_freed_memory(void);

// Bytes the allocator holds in mmap'd chunks now (0 where it cannot tell), for tests.
size_t guise_mapped_bytes(void);

#endif
