import CThreadPool
import Foundation

/// Work splitting for glue ops. GEMM threads inside OpenBLAS; everything else
/// (im2col, convolutions, norms, activations) is split here, across the machine's cores,
/// on a pool whose workers spin briefly between jobs (Sources/CThreadPool): the small ops of
/// the embedded networks are over before a sleeping thread would have woken up.
public enum Parallel {
    /// Threads taking part in a loop, the calling one included.
    public static var threads: Int {
        get { _ = configured; return Int(guise_pool_threads()) }
        set { _ = configured; guise_pool_set_threads(Int32(max(1, newValue))) }
    }

    /// Sets the default, the machine's core count, once before first use.
    private static let configured: Void = {
        guise_pool_set_threads(Int32(max(1, ProcessInfo.processInfo.activeProcessorCount)))
    }()

    /// Calls `body` on disjoint sub-ranges of `0..<count` covering it exactly, possibly several
    /// per thread: a few more pieces than threads, so a worker that starts late doesn't leave
    /// the caller waiting with nothing to do. Small jobs stay on the calling thread.
    ///
    /// The pieces depend only on `count`, `minChunk`, `maxChunks` and the thread count, never on
    /// timing; a caller that combines per-piece results must do so in range order to stay
    /// deterministic. `maxChunks` caps the pieces where each one holds a large buffer.
    public static func forEach(_ count: Int, minChunk: Int = 4096, maxChunks: Int? = nil, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let t = threads
        let chunks = min(t == 1 ? 1 : 3 * t, maxChunks ?? .max, max(1, count / max(minChunk, 1)))
        if chunks == 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            var job = Job(count: count, chunks: chunks, body: body)
            withUnsafeMutablePointer(to: &job) { ptr in
                guise_pool_run(Int64(chunks), { ctx, c in
                    let job = ctx!.assumingMemoryBound(to: Job.self).pointee
                    let c = Int(c)
                    let lo = job.count * c / job.chunks, hi = job.count * (c + 1) / job.chunks
                    if lo < hi { job.body(lo..<hi) }
                }, ptr)
            }
        }
    }

    private struct Job {
        let count: Int, chunks: Int
        let body: (Range<Int>) -> Void
    }
}
