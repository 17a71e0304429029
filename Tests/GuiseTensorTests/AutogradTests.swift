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
