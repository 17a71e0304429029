import XCTest
import GuiseTensor
import GuiseFormats
import GuiseImage
import GuiseNetworks
import GuiseDiffusion
@testable import GuisePrior

final class PriorTrainingTests: XCTestCase {
    func tinyOptions() -> PriorTrainingOptions {
        var o = PriorTrainingOptions()
        o.configName = "tiny"
        o.steps = 40
        o.batch = 4
        o.crop = 16
        o.lr = 2e-3
        o.warmup = 2
        o.emaDecay = 0.9
        o.seed = 7
        return o
    }

    /// A smooth, image-like clean batch: low-frequency colour ramps.
    func fixedBatch(_ n: Int, _ size: Int, seed: UInt64) -> Tensor {
        var rng = PriorRNG(seed: seed)
        let x = Tensor(uninitialized: [n, 3, size, size])
        for b in 0..<n {
            for c in 0..<3 {
                let fx = rng.uniform() * 0.4, fy = rng.uniform() * 0.4, ph = rng.uniform() * 6, amp = 0.3 + 0.5 * rng.uniform()
                for y in 0..<size {
                    for xx in 0..<size {
                        x.data[((b * 3 + c) * size + y) * size + xx] = Float(amp * sin(fx * Double(xx) + fy * Double(y) + ph))
                    }
                }
            }
        }
        return x
    }

    func testParameterSpecsMatchTheADM() throws {
        for name in ["tiny", "small"] {
            let config = try PriorModel.config(named: name)
            var rng = PriorRNG(seed: 1)
            let params = try PriorModel.initialParameters(config, rng: &rng)
            // ADMUNet rejects a missing, extra or misshapen parameter.
            let net = try ADMUNet(config: config, weights: params)
            XCTAssertEqual(net.parameterCount, params.values.reduce(0) { $0 + $1.count })
            XCTAssertTrue(params.values.allSatisfy(\.requiresGrad))
        }
        let small = try PriorModel.config(named: "small")
        XCTAssertLessThanOrEqual(try PriorModel.forwardFLOPs(small, height: 256, width: 256), 50e9)
    }

    func testBandTargetsRecoverTheCleanImage() throws {
        var o = tinyOptions()
        o.bandFraction = 1
        let trainer = try PriorTrainer(options: o)
        let x0 = fixedBatch(4, 16, seed: 3)
        let (xt, t, eps) = trainer.noised(x0)
        let d = trainer.diffusion
        for b in 0..<4 {
            let s = PriorModel.sigma255(t[b], d)
            XCTAssertTrue(s > 4 && s < 90, "σ \(s) outside the band")
            let one = { (v: Tensor) in v.narrow(b..<(b + 1)) }
            let x = d.predictXStart(xt: one(xt), t: t[b], eps: one(eps)).values
            let ref = one(x0).values
            for (p, q) in zip(x, ref) { XCTAssertEqual(p, q, accuracy: 1e-4) }
            // The noisy image itself sits on the 8-bit grid.
            for v in one(xt).values {
                let level = (Double(v) / d.sqrtAlphasCumprod[t[b]] + 1) * 127.5
                XCTAssertEqual(level, level.rounded(), accuracy: 1e-3)
            }
        }
    }

    func testTimestepForSigma() throws {
        let d = try PriorModel.diffusion(try PriorModel.config(named: "tiny"))
        for sigma in [5.0, 15, 25, 50, 80] {
            let t = PriorModel.timestep(forSigma: sigma, d)
            XCTAssertEqual(PriorModel.sigma255(t, d) / sigma, 1, accuracy: 0.05)
            XCTAssertLessThan(PriorModel.sigma255(t - 1, d), sigma * 1.02)
        }
    }

    func testAFewStepsLowerTheLossOnAFixedBatch() throws {
        let trainer = try PriorTrainer(options: tinyOptions())
        let x0 = fixedBatch(4, 16, seed: 11)
        // A fixed evaluation draw: the same noise and timesteps before and after.
        var evalTrainer = trainer.rng
        evalTrainer.state = 12345
        let saved = trainer.rng
        trainer.rng = evalTrainer
        let (xt, t, eps) = trainer.noised(x0)
        trainer.rng = saved
        let before = try trainer.loss(on: x0, xt: xt, t: t, eps: eps)
        for _ in 0..<25 { try trainer.trainStep(x0: x0) }
        let after = try trainer.loss(on: x0, xt: xt, t: t, eps: eps)
        XCTAssertLessThan(after, 0.8 * before, "loss \(before) → \(after)")
        XCTAssertEqual(trainer.step, 25)
    }

    func testResumeContinuesFromTheSavedStep() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prior-resume-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let x0 = fixedBatch(4, 16, seed: 5)
        let a = try PriorTrainer(options: tinyOptions())
        for _ in 0..<3 { try a.trainStep(x0: x0) }
        try a.saveCheckpoint(to: dir + "/ckpt.safetensors")
        let next = try a.trainStep(x0: x0)

        let b = try PriorTrainer.resume(from: dir + "/ckpt.safetensors")
        XCTAssertEqual(b.step, 3)
        XCTAssertEqual(b.options, a.options)
        let resumed = try b.trainStep(x0: x0)
        XCTAssertEqual(resumed, next, "the resumed step's loss differs from the uninterrupted run")
        for (p, q) in zip(a.parameters, b.parameters) { XCTAssertEqual(p.values, q.values) }
        for (p, q) in zip(a.ema.shadow, b.ema.shadow) { XCTAssertEqual(p.values, q.values) }
        XCTAssertThrowsError(try PriorTrainer.resume(from: dir + "/missing.safetensors"))
    }

    func testDatasetCropsGreyAndColourPhotos() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prior-data-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = 40, h = 36
        let grey = (0..<(w * h)).map { Float($0 % 7) / 6 }
        try ImageIO.write(Image(grey: grey, width: w, height: h), to: dir + "/a.png")
        try ImageIO.write(Image(width: 20, height: 20, red: 1, green: 0, blue: 0.5), to: dir + "/b.png")
        try ImageIO.write(Image(width: 8, height: 8, red: 1, green: 1, blue: 1), to: dir + "/too-small.png")
        let data = try PriorDataset(directory: dir, crop: 16)
        XCTAssertEqual(data.names, ["a.png", "b.png"])
        XCTAssertEqual(data.levels[0].map(\.width), [40, 20])
        var rng = PriorRNG(seed: 2)
        let batch = data.batch(6, rng: &rng)
        XCTAssertEqual(batch.shape, [6, 3, 16, 16])
        XCTAssertTrue(batch.values.allSatisfy { $0 >= -1 && $0 <= 1 })
        XCTAssertThrowsError(try PriorDataset(directory: dir + "/nope", crop: 16))
    }
}
