import COpenBLAS
import Foundation
import XCTest
@testable import GuiseTensor

/// Every GEMM call runs on one thread (OpenBLAS's kernel or Guise's, `GemmKernel`), large ones
/// split into blocks on the engine's pool: the blocks cover C exactly, plain and transposed
/// operands alike; the bits are the same on every run; and two pipelines on two threads each get
/// the bits they get alone.
final class BLASThreadsTests: XCTestCase {
    func values(_ shape: [Int], _ seed: Int) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { i in Float(sin(Double(i * 7 + seed * 13) * 0.37)) })
    }

    func product(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: Tensor, _ b: Tensor, single: Bool) -> [Float] {
        var c = [Float](repeating: .nan, count: m * n)
        c.withUnsafeMutableBufferPointer { c in
            gemmRowMajor(transA: ta, transB: tb, m: m, n: n, k: k, a.data, lda: ta ? m : k, b.data, ldb: tb ? k : n,
                         beta: 0, c.baseAddress!, ldc: n, singleThreaded: single)
        }
        return c
    }

    func testAProductSplitOverThePoolCoversCAndMatchesOneCall() throws {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        // Wide and tall, each operand plain and transposed, sides not multiples of 16.
        for (m, n, k) in [(361, 1000, 300), (1000, 77, 129)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(ta ? [k, m] : [m, k], m + k), b = values(tb ? [n, k] : [k, n], n)
                let one = product(ta, tb, m, n, k, a, b, single: true)
                XCTAssertTrue(one.allSatisfy(\.isFinite))
                for threads in [2, 3, 5] {
                    Parallel.threads = threads
                    let split = product(ta, tb, m, n, k, a, b, single: false)
                    // NaN-filled beforehand: a block left out, or a NaN, fails here.
                    let worst = zip(split, one).map { abs($0 - $1) }.max()!
                    XCTAssertTrue(split.allSatisfy(\.isFinite), "\(m)×\(n)×\(k) \(ta) \(tb) on \(threads): C not covered")
                    // Rounding of k products of values within ±1 in another order; a block
                    // from the wrong place is off by O(1).
                    XCTAssertLessThan(worst, 2e-6 * Float(k), "\(m)×\(n)×\(k) \(ta) \(tb) on \(threads) threads")
                    XCTAssertEqual(product(ta, tb, m, n, k, a, b, single: false), split, "the same bits again")
                }
            }
        }
        if GemmKernel.active == .openBLAS {
            XCTAssertEqual(openblas_get_num_threads(), 1, "OpenBLAS's own threads stay asleep")
        }
    }

    func testTwoThreadsGetTheBitsEachGetsAlone() throws {
        // A 3×3 convolution (Winograd: GEMMs inside the pool's jobs) and a product large enough to
        // be split across the pool, from two threads at once: whichever holds the pool, the
        // other runs its blocks in turn, with the same bits.
        let x = values([1, 32, 40, 40], 1), w = values([32, 32, 3, 3], 2), b = values([32], 3)
        let p = values([361, 1152], 4), q = values([1152, 128], 5)
        func conv() -> [Float] { NN.conv2d(x, weight: w, bias: b, padding: NN.Padding(1, 1)).values }
        func matmul() -> [Float] { p.matmul(q).values }
        let convAlone = conv(), productAlone = matmul()
        XCTAssertTrue(productAlone.allSatisfy(\.isFinite) && convAlone.allSatisfy(\.isFinite))
        let lock = NSLock()
        var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            for i in 0..<40 {
                let ok = t == 0 ? conv() == convAlone : matmul() == productAlone
                if !ok { lock.lock(); failures.append("\(t == 0 ? "conv" : "product") \(i) differs from its value alone"); lock.unlock() }
            }
        }
        XCTAssertEqual(failures, [])
    }
}
