import XCTest
import GuiseTensor
import GuiseDiffusion
@testable import GuisePrior

/// The denoiser's DDIM run through the diffusion's sampler, against the steps written out by hand:
/// at each visited t, x̂0 = clip(x_t/√ᾱ_t − √(1/ᾱ_t − 1)·ε), and the next x_t is √ᾱ_next·x̂0 +
/// √(1−ᾱ_next)·ε̂ with ε̂ recomputed from the clipped x̂0; the result is the last x̂0.
final class PriorDenoiserDDIMTests: XCTestCase {
    func testDDIMMatchesTheStepsWrittenOut() throws {
        var o = PriorTrainingOptions()
        o.configName = "tiny"
        o.crop = 16
        let trainer = try PriorTrainer(options: o)
        // A fresh network predicts ε = 0; perturb every weight so ε depends on x_t and t.
        var rng = PriorRNG(seed: 21)
        for s in trainer.ema.shadow {
            for i in 0..<s.count { s.data[i] += Float(0.05 * (2 * rng.uniform() - 1)) }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prior-ddim-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer.exportEMA(to: path)
        let denoiser = try PriorDenoiser(path: path)
        let d = denoiser.diffusion

        func reference(_ y: Tensor, sigma: Double, steps: Int) throws -> Tensor {
            let t0 = PriorModel.timestep(forSigma: sigma, d)
            var xt = y.scaled(Float(d.sqrtAlphasCumprod[t0]))
            var x0 = y
            let ts = PriorDenoiser.schedule(from: t0, steps: steps)
            for (i, t) in ts.enumerated() {
                let eps = try denoiser.net(xt, timesteps: Tensor(shape: [1], values: [d.networkTimestep(t)]))
                x0 = d.predictXStart(xt: xt, t: t, eps: eps).clamped(min: -1, max: 1)
                if i + 1 < ts.count {
                    let next = ts[i + 1]
                    let e = d.predictEps(xt: xt, t: t, xStart: x0)
                    xt = x0.scaled(Float(d.sqrtAlphasCumprod[next])) + e.scaled(Float(d.sqrtOneMinusAlphasCumprod[next]))
                }
            }
            return x0
        }

        for (shape, seed) in [([1, 3, 12, 12], UInt64(3)), ([1, 3, 13, 11], UInt64(4))] {
            var r = PriorRNG(seed: seed)
            let y = Tensor(uninitialized: shape)
            r.fillNormal(y.data, count: y.count)
            for i in 0..<y.count { y.data[i] = max(-1, min(1, 0.4 * y.data[i])) }
            let padded = shape[2] % 2 == 0 && shape[3] % 2 == 0 ? y
                : NN.pad(y, .init(top: 0, bottom: shape[2] % 2, left: 0, right: shape[3] % 2), mode: .reflect)
            for (sigma, steps) in [(25.0, 1), (25.0, 3), (60.0, 4)] {
                let got = try Autograd.noGrad { try denoiser.denoiseOnce(y, sigma: sigma, steps: steps) }
                var want = try Autograd.noGrad { try reference(padded, sigma: sigma, steps: steps) }
                if padded !== y { want = Dihedral.crop(want, height: shape[2], width: shape[3]) }
                XCTAssertEqual(got.shape, y.shape)
                XCTAssertTrue(got.values.allSatisfy { $0.isFinite }, "\(shape) σ \(sigma) steps \(steps)")
                var moved: Float = 0
                for (a, b) in zip(got.values, y.values) { moved = max(moved, abs(a - b)) }
                XCTAssertGreaterThan(moved, 1e-3, "the perturbed network must change the image")
                for (a, b) in zip(got.values, want.values) {
                    XCTAssertEqual(a, b, accuracy: 1e-5, "\(shape) σ \(sigma) steps \(steps)")
                    if abs(a - b) > 1e-5 { break }
                }
            }
        }
    }

    func testTooSmallAnImageIsAnError() throws {
        var o = PriorTrainingOptions()
        o.configName = "tiny"
        o.crop = 16
        let trainer = try PriorTrainer(options: o)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prior-small-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer.exportEMA(to: path)
        let denoiser = try PriorDenoiser(path: path)
        // The tiny prior's stride is 2: a 1-pixel-high image cannot be reflect-padded to it.
        XCTAssertThrowsError(try denoiser.denoise(Tensor(zeros: [1, 3, 1, 4]), sigma: 25)) { e in
            XCTAssertTrue("\(e)".contains("too small"), "\(e)")
        }
    }
}
