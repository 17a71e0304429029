import COpenBLAS
import Foundation

/// Who sets OpenBLAS's thread count, and when.
///
/// The count is one process-wide setting, and OpenBLAS's sgemm does not give the same bits on
/// one thread as on two (it splits the work differently). Winograd's convolution runs its GEMMs
/// on the engine's pool and wants them single-threaded; every other GEMM wants the default
/// count. Toggling the setting around a Winograd call was exact while one pipeline ran at a
/// time, but with two pipelines on two threads (`guise batch --jobs 2`) one would change the
/// other's GEMMs mid-run, and their save-and-restore could even leave the wrong count behind.
///
/// So every GEMM passes through a gate with the count it needs: GEMMs wanting the same count run
/// side by side, and the count changes only between GEMMs, while none runs. A GEMM therefore
/// always runs on the count its call site asks for, whatever other threads do, and results stay
/// bit-identical to a single pipeline's. No thread waits for anything while inside the gate
/// (a GEMM is a leaf call), so the gate cannot deadlock with the pool; a thread waiting for the
/// other count keeps newcomers of the current count out, so neither side starves.
public enum BLASThreads {
    private static let condition = NSCondition()
    /// The count OpenBLAS is set to now (0 before the first GEMM).
    nonisolated(unsafe) private static var current: Int32 = 0
    /// GEMMs running now, all on `current` threads.
    nonisolated(unsafe) private static var running = 0
    /// Threads waiting to run a GEMM on one thread, and on more (with a default of 1, every
    /// GEMM is in the first group, and nobody waits for a change).
    nonisolated(unsafe) private static var waitingOne = 0
    nonisolated(unsafe) private static var waitingMany = 0

    /// 0 until first read.
    nonisolated(unsafe) private static var defaultValue: Int32 = 0

    /// The count every GEMM but Winograd's runs on: OpenBLAS's own choice when first asked (the
    /// core count, or OPENBLAS_NUM_THREADS), unless set here (benchmarks pin it). Set it rather
    /// than calling `openblas_set_num_threads`, which the next GEMM would undo.
    public static var defaultCount: Int32 {
        get {
            condition.lock()
            defer { condition.unlock() }
            return resolvedDefault()
        }
        set {
            condition.lock()
            defaultValue = max(1, newValue)
            condition.unlock()
        }
    }

    /// Under the lock.
    private static func resolvedDefault() -> Int32 {
        if defaultValue == 0 { defaultValue = max(1, openblas_get_num_threads()) }
        return defaultValue
    }

    /// Runs `gemm` with OpenBLAS on one thread (`single`) or on the default count.
    @inline(__always)
    static func run(single: Bool, _ gemm: () -> Void) {
        condition.lock()
        let wanted: Int32 = single ? 1 : resolvedDefault()
        // Join GEMMs already on this count unless a thread waits for the other one; switch the
        // count when nothing runs.
        func mayEnter() -> Bool {
            let othersWaiting = wanted == 1 ? waitingMany : waitingOne
            return (current == wanted && othersWaiting == 0) || (running == 0 && current != wanted)
        }
        if !mayEnter() {
            if wanted == 1 { waitingOne += 1 } else { waitingMany += 1 }
            repeat { condition.wait() } while !mayEnter()
            if wanted == 1 { waitingOne -= 1 } else { waitingMany -= 1 }
        }
        if current != wanted {
            openblas_set_num_threads(wanted)
            current = wanted
        }
        running += 1
        if waitingOne + waitingMany > 0 { condition.broadcast() }
        condition.unlock()
        gemm()
        condition.lock()
        running -= 1
        if running == 0 && waitingOne + waitingMany > 0 { condition.broadcast() }
        condition.unlock()
    }
}
