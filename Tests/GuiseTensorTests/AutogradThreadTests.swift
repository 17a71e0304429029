import XCTest
import Foundation
@testable import GuiseTensor

/// The recording switch belongs to a thread: an inference under `noGrad` on one thread must not
/// turn off the tape of a gradient computation running at the same time on another.
final class AutogradThreadTests: XCTestCase {
    /// The two computations and the failures they report. Its tensors are only read once built,
    /// so both threads may share it.
    private final class Scenario: @unchecked Sendable {
        let image = Scenario.values([1, 4, 12, 12], 1)
        let convWeight = Scenario.values([8, 4, 3, 3], 2)
        let convBias = Scenario.values([8], 3)
        let x = Scenario.values([3, 16], 4)
        let w = Scenario.values([10, 16], 5), b = Scenario.values([10], 6)
        private let lock = NSLock()
        private(set) var failures: [String] = []

        init() { convWeight.requiresGrad = true }

        static func values(_ shape: [Int], _ seed: Int) -> Tensor {
            let n = shape.reduce(1, *)
            return Tensor(shape: shape, values: (0..<n).map { i in Float(sin(Double(i * 7 + seed * 13) * 0.37)) })
        }

        /// A conv whose weight requires a gradient, run under noGrad.
        func infer() -> Tensor {
            Autograd.noGrad { NN.conv2d(image, weight: convWeight, bias: convBias, padding: 1).silu() }
        }

        /// d/dx Σ (silu(W·x + b))².
        func gradient() -> (value: Tensor, gradient: Tensor) {
            valueAndGradient(at: x) { x in
                let h = NN.linear(x, weight: w, bias: b).silu()
                return (h * h).sum()
            }
        }

        func fail(_ message: String) {
            lock.lock()
            if failures.count < 5 { failures.append(message) }
            lock.unlock()
        }
    }

    func testNoGradOnOneThreadLeavesAnotherThreadsGradientIntact() throws {
        let s = Scenario()
        let inferenceAlone = s.infer()
        let gradientAlone = s.gradient()
        XCTAssertNil(inferenceAlone.gradFn)
        XCTAssertTrue(gradientAlone.gradient.values.allSatisfy { $0.isFinite })
        XCTAssertGreaterThan(gradientAlone.gradient.values.map(abs).max() ?? 0, 0.1, "the reference gradient must not vanish")

        let iterations = 3000
        let done = DispatchGroup()
        done.enter()
        done.enter()
        Thread {
            for i in 0..<iterations {
                let y = s.infer()
                if y.gradFn != nil { s.fail("inference \(i) recorded an op inside noGrad") }
                if y.values != inferenceAlone.values { s.fail("inference \(i) differs from the value computed alone") }
            }
            done.leave()
        }.start()
        Thread {
            for i in 0..<iterations {
                let r = s.gradient()
                if r.value.values != gradientAlone.value.values { s.fail("loss \(i) differs from the value computed alone") }
                if r.gradient.values != gradientAlone.gradient.values {
                    s.fail("gradient \(i) differs from the one computed alone (max |g| \(r.gradient.values.map(abs).max() ?? 0))")
                }
            }
            done.leave()
        }.start()
        done.wait()
        XCTAssertEqual(s.failures, [])
        XCTAssertTrue(Autograd.isEnabled, "the test thread's own switch must be untouched")
    }

    func testNoGradNestsAndRestoresPerThread() {
        XCTAssertTrue(Autograd.isEnabled)
        Autograd.noGrad {
            XCTAssertFalse(Autograd.isEnabled)
            Autograd.noGrad { XCTAssertFalse(Autograd.isEnabled) }
            XCTAssertFalse(Autograd.isEnabled)
            Autograd.enableGrad { XCTAssertTrue(Autograd.isEnabled) }
            XCTAssertFalse(Autograd.isEnabled)
            final class Seen: @unchecked Sendable { var enabled = false }
            let seen = Seen()
            let sem = DispatchSemaphore(value: 0)
            Thread { seen.enabled = Autograd.isEnabled; sem.signal() }.start()
            sem.wait()
            XCTAssertTrue(seen.enabled, "a new thread starts with recording on")
        }
        XCTAssertTrue(Autograd.isEnabled)
    }
}
