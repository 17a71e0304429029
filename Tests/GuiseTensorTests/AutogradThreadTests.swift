import XCTest
import Foundation
@testable import GuiseTensor

/// The recording switch belongs to a thread: an inference under `noGrad` on one thread must not
/// turn off the tape of a gradient computation running at the same time on another.
final class AutogradThreadTests: XCTestCase {
    private func values(_ shape: [Int], _ seed: Int) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { i in Float(sin(Double(i * 7 + seed * 13) * 0.37)) })
    }

    func testNoGradOnOneThreadLeavesAnotherThreadsGradientIntact() throws {
        // Inference: a conv whose weight requires a gradient, run under noGrad.
        let image = values([1, 4, 12, 12], 1)
        let convWeight = values([8, 4, 3, 3], 2)
        convWeight.requiresGrad = true
        let convBias = values([8], 3)
        func infer() -> Tensor {
            Autograd.noGrad { NN.conv2d(image, weight: convWeight, bias: convBias, padding: 1).silu() }
        }
        // Gradient: d/dx Σ (silu(W·x + b))².
        let x = values([3, 16], 4)
        let w = values([10, 16], 5), b = values([10], 6)
        func gradient() -> (value: Tensor, gradient: Tensor) {
            valueAndGradient(at: x) { x in
                let h = NN.linear(x, weight: w, bias: b).silu()
                return (h * h).sum()
            }
        }

        let inferenceAlone = infer()
        let gradientAlone = gradient()
        XCTAssertNil(inferenceAlone.gradFn)
        XCTAssertTrue(gradientAlone.gradient.values.allSatisfy { $0.isFinite })
        XCTAssertGreaterThan(gradientAlone.gradient.values.map(abs).max() ?? 0, 0.1, "the reference gradient must not vanish")

        let iterations = 3000
        let lock = NSLock()
        var failures: [String] = []
        func fail(_ message: String) {
            lock.lock()
            if failures.count < 5 { failures.append(message) }
            lock.unlock()
        }
        let done = DispatchGroup()
        let inferenceThread = Thread {
            for i in 0..<iterations {
                let y = infer()
                if y.gradFn != nil { fail("inference \(i) recorded an op inside noGrad") }
                if y.values != inferenceAlone.values { fail("inference \(i) differs from the value computed alone") }
            }
            done.leave()
        }
        let gradientThread = Thread {
            for i in 0..<iterations {
                let r = gradient()
                if r.value.values != gradientAlone.value.values { fail("loss \(i) differs from the value computed alone") }
                if r.gradient.values != gradientAlone.gradient.values {
                    fail("gradient \(i) differs from the one computed alone (max |g| \(r.gradient.values.map(abs).max() ?? 0))")
                }
            }
            done.leave()
        }
        done.enter()
        done.enter()
        inferenceThread.start()
        gradientThread.start()
        done.wait()
        XCTAssertEqual(failures, [])
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
            var other = false
            let sem = DispatchSemaphore(value: 0)
            Thread { other = Autograd.isEnabled; sem.signal() }.start()
            sem.wait()
            XCTAssertTrue(other, "a new thread starts with recording on")
        }
        XCTAssertTrue(Autograd.isEnabled)
    }
}
