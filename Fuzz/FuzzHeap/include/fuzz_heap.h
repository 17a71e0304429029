#include <stddef.h>

/// Heap accounting for the fuzz harnesses, through AddressSanitizer's allocation hooks: the
/// most bytes held at once since the last `fuzz_heap_begin`, over what was held then. The
/// process's RSS is no measure of one input's memory under ASan (shadow memory, quarantine,
/// the fuzzer's own corpus), so the 100 MB budget is checked on this instead.
void fuzz_heap_install(void);
void fuzz_heap_begin(void);
long long fuzz_heap_peak_growth(void);
