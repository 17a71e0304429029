import XCTest
@testable import GuiseTensor

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
