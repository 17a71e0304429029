import XCTest
@testable import GuiseTensor
import GuiseTestSupport

final class AutogradTests: XCTestCase {
    func testInferenceRecordsNothing() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3], values: [1, 1, 1])
        let c = a * b + a
        XCTAssertNil(c.gradFn)
    }

    func testBroadcastProductGradient() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3], values: [2, 3, 4])
        b.requiresGrad = true
        let y = (a * b).summed(toShape: [])
        y.backward()
        XCTAssertEqual(b.grad?.values, [5, 7, 9])
    }
}

final class GradCheckSelfTest: XCTestCase {
    func testElementwiseOpsMatchFiniteDifferences() {
        let a = randomTensor([2, 3, 4], seed: 1)
        let b = randomTensor([3, 1], seed: 2).scaled(1, plus: 3)
        assertGradientsMatchFiniteDifferences([a, b]) { x in (x[0] * x[1] - x[0]) / x[1] + x[1] }
    }
}

final class GraphOrderTests: XCTestCase {
    /// y = a·b with b = 2a: the op making b feeds y and is itself fed by a's op, whichever
    /// input the traversal meets first. A wrong topological order drops b's contribution.
    func testDiamondWhereOneInputFeedsTheOther() {
        let x = Tensor(shape: [3], values: [1, 2, 3])
        x.requiresGrad = true
        let a = x * 3          // op A
        let b = a * 2          // op B, fed by A
        let y = (a * b).summed(toShape: [])   // fed by A and B
        y.backward()
        // y = 18 x², dy/dx = 36 x
        XCTAssertEqual(x.grad?.values, [36, 72, 108])
    }

    func testIntermediatesNoBackwardNeedsAreFreed() {
        let x = Tensor(shape: [4], values: [1, 2, 3, 4])
        x.requiresGrad = true
        weak var intermediate: Tensor?
        let y: Tensor = {
            let h = x * 2
            intermediate = h
            return (h + 1).summed(toShape: [])
        }()
        // The add saved nothing, so nothing but the graph's edges could hold `h`: it is gone.
        XCTAssertNil(intermediate)
        y.backward()
        XCTAssertEqual(x.grad?.values, [2, 2, 2, 2])
    }
}
