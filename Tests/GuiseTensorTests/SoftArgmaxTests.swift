import Foundation
import XCTest
import GuiseTensor
import GuiseTestSupport

final class SoftArgmaxTests: XCTestCase {
    /// The expected (row, column) under softmax(β·x), computed directly in Double.
    func testValuesAreTheSoftmaxWeightedPosition() {
        let x = randomTensor([2, 3, 5, 7], seed: 21, scale: 0.05)
        let y = NN.softArgmax2d(x, beta: 100)
        XCTAssertEqual(y.shape, [2, 3, 2])
        let v = x.values, got = y.values
        for m in 0..<6 {
            let cells = (0..<35).map { 100 * Double(v[m * 35 + $0]) }
            let top = cells.max()!
            let e = cells.map { Foundation.exp($0 - top) }, total = e.reduce(0, +)
            let row = (0..<35).reduce(0.0) { $0 + e[$1] / total * Double($1 / 7) }
            let col = (0..<35).reduce(0.0) { $0 + e[$1] / total * Double($1 % 7) }
            XCTAssertEqual(Double(got[2 * m]), row, accuracy: 1e-5)
            XCTAssertEqual(Double(got[2 * m + 1]), col, accuracy: 1e-5)
        }
        // A single sharp peak sits on its cell.
        var peak = [Float](repeating: 0, count: 35)
        peak[3 * 7 + 5] = 1
        let p = NN.softArgmax2d(Tensor(shape: [5, 7], values: peak), beta: 100).values
        XCTAssertEqual(p[0], 3, accuracy: 1e-4)
        XCTAssertEqual(p[1], 5, accuracy: 1e-4)
    }

    func testGradientMatchesFiniteDifferences() {
        // β·x spread of a few units: neither uniform nor a hard argmax.
        let x = randomTensor([2, 2, 4, 6], seed: 5, scale: 0.03)
        assertGradientsMatchFiniteDifferences([x], eps: 1e-3, rtol: 2e-2, atol: 1e-3, samples: 48) { t in
            NN.softArgmax2d(t[0], beta: 100)
        }
    }
}
