"""Which kernels OpenBLAS runs here, for the benchmarks' headers.

Debian's OpenBLAS is built for many CPUs and picks its kernels when it loads, by the CPU's
model. A model it does not know (a newer or a virtualised CPU) gets its generic Prescott (SSE3)
kernels, several times slower than AVX2 ones, whatever instructions the CPU has. Guise then runs
its own AVX2/FMA sgemm (Sources/CGemm; GemmKernel.swift decides, from the same core name)
unless GUISE_GEMM=openblas; PyTorch is unaffected (oneDNN and its own GEMMs).
"""
import ctypes
import os


def openblas_core():
    """OpenBLAS's kernel family as Guise loads it (libopenblas.so.0), or 'unknown'."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


# OpenBLAS kernel families without AVX2 and FMA.
OLDER = {"katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
         "nehalem", "sandybridge", "opteron", "opteron(sse3)", "barcelona", "bobcat", "bulldozer", "piledriver"}


def cpu_has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split()
                    return "avx2" in flags and "fma" in flags
    except OSError:
        pass
    return False


def describe():
    """One line for a benchmark's header."""
    core = openblas_core()
    if core.lower() in OLDER and cpu_has_avx2():
        if os.environ.get("GUISE_GEMM", "").lower() == "openblas":
            return (f"OpenBLAS kernels: {core}, though this CPU has AVX2 and FMA: OpenBLAS did not recognise its "
                    f"model, and GUISE_GEMM=openblas keeps Guise's GEMMs on them, several times slower than AVX2 kernels")
        return (f"OpenBLAS kernels: {core}, though this CPU has AVX2 and FMA (OpenBLAS did not recognise its "
                f"model); Guise runs its own AVX2/FMA sgemm here instead (GemmKernel)")
    return f"OpenBLAS kernels: {core}"


if __name__ == "__main__":
    print(describe())
