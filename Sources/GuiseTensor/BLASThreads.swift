import COpenBLAS

/// OpenBLAS runs every GEMM on the thread that calls it; the engine's pool supplies the threads.
///
/// OpenBLAS's own threads spin, yielding, for about a tenth of a second after each GEMM they
/// take part in. Between the GEMMs of a network the engine's pool runs everything else
/// (Winograd's transforms, norms, activations), so those spinners took turns with the pool's
/// threads on the same cores: about 7 % of a DiffFace step's samples were in the scheduler,
/// under `sched_yield`. With OpenBLAS on one
/// thread its workers never wake, and a large GEMM is split into blocks of C on the pool
/// instead (`pooledGemm`), whose workers only spin for 0.2 ms.
///
/// The count is one process-wide setting, and a GEMM's bits depend on how its work is split; it
/// is set once, here, before the engine's first GEMM, and the split depends only on the shapes
/// and the pool's thread count. Two pipelines on two threads (`guise batch --jobs 2`) therefore
/// get exactly the bits each gets alone.
enum BLASThreads {
    private static let single: Void = { openblas_set_num_threads(1) }()

    @inline(__always)
    static func run(_ gemm: () -> Void) {
        _ = single
        gemm()
    }
}
