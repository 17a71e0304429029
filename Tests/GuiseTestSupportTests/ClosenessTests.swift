import XCTest
import GuiseTestSupport

/// The comparisons behind every assertClose: NaN and stray infinities must fail them.
final class ClosenessTests: XCTestCase {
    let expected: [Float] = [0.5, -2, 3, 0.25]

    func testCloseValuesPassAndFarValuesFail() {
        let near = closeness([0.5001, -2, 3, 0.25], expected, tol: 1e-4)
        XCTAssertNil(near.failure)
        XCTAssertEqual(near.error, 1e-4 / 3, accuracy: 1e-6)  // relative to the scale max |e| = 3
        let far = closeness([0.6, -2, 3, 0.25], expected, tol: 1e-4)
        XCTAssertNotNil(far.failure)
        XCTAssertEqual(far.error, 0.1 / 3, accuracy: 1e-6)
        // Below a scale of 1 the tolerance is absolute.
        XCTAssertNil(closeness([0.00005], [0], tol: 1e-4).failure)
        XCTAssertNotNil(closeness([0.0002], [0], tol: 1e-4).failure)
    }

    func testAllNaNFails() {
        let c = closeness([Float](repeating: .nan, count: 4), expected, tol: 1e-4, "out")
        XCTAssertEqual(c.error, .infinity)
        let message = try? XCTUnwrap(c.failure)
        XCTAssertTrue(message?.contains("out: 4 of 4 values") ?? false, message ?? "no failure")
    }

    func testOneNaNInActualFails() {
        for i in 0..<expected.count {
            var a = expected
            a[i] = .nan
            let c = closeness(a, expected, tol: 1e-4)
            XCTAssertNotNil(c.failure, "NaN at \(i)")
            XCTAssertTrue(c.failure?.contains("first at [\(i)]") ?? false)
        }
    }

    func testOneNaNInExpectedFails() {
        for i in 0..<expected.count {
            var e = expected
            e[i] = .nan
            XCTAssertNotNil(closeness(expected, e, tol: 1e-4).failure, "NaN at \(i)")
        }
        XCTAssertNotNil(closeness([Float.nan], [.nan], tol: 1e-4).failure, "NaN on both sides")
    }

    func testInfinitiesFailUnlessMatched() {
        XCTAssertNotNil(closeness([0.5, .infinity, 3, 0.25], expected, tol: 1e-4).failure)
        XCTAssertNotNil(closeness([0.5, -2, -.infinity, 0.25], expected, tol: 1e-4).failure)
        XCTAssertNotNil(closeness(expected, [0.5, -.infinity, 3, 0.25], tol: 1e-4).failure)
        XCTAssertNotNil(closeness([.infinity], [-.infinity], tol: 1e-4).failure)
        // An expected infinity reproduced exactly (a masked logit, say) is a match, and leaves the scale alone.
        let matched = closeness([-.infinity, 1.00005], [-.infinity, 1], tol: 1e-4)
        XCTAssertNil(matched.failure)
        XCTAssertEqual(matched.error, 5e-5, accuracy: 1e-6)
    }

    func testLengthMismatchFails() {
        XCTAssertNotNil(closeness([1, 2], [1, 2, 3], tol: 1).failure)
        XCTAssertNotNil(elementwiseFailure([1, 2], [1, 2, 3], tol: 1))
    }

    func testElementwiseComparison() {
        XCTAssertNil(elementwiseFailure([1, 2.004], [1, 2], tol: 0.005))
        XCTAssertEqual(elementwiseFailure([1, 2.01], [1, 2], tol: 0.005, "p"), "p[1]: 2.01 vs 2.0 (tolerance 0.005)")
        XCTAssertNotNil(elementwiseFailure([.nan, .nan], [1, 2], tol: 0.005))
        XCTAssertNotNil(elementwiseFailure([1, .nan], [1, 2], tol: 0.005))
        XCTAssertNotNil(elementwiseFailure([1, 2], [1, .nan], tol: 0.005))
        XCTAssertNotNil(elementwiseFailure([1, .infinity], [1, 2], tol: 0.005))
        XCTAssertNil(elementwiseFailure([1, .infinity], [1, .infinity], tol: 0.005))
    }
}
