import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
@testable import GuiseDiffusion
import GuiseTestSupport

/// Channel concatenation of two [N, C, ...] tensors, differentiable in both (only for the stand-in
/// denoiser below; the network module has its own).
func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let n = a.shape[0]
    let ia = a.count / n, ib = b.count / n
    let ac = a.contiguous(), bc = b.contiguous()
    var shape = a.shape
    shape[1] += b.shape[1]
    let out = Tensor(uninitialized: shape)
    for i in 0..<n {
        (out.data + i * (ia + ib)).update(from: ac.data + i * ia, count: ia)
        (out.data + i * (ia + ib) + ia).update(from: bc.data + i * ib, count: ib)
    }
    if Autograd.shouldRecord(a, b) {
        let sa = a.shape, sb = b.shape
        out.record("concat_channels", [a, b]) { g in
            let gc = g.contiguous()
            let ga = Tensor(uninitialized: sa), gb = Tensor(uninitialized: sb)
            for i in 0..<n {
                (ga.data + i * ia).update(from: gc.data + i * (ia + ib), count: ia)
                (gb.data + i * ib).update(from: gc.data + i * (ia + ib) + ia, count: ib)
            }
            return [ga, gb]
        }
    }
    return out
}

/// The stand-in denoiser of Tools/reference_adm.py (`analytic_eps`), written with tensor ops so the
/// guidance gradient can flow through it.
func analyticDenoiser(w: Tensor, learnSigma: Bool) -> Denoiser {
    return { x, t, _ in
        let n = x.shape[0]
        var g = [Float](), h = [Float]()
        for tv in t.values {
            let td = Double(tv)
            let q = 1e-4 * (td + 1) + 0.0199 / 1998 * td * (td + 1)
            let ab = Foundation.exp(-q)
            g.append(Float(1 / (1 - ab).squareRoot()))
            h.append(Float(ab.squareRoot()))
        }
        let gT = Tensor(shape: [n, 1, 1, 1], values: g), hT = Tensor(shape: [n, 1, 1, 1], values: h)
        let m = w.scaled(0.5) + x.scaled(0.3) / (x * x + 1)
        let eps = (x - hT * m) * gT
        return learnSigma ? concatChannels(eps, x.scaled(0.25)) : eps
    }
}

/// Remembers every tensor it hands out.
final class RecordingNoise: NoiseSource {
    let inner: NoiseSource
    var drawn: [Tensor] = []
    init(_ inner: NoiseSource) { self.inner = inner }
    func next(_ shape: [Int]) throws -> Tensor {
        let t = try inner.next(shape)
        drawn.append(t)
        return t
    }
}

final class DiffusionScheduleTests: XCTestCase {
    func assertTable(_ actual: [Double], _ expected: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(what) length", file: file, line: line)
        guard actual.count == expected.count else { return }
        var worst = 0.0
        for i in 0..<actual.count {
            let scale = max(abs(expected[i]), 1e-300)
            let r = abs(actual[i] - expected[i]) / scale
            // A NaN ends the scan as the worst value: max(worst, .nan) would return worst.
            if !(r <= worst) { worst = r; if r.isNaN { break } }
        }
        // Same float64 formulas, so only libm's last-bit differences are allowed.
        XCTAssertLessThanOrEqual(worst, 1e-12, "\(what): relative error \(worst)", file: file, line: line)
    }

    func testBetaSchedulesMatchReference() throws {
        let f = try fixture("diffusion_schedules")
        assertTable(BetaSchedule.linear.betas(steps: 1000), try f.doubles("linear_1000_betas"), "linear")
        assertTable(BetaSchedule.cosine.betas(steps: 1000), try f.doubles("cosine_1000_betas"), "cosine")
    }

    func testRespacedTablesMatchReference() throws {
        let f = try fixture("diffusion_schedules")
        let cases: [(String, BetaSchedule, Int, String)] = [
            ("linear_100", .linear, 1000, "100"), ("linear_ddim50", .linear, 1000, "ddim50"),
            ("linear_10_10_10", .linear, 1000, "10,10,10"), ("cosine_25", .cosine, 1000, "25"),
            ("linear_250", .linear, 1000, "250"), ("cosine_4000_ddim25", .cosine, 4000, "ddim25"),
            ("linear_100_5_7_3", .linear, 100, "5,7,3"),
        ]
        for (key, schedule, steps, spacing) in cases {
            let d = try GaussianDiffusion(schedule: schedule, steps: steps, respacing: spacing)
            XCTAssertEqual(d.timestepMap, try f.ints("\(key)_map"), key)
            let tables: [(String, [Double])] = [
                ("betas", d.betas), ("alphas_cumprod", d.alphasCumprod), ("alphas_cumprod_prev", d.alphasCumprodPrev),
                ("sqrt_alphas_cumprod", d.sqrtAlphasCumprod), ("sqrt_one_minus_alphas_cumprod", d.sqrtOneMinusAlphasCumprod),
                ("sqrt_recip_alphas_cumprod", d.sqrtRecipAlphasCumprod), ("sqrt_recipm1_alphas_cumprod", d.sqrtRecipm1AlphasCumprod),
                ("posterior_variance", d.posteriorVariance), ("posterior_log_variance_clipped", d.posteriorLogVarianceClipped),
                ("posterior_mean_coef1", d.posteriorMeanCoef1), ("posterior_mean_coef2", d.posteriorMeanCoef2),
            ]
            for (name, values) in tables {
                assertTable(values, try f.doubles("\(key)_\(name)"), "\(key) \(name)")
            }
        }
    }

    func testRespacingStrings() throws {
        XCTAssertEqual(try Respacing.timesteps(10, ""), Array(0..<10))
        XCTAssertEqual(try Respacing.timesteps(1000, "ddim4"), [0, 250, 500, 750])
        XCTAssertEqual(try Respacing.timesteps(10, "1"), [0])
        XCTAssertThrowsError(try Respacing.timesteps(1000, "ddim3000"))
        XCTAssertThrowsError(try Respacing.timesteps(100, "5,60"))
        XCTAssertThrowsError(try Respacing.timesteps(100, "ten"))
        XCTAssertThrowsError(try BetaSchedule(named: "quadratic"))
        let d = try GaussianDiffusion(steps: 1000, respacing: "100", rescaleTimesteps: true)
        XCTAssertEqual(d.networkTimestep(99), 999)
        XCTAssertEqual(d.networkTimestep(1), 10)
        let e = try GaussianDiffusion(steps: 4000, respacing: "ddim25", rescaleTimesteps: true)
        XCTAssertEqual(e.networkTimestep(1), Float(Double(e.timestepMap[1]) * 0.25))
    }

    func testRePaintScheduleMatchesReference() throws {
        let f = try fixture("diffusion_repaint")
        for (tT, jl, jn) in [(250, 10, 10), (20, 3, 2), (50, 5, 4), (10, 1, 1)] {
            let ours = try RePaintJumps(jumpLength: jl, jumpNSample: jn).times(from: tT)
            XCTAssertEqual(ours, try f.ints("repaint_\(tT)_\(jl)_\(jn)"), "RePaint \(tT) \(jl) \(jn)")
        }
    }

    func testSeededNoiseIsDeterministicAndStandardNormal() throws {
        let a = SeededNoise(seed: 42), b = SeededNoise(seed: 42), c = SeededNoise(seed: 43)
        let a1 = try a.next([1000, 100]), b1 = try b.next([1000, 100]), c1 = try c.next([1000, 100])
        XCTAssertEqual(a1.values, b1.values)
        XCTAssertNotEqual(a1.values, c1.values)
        let a2 = try a.next([1000, 100])
        XCTAssertNotEqual(a1.values, a2.values, "successive draws must differ")
        // Counter-based: a smaller draw is a prefix of a larger one with the same counters.
        let p = try SeededNoise(seed: 42).next([7])
        XCTAssertEqual(p.values, Array(a1.values.prefix(7)))
        let v = a1.values.map(Double.init)
        let mean = v.reduce(0, +) / Double(v.count)
        let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)
        let fourth = v.map { pow($0 - mean, 4) }.reduce(0, +) / Double(v.count) / (variance * variance)
        XCTAssertEqual(mean, 0, accuracy: 0.01)      // 5σ for 100k samples
        XCTAssertEqual(variance, 1, accuracy: 0.025)
        XCTAssertEqual(fourth, 3, accuracy: 0.1)     // Gaussian kurtosis
        let lag = (0..<(v.count - 1)).map { v[$0] * v[$0 + 1] }.reduce(0, +) / Double(v.count - 1)
        XCTAssertEqual(lag, 0, accuracy: 0.015, "neighbouring values must be uncorrelated")
    }
}

final class DiffusionSamplerTests: XCTestCase {
    struct Run {
        let key: String
        let method: SamplerOptions.Method
        let variance: VarianceType
        let respacing: String
        let skip: Int
        let clip: Bool
        let rescale: Bool
        var guide: Guidance.Gradient? = nil
        var diffFaceImage = false
        var maskRamp: Int? = nil
    }

    static let runs: [Run] = [
        Run(key: "ddpm_learned", method: .ddpm, variance: .learnedRange, respacing: "10", skip: 0, clip: true, rescale: false),
        Run(key: "ddpm_fixed_large", method: .ddpm, variance: .fixedLarge, respacing: "10", skip: 0, clip: false, rescale: true),
        Run(key: "ddpm_fixed_small_skip", method: .ddpm, variance: .fixedSmall, respacing: "10", skip: 6, clip: true, rescale: true),
        Run(key: "ddim_eta0", method: .ddim(eta: 0), variance: .learnedRange, respacing: "ddim10", skip: 0, clip: true, rescale: false),
        Run(key: "ddim_eta05_skip", method: .ddim(eta: 0.5), variance: .fixedLarge, respacing: "10", skip: 5, clip: false, rescale: true),
        Run(key: "ddpm_guided_unet", method: .ddpm, variance: .learnedRange, respacing: "10", skip: 4, clip: false, rescale: true, guide: .throughDenoiser),
        Run(key: "ddpm_guided_prediction", method: .ddpm, variance: .learnedRange, respacing: "10", skip: 4, clip: false, rescale: true, guide: .throughPrediction),
        Run(key: "ddim_guided_unet", method: .ddim(eta: 0), variance: .learnedRange, respacing: "10", skip: 4, clip: false, rescale: true, guide: .throughDenoiser),
        Run(key: "ddim_guided_prediction_eta05", method: .ddim(eta: 0.5), variance: .fixedLarge, respacing: "10", skip: 4, clip: true, rescale: false, guide: .throughPrediction),
        Run(key: "diffface", method: .ddpm, variance: .learnedRange, respacing: "10", skip: 3, clip: false, rescale: true, guide: .throughDenoiser, diffFaceImage: true, maskRamp: 4),
    ]

    func testTrajectoriesMatchReferenceStepByStep() throws {
        let f = try fixture("diffusion_trajectories")
        let x0 = try f.tensorOrFail("x0"), w = try f.tensorOrFail("w"), target = try f.tensorOrFail("target")
        let mask = try f.tensorOrFail("mask")
        for run in Self.runs {
            let d = try GaussianDiffusion(schedule: .linear, steps: 1000, respacing: run.respacing,
                                          varianceType: run.variance, rescaleTimesteps: run.rescale)
            let noise = try f.tensorOrFail("\(run.key)_noise")
            let steps = noise.shape[0] - 1
            var queue = [slice(noise, 0)]
            let blend = run.maskRamp != nil ? try f.tensorOrFail("\(run.key)_blend_noise") : nil
            for j in 0..<steps {
                queue.append(slice(noise, j + 1))
                if let blend { queue.append(slice(blend, j)) }
            }
            var options = SamplerOptions(method: run.method, clipDenoised: run.clip, skipTimesteps: run.skip)
            if let g = run.guide {
                options.guidance = Guidance(image: run.diffFaceImage ? .diffFace : .predictedStart, gradient: g) { img, _ in
                    let diff = img - target
                    return (diff * diff).summed(toShape: []).scaled(0.05)
                }
            }
            if let ramp = run.maskRamp {
                options.mask = MaskBlend(mask: mask, schedule: .linearRamp(steps: ramp), timing: .afterStep, composite: .predictedStart)
            }
            var xs: [Tensor] = [], x0s: [Tensor] = []
            options.progress = { p in
                xs.append(p.x)
                if let px = p.predXStart { x0s.append(px) }
            }
            let replay = ReplayNoise(queue)
            let result = try d.sample(analyticDenoiser(w: w, learnSigma: run.variance == .learnedRange),
                                      shape: x0.shape, initImage: run.skip > 0 ? x0 : nil, options: options, noise: replay)
            XCTAssertEqual(replay.remaining, 0, "\(run.key): every recorded noise tensor is used")
            let refX = try f.tensorOrFail("\(run.key)_x"), refX0 = try f.tensorOrFail("\(run.key)_pred_xstart")
            XCTAssertEqual(xs.count, refX.shape[0], "\(run.key) steps")
            for j in 0..<min(xs.count, refX.shape[0]) {
                assertClose(xs[j], slice(refX, j), tol: 1e-4, "\(run.key) x at step \(j)")
                assertClose(x0s[j], slice(refX0, j), tol: 1e-4, "\(run.key) x̂0 at step \(j)")
            }
            if run.maskRamp != nil {
                assertClose(result.image, try f.tensorOrFail("\(run.key)_final"), tol: 1e-4, "\(run.key) composite")
            }
        }
    }

    /// The guidance actually moves the trajectory (so the guided fixtures test something).
    func testGuidanceChangesTheSample() throws {
        let f = try fixture("diffusion_trajectories")
        let a = try f.tensorOrFail("ddpm_guided_unet_x"), b = try f.tensorOrFail("ddpm_guided_prediction_x")
        let diff = zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(diff, 1e-3)
    }

    func hardMaskSetup() throws -> (Tensor, Tensor, Denoiser) {
        let f = try fixture("diffusion_trajectories")
        return (try f.tensorOrFail("x0"), try f.tensorOrFail("mask"),
                analyticDenoiser(w: try f.tensorOrFail("w"), learnSigma: true))
    }

    func testHardMaskAfterStepKeepsNoisedInputExactly() throws {
        let (x0, mask, denoiser) = try hardMaskSetup()
        let d = try GaussianDiffusion(respacing: "12", varianceType: .learnedRange, rescaleTimesteps: true)
        for method in [SamplerOptions.Method.ddpm, .ddim(eta: 0.3)] {
            var options = SamplerOptions(method: method, clipDenoised: true, skipTimesteps: 2)
            options.mask = MaskBlend(mask: mask, schedule: .hard, timing: .afterStep, composite: .sample)
            let noise = RecordingNoise(SeededNoise(seed: 5))
            var states: [(Int, Tensor)] = []
            options.progress = { p in states.append((p.t + 1, p.x)) }   // p.t is where the step landed
            let result = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: noise)
            XCTAssertEqual(states.count, 10)
            let m = mask.values, hw = mask.count
            for (j, (t, x)) in states.enumerated() {
                // Draw order: start, then (step, blend) per step.
                let known = d.qSample(x0, t: t, noise: noise.drawn[2 + 2 * j]).values
                let xv = x.values
                var checked = 0
                for i in 0..<xv.count where m[i % hw] == 0 {
                    XCTAssertEqual(xv[i], known[i], "step \(j) element \(i) outside the mask")
                    checked += 1
                }
                XCTAssertGreaterThan(checked, 0)
            }
            let out = result.image.values, input = x0.values
            var inside = 0
            for i in 0..<out.count {
                if m[i % hw] == 0 { XCTAssertEqual(out[i], input[i], "final element \(i) outside the mask") }
                else if out[i] != input[i] { inside += 1 }
            }
            XCTAssertGreaterThan(inside, 0, "the masked region must be regenerated")
        }
    }

    func testHardMaskBeforeStepInjectsNoisedInputAsRePaint() throws {
        let (x0, mask, inner) = try hardMaskSetup()
        let d = try GaussianDiffusion(respacing: "10", varianceType: .learnedRange)
        var inputs: [Tensor] = []
        let denoiser: Denoiser = { x, t, c in inputs.append(x.copy()); return try inner(x, t, c) }
        var options = SamplerOptions(method: .ddpm)
        options.mask = MaskBlend(mask: mask, schedule: .hard, timing: .beforeStep, composite: .sample)
        options.repaint = RePaintJumps(jumpLength: 2, jumpNSample: 3)
        let noise = RecordingNoise(SeededNoise(seed: 9))
        var transitions: [(Int, Bool)] = []
        options.progress = { p in transitions.append((p.t, p.isReverse)) }
        let result = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: noise)
        let times = try RePaintJumps(jumpLength: 2, jumpNSample: 3).times(from: 10)
        XCTAssertEqual(transitions.map(\.0), Array(times.dropFirst()))
        let reverseTimes = zip(times, times.dropFirst()).filter { $0.1 < $0.0 }.map(\.0)
        XCTAssertEqual(inputs.count, reverseTimes.count, "one denoiser call per reverse transition")
        XCTAssertGreaterThan(reverseTimes.count, 10, "the schedule travels back in time")

        // Replay the draw order to find each injection's noise: start; per reverse step [inject] + step;
        // per forward step one.
        var cursor = 1, reverseIndex = 0
        let m = mask.values, hw = mask.count
        for (a, b) in zip(times, times.dropFirst()) {
            if b < a {
                if reverseIndex > 0 {
                    let known = d.qSample(x0, t: a, noise: noise.drawn[cursor]).values
                    let seen = inputs[reverseIndex].values
                    for i in 0..<seen.count where m[i % hw] == 0 {
                        XCTAssertEqual(seen[i], known[i], "reverse step \(reverseIndex) at t=\(a) element \(i)")
                    }
                    cursor += 1
                }
                cursor += 1
                reverseIndex += 1
            } else {
                cursor += 1
            }
        }
        XCTAssertEqual(cursor, noise.drawn.count)
        let out = result.image.values, input = x0.values
        for i in 0..<out.count where m[i % hw] == 0 { XCTAssertEqual(out[i], input[i]) }
    }

    func testSeededSamplingIsReproducibleAndReportsProgress() throws {
        let (x0, _, denoiser) = try hardMaskSetup()
        let d = try GaussianDiffusion(respacing: "8", varianceType: .learnedRange)
        var seen: [Int] = []
        var options = SamplerOptions(method: .ddpm)
        options.progress = { p in seen.append(p.index); XCTAssertEqual(p.total, 8) }
        let a = try d.sample(denoiser, shape: x0.shape, options: options, noise: SeededNoise(seed: 1))
        let b = try d.sample(denoiser, shape: x0.shape, options: options, noise: SeededNoise(seed: 1))
        let c = try d.sample(denoiser, shape: x0.shape, options: options, noise: SeededNoise(seed: 2))
        XCTAssertEqual(a.image.values, b.image.values)
        XCTAssertNotEqual(a.image.values, c.image.values)
        XCTAssertEqual(seen, Array(1...8) + Array(1...8) + Array(1...8))
    }

    func testBadInputsGiveClearErrors() throws {
        let (x0, mask, denoiser) = try hardMaskSetup()
        let d = try GaussianDiffusion(respacing: "8", varianceType: .learnedRange)
        XCTAssertThrowsError(try d.sample(denoiser, shape: x0.shape, options: SamplerOptions(skipTimesteps: 8), noise: SeededNoise(seed: 1)))
        var o = SamplerOptions()
        o.mask = MaskBlend(mask: mask)
        XCTAssertThrowsError(try d.sample(denoiser, shape: x0.shape, options: o, noise: SeededNoise(seed: 1))) { e in
            XCTAssertTrue("\(e)".contains("input image"))
        }
        let fixed = try GaussianDiffusion(respacing: "8", varianceType: .fixedLarge)
        XCTAssertThrowsError(try fixed.sample(denoiser, shape: x0.shape, options: SamplerOptions(), noise: SeededNoise(seed: 1)))
        XCTAssertThrowsError(try d.sample(denoiser, shape: x0.shape, options: SamplerOptions(),
                                          noise: ReplayNoise([Tensor(zeros: [1, 3, 6, 6])])))
    }
}
