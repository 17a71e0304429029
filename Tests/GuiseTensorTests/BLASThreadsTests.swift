import Foundation
import XCTest
@testable import GuiseTensor

/// OpenBLAS's thread count is process-wide and changes sgemm's bits; Winograd runs its GEMMs on
/// one thread. Two pipelines on two threads must each get the bits they get alone.
final class BLASThreadsTests: XCTestCase {
    func values(_ shape: [Int], _ seed: Int) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { i in Float(sin(Double(i * 7 + seed * 13) * 0.37)) })
    }

    func testWinogradOnOneThreadLeavesAnotherThreadsGEMMsOnTheirOwnCount() throws {
        // A 3×3 convolution (Winograd: single-threaded GEMMs on the pool) and a plain product
        // big enough for OpenBLAS to split over its threads.
        let x = values([1, 32, 40, 40], 1), w = values([32, 32, 3, 3], 2), b = values([32], 3)
        let p = values([361, 1152], 4), q = values([1152, 128], 5)
        func conv() -> [Float] { NN.conv2d(x, weight: w, bias: b, padding: NN.Padding(1, 1)).values }
        func product() -> [Float] { p.matmul(q).values }
        let convAlone = conv(), productAlone = product()
        XCTAssertTrue(productAlone.allSatisfy(\.isFinite) && convAlone.allSatisfy(\.isFinite))
        if BLASThreads.defaultCount > 1 {
            var single = [Float](repeating: 0, count: 361 * 128)
            single.withUnsafeMutableBufferPointer { c in
                gemmRowMajor(m: 361, n: 128, k: 1152, p.data, lda: 1152, q.data, ldb: 128, beta: 0, c.baseAddress!, ldc: 128, singleThreaded: true)
            }
            XCTAssertNotEqual(single, productAlone, "this product must differ on one BLAS thread, or the test shows nothing")
        }
        let lock = NSLock()
        var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            for i in 0..<40 {
                let ok = t == 0 ? conv() == convAlone : product() == productAlone
                if !ok { lock.lock(); failures.append("\(t == 0 ? "conv" : "product") \(i) differs from its value alone"); lock.unlock() }
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(product(), productAlone, "the default count is back once both are done")
    }

    func testADefaultOfOneThreadRunsBothKindsSideBySide() throws {
        // With one BLAS thread as the default, Winograd's GEMMs and the others want the same
        // count: none may wait for the other to change it.
        let saved = BLASThreads.defaultCount
        BLASThreads.defaultCount = 1
        defer { BLASThreads.defaultCount = saved }
        let x = values([1, 32, 24, 24], 1), w = values([32, 32, 3, 3], 2)
        let p = values([200, 300], 4), q = values([300, 64], 5)
        let convAlone = NN.conv2d(x, weight: w, bias: nil, padding: NN.Padding(1, 1)).values, productAlone = p.matmul(q).values
        let done = DispatchSemaphore(value: 0)
        let lock = NSLock()
        var failures = 0
        for t in 0..<2 {
            Thread {
                for _ in 0..<50 {
                    let ok = t == 0 ? NN.conv2d(x, weight: w, bias: nil, padding: NN.Padding(1, 1)).values == convAlone
                                    : p.matmul(q).values == productAlone
                    if !ok { lock.lock(); failures += 1; lock.unlock() }
                }
                done.signal()
            }.start()
        }
        for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the gate deadlocked") }
        XCTAssertEqual(failures, 0)
    }
}
