import XCTest
import GuiseTensor
import GuiseFormats
@testable import GuisePrior

final class PriorDenoiserTests: XCTestCase {
    func testDihedralInversesRoundTrip() {
        var rng = PriorRNG(seed: 4)
        let x = Tensor(uninitialized: [1, 3, 5, 7])
        rng.fillNormal(x.data, count: x.count)
        var seen = Set<[Float]>()
        for k in 0..<8 {
            let moved = Dihedral.apply(k, x)
            XCTAssertEqual(moved.shape, k & 4 != 0 ? [1, 3, 7, 5] : [1, 3, 5, 7])
            seen.insert(moved.values)
            XCTAssertEqual(Dihedral.invert(k, moved).values, x.values)
        }
        XCTAssertEqual(seen.count, 8, "the 8 transforms must differ")
    }

    func testScheduleDescendsFromT() {
        XCTAssertEqual(PriorDenoiser.schedule(from: 100, steps: 1), [100])
        XCTAssertEqual(PriorDenoiser.schedule(from: 100, steps: 4), [100, 75, 50, 25])
        XCTAssertEqual(PriorDenoiser.schedule(from: 2, steps: 5), [2, 1, 0])
    }

    /// A fresh network predicts ε = 0 (its last conv starts at zero), so x̂0 is the input itself:
    /// the scaling by √ᾱ, the padding to the stride, DDIM and the TTA transforms must all undo exactly.
    func testAnUntrainedPriorReturnsItsInput() throws {
        var o = PriorTrainingOptions()
        o.configName = "tiny"
        o.crop = 16
        let trainer = try PriorTrainer(options: o)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prior-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer.exportEMA(to: path)
        let denoiser = try PriorDenoiser(path: path)
        var rng = PriorRNG(seed: 9)
        for shape in [[1, 3, 13, 10], [1, 3, 12, 12]] {
        let y = Tensor(uninitialized: shape)
        rng.fillNormal(y.data, count: y.count)
        for i in 0..<y.count { y.data[i] = max(-1, min(1, 0.4 * y.data[i])) }
        for (steps, tta) in [(1, false), (3, false), (1, true), (2, true)] {
            let x = try denoiser.denoise(y, sigma: 25, steps: steps, tta: tta)
            XCTAssertEqual(x.shape, y.shape)
            for (a, b) in zip(x.values, y.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
        }
        XCTAssertThrowsError(try PriorDenoiser(path: path + ".missing"))
    }
}
