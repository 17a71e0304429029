#pragma once
// Debian's libopenblas-dev installs cblas.h through the alternatives system.
#include <cblas.h>
// Exposed so benchmarks and tests can pin BLAS threads; never set OPENBLAS_CORETYPE.
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
// The kernel family OpenBLAS picked for this CPU ("Haswell", "SkylakeX", "Prescott", ...).
extern char *openblas_get_corename(void);
