import XCTest
import GuiseTensor
@testable import GuiseDiffusion
import GuiseTestSupport

/// The sampler's side of reference attention: what reaches the denoiser at each step, and that
/// the sampler's own noise is drawn as without a reference.
final class SamplerReferenceTests: XCTestCase {
    func setup() throws -> (Tensor, Denoiser) {
        let f = try fixture("diffusion_trajectories")
        return (try f.tensorOrFail("x0"), analyticDenoiser(w: try f.tensorOrFail("w"), learnSigma: true))
    }

    func testTheNoisedReferenceReachesTheDenoiserAndTheSampleNoiseIsUnchanged() throws {
        let (x0, inner) = try setup()
        let d = try GaussianDiffusion(respacing: "8", varianceType: .learnedRange, rescaleTimesteps: true)
        // A reference unlike the input, so its q_sample cannot be mistaken for the input's.
        let ref = x0.scaled(-0.5, plus: 0.1)
        let gradients: [Guidance.Gradient?] = [nil, .throughDenoiser, .throughPrediction]
        for gradient in gradients {
            var seen: [[String: Tensor]] = []
            let denoiser: Denoiser = { x, t, c in seen.append(c); return try inner(x, t, c) }
            var options = SamplerOptions(method: .ddim(eta: 0.5), clipDenoised: true, skipTimesteps: 3)
            options.conditioning["y"] = Tensor(shape: [1], values: [2])
            if let gradient {
                options.guidance = Guidance(image: .predictedStart, gradient: gradient) { img, _ in (img * img).mean() }
            }
            let plain = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: SeededNoise(seed: 4))
            XCTAssertEqual(seen.count, 5)
            XCTAssertTrue(seen.allSatisfy { $0[ReferenceImage.conditioningKey] == nil && $0["y"] != nil })

            // Weight 0: nothing passed, nothing drawn, the same bits.
            seen = []
            options.reference = ReferenceImage(image: ref, weight: 0, seed: 11)
            let zero = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: SeededNoise(seed: 4))
            XCTAssertEqual(zero.image.values, plain.image.values)
            XCTAssertTrue(seen.allSatisfy { $0[ReferenceImage.conditioningKey] == nil })

            // Weight 0.7: q_sample(reference, t) with the reference's own stream, one draw per
            // step, and the weight; this denoiser ignores them, so the sample is unchanged: the
            // sampler's own draws did not move.
            seen = []
            options.reference = ReferenceImage(image: ref, weight: 0.7, seed: 11)
            let with = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: SeededNoise(seed: 4))
            XCTAssertEqual(with.image.values, plain.image.values)
            XCTAssertTrue(with.image.values.allSatisfy(\.isFinite))
            XCTAssertEqual(seen.count, 5)
            let refNoise = SeededNoise(seed: 11)
            for (k, c) in seen.enumerated() {
                let t = 4 - k
                let expected = d.qSample(ref, t: t, noise: try refNoise.next(ref.shape))
                guard let got = c[ReferenceImage.conditioningKey] else { XCTFail("step \(k): no reference"); continue }
                XCTAssertEqual(got.shape, ref.shape)
                XCTAssertEqual(got.values, expected.values, "step \(k): the reference noised to t = \(t)")
                XCTAssertEqual(c[ReferenceImage.weightKey]?.item(), 0.7)
                XCTAssertEqual(c["y"]?.values, [2])
            }
        }
    }

    func testBadReferencesGiveClearErrors() throws {
        let (x0, denoiser) = try setup()
        let d = try GaussianDiffusion(respacing: "8", varianceType: .learnedRange)
        func message(_ r: ReferenceImage) -> String {
            var o = SamplerOptions()
            o.reference = r
            do { _ = try d.sample(denoiser, shape: x0.shape, options: o, noise: SeededNoise(seed: 1)); return "" } catch { return "\(error)" }
        }
        let small = Tensor(zeros: [1, 3, 4, 4])
        XCTAssertTrue(message(ReferenceImage(image: small, weight: 1, seed: 0)).contains("reference image has shape"))
        XCTAssertTrue(message(ReferenceImage(image: x0, weight: -0.5, seed: 0)).contains("weight"))
        XCTAssertTrue(message(ReferenceImage(image: x0, weight: .infinity, seed: 0)).contains("weight"))
        XCTAssertEqual(message(ReferenceImage(image: x0, weight: 1, seed: 0)), "")
    }
}
