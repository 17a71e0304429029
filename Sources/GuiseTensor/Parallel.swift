import Foundation

/// Work splitting for glue ops. GEMM threads inside OpenBLAS; everything else
/// (im2col, norms, activations) is split here, across the machine's cores.
public enum Parallel {
    public static var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint sub-ranges of `0..<count` covering it exactly.
    /// Small jobs stay on the calling thread: a dispatch costs a few microseconds.
    @inlinable
    public static func forEach(_ count: Int, minChunk: Int = 4096, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threads, max(1, count / max(minChunk, 1)))
        if chunks == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
