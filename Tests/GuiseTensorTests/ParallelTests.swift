import CThreadPool
import Foundation
import XCTest
@testable import GuiseTensor
import GuiseTestSupport

/// The engine's thread pool: every index exactly once, whatever the split, and calls made
/// from inside a job or from several threads at once run without deadlock or overlap.
final class ParallelTests: XCTestCase {
    /// Marks each index it is given; returns how often each was visited.
    func visits(_ count: Int, minChunk: Int) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
        hits.initialize(repeating: 0, count: max(count, 1))
        defer { hits.deallocate() }
        Parallel.forEach(count, minChunk: minChunk) { r in
            // Ranges are disjoint, so unsynchronised writes to distinct slots are safe.
            for i in r { hits[i] += 1 }
        }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    func testEveryIndexOnce() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for threads in [1, 2, 4] {
            Parallel.threads = threads
            XCTAssertEqual(Parallel.threads, threads)
            for (count, minChunk) in [(0, 1), (1, 1), (7, 1), (100, 1), (1000, 3), (100_000, 4096), (5, 4096)] {
                let v = visits(count, minChunk: minChunk)
                XCTAssertEqual(v, [Int](repeating: 1, count: count), "\(threads) threads, \(count) items, chunks of \(minChunk)")
            }
        }
    }

    /// Thousands of tiny jobs back to back: a worker arriving late from one job must never
    /// claim an item of the next twice or let the caller return before its items are done
    /// (that once ended in "closure argument was escaped" from withoutActuallyEscaping).
    func testRapidSuccessiveJobs() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: 16)
        defer { hits.deallocate() }
        // Two busy threads competing for the cores for a second make workers late and
        // preempted, which is when such races show (without them a pool that let a worker claim an
        // item of the next job passed about two runs in three).
        let spinners = DispatchGroup(), deadline = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
        for _ in 0..<2 {
            DispatchQueue.global().async(group: spinners) {
                while DispatchTime.now().uptimeNanoseconds < deadline {}
            }
        }
        defer { spinners.wait() }
        var bad = 0
        for k in 0..<200_000 {
            let count = 2 + k % 9
            hits.initialize(repeating: 0, count: count)
            Parallel.forEach(count, minChunk: 1) { r in for i in r { hits[i] += 1 } }
            for i in 0..<count where hits[i] != 1 { bad += 1 }
        }
        XCTAssertEqual(bad, 0)
    }

    /// The pool itself, a million tiny jobs of 2–10 items with busy threads competing: every
    /// item of every job runs exactly once before the call returns. (A worker leaving one job
    /// could once read the next job's larger count and run its last item a second time.)
    func testPoolRunsEachItemOnceAcrossManyJobs() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let spinners = DispatchGroup(), deadline = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        for _ in 0..<2 {
            DispatchQueue.global().async(group: spinners) {
                while DispatchTime.now().uptimeNanoseconds < deadline {}
            }
        }
        defer { spinners.wait() }
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: 16)
        defer { hits.deallocate() }
        var bad = 0
        for k in 0..<1_000_000 {
            let count = 2 + k % 9
            hits.initialize(repeating: 0, count: count)
            guise_pool_run(Int64(count), { ctx, i in
                ctx!.assumingMemoryBound(to: Int.self)[Int(i)] += 1
            }, hits)
            for i in 0..<count where hits[i] != 1 { bad += 1 }
        }
        XCTAssertEqual(bad, 0)
    }

    /// A loop inside a loop runs inline on whichever thread got the outer piece.
    func testNestedCallsComplete() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let inner = UnsafeMutablePointer<Int>.allocate(capacity: 64 * 50)
        inner.initialize(repeating: 0, count: 64 * 50)
        defer { inner.deallocate() }
        Parallel.forEach(64, minChunk: 1) { r in
            for i in r {
                Parallel.forEach(50, minChunk: 1) { q in for j in q { inner[i * 50 + j] += 1 } }
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: inner, count: 64 * 50)), [Int](repeating: 1, count: 64 * 50))
    }

    /// Callers on other threads while the pool is busy fall back to running inline.
    func testConcurrentCallersEachGetTheirWholeRange() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 2
        let lock = NSLock()
        var sums = [Int](repeating: 0, count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            var total = 0
            for _ in 0..<20 {
                let v = self.visits(5000 + k, minChunk: 64)
                total += v.reduce(0, +)
                if v.contains(where: { $0 != 1 }) { total = -1_000_000 }
            }
            lock.lock(); sums[k] = total; lock.unlock()
        }
        XCTAssertEqual(sums, (0..<8).map { 20 * (5000 + $0) })
    }
}

/// Results never depend on which thread finished first: the Winograd weight gradient, which
/// sums per-thread partials, is bit-identical across runs with more pieces than cores.
final class DeterminismTests: XCTestCase {
    func testWinogradWeightGradientIsBitIdenticalAcrossRuns() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 4
        let x = randomTensor([2, 16, 24, 24], seed: 1), w = randomTensor([16, 16, 3, 3], seed: 2, scale: 0.2)
        let seed = randomTensor([2, 16, 24, 24], seed: 3)
        func weightGrad() -> [Float] {
            let ws = w.copy()
            ws.requiresGrad = true
            (NN.conv2d(x, weight: ws, padding: 1) * seed).sum().backward()
            return ws.grad!.values
        }
        let first = weightGrad()
        for _ in 0..<24 { XCTAssertEqual(weightGrad(), first) }
    }
}

/// With freed memory kept, a large buffer comes from the heap, not from a fresh mapping that the
/// kernel must zero page by page.
final class AllocatorTests: XCTestCase {
    func testLargeBuffersComeFromTheHeapOnceFreedMemoryIsKept() throws {
        // Guise builds on glibc (Debian, x86-64 and arm64), where the switches exist.
        XCTAssertTrue(Allocator.keepFreedMemory())
        let before = guise_mapped_bytes()
        let count = 16 << 20  // 64 MB of floats, above glibc's largest mmap threshold
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        buffer.initialize(repeating: 1, count: count)
        let during = guise_mapped_bytes()
        XCTAssertEqual(buffer[count - 1], 1)
        buffer.deallocate()
        XCTAssertLessThan(during, before + count * 4, "a 64 MB buffer was mapped: \(during - before) bytes more")
    }
}
