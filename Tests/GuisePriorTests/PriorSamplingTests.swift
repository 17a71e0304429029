import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage
import GuiseNetworks
@testable import GuisePrior

/// Multi-scale crops, colour jitter, kind weights, upright kinds, the medium config, and exact
/// resume with all of them.
final class PriorSamplingTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("prior-sampling-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A colour photo whose channels vary with x and y (planar RGB in 0…1).
    func writePhoto(_ name: String, _ w: Int, _ h: Int, vertical: Bool = false) throws {
        var rgb = [Float](repeating: 0, count: 3 * w * h)
        for c in 0..<3 {
            for y in 0..<h {
                for x in 0..<w {
                    rgb[(c * h + y) * w + x] = vertical ? Float(y) / Float(h - 1)
                        : Float(0.5 + 0.4 * sin(Double(x) * 0.21 + Double(y) * 0.13 + Double(c)))
                }
            }
        }
        try ImageIO.write(Image(width: w, height: h, rgb: rgb), to: dir + "/" + name)
    }

    func writeManifest(_ kinds: [String: String]) throws -> String {
        let files = kinds.keys.sorted().map { ["name": $0, "kind": kinds[$0]!, "split": "train"] }
        let path = dir + "/manifest.json"
        try JSONSerialization.data(withJSONObject: ["files": files]).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testMultiScaleFootprintsRunFromWholePhotoToOneToOne() throws {
        try writePhoto("a.png", 200, 120)
        var s = PriorSampling()
        s.multiScale = true
        let data = try PriorDataset(directory: dir, crop: 16, sampling: s)
        // Every halving down to a short side of 16 is kept: 120, 60, 30.
        XCTAssertEqual(data.levels[0].map(\.height), [120, 60, 30])
        let sMin = data.minimumScale(0)
        XCTAssertEqual(sMin, 16.0 / 120, accuracy: 1e-12)
        var rng = PriorRNG(seed: 4)
        var logs: [Double] = [], snapped = 0
        for _ in 0..<4000 {
            let f = data.drawFootprint(0, rng: &rng)
            XCTAssertTrue(f.scale >= sMin && f.scale <= 1, "scale \(f.scale)")
            let plane = data.levels[0][f.level]
            XCTAssertTrue(f.size >= 16 && f.size < 32 && f.size <= Double(min(plane.width, plane.height)), "footprint \(f.size)")
            // The footprint covers crop/scale pixels of the full photo (up to the halving's floor).
            let covered = f.size * pow(2, Double(f.level))
            if f.size == 16 {
                snapped += 1
                XCTAssertEqual(f.scale * pow(2, Double(f.level)), 1, accuracy: 1 - PriorDataset.snapRatio + 1e-9)
            } else {
                XCTAssertEqual(covered * f.scale / 16, 1, accuracy: 0.03)
            }
            logs.append(log(f.scale))
        }
        // Log-uniform on [log sMin, 0]: the ends are reached and the mean sits in the middle.
        XCTAssertLessThan(logs.min()!, log(sMin) + 0.02)
        XCTAssertGreaterThan(logs.max()!, -0.02)
        XCTAssertEqual(logs.reduce(0, +) / Double(logs.count), log(sMin) / 2, accuracy: 0.05 * abs(log(sMin)))
        // About 0.152 of an octave per level is taken 1:1 (three levels over 2.9 octaves).
        XCTAssertEqual(Double(snapped) / 4000, 3 * log2(1 / PriorDataset.snapRatio) / log2(1 / sMin), accuracy: 0.03)
    }

    func testAreaWeightsAverageAndConstantPhotosStayConstant() throws {
        for size in [16.0, 17.3, 23.9, 31.99] {
            let w = PriorDataset.areaWeights(16, size)
            for (first, ws) in w {
                XCTAssertEqual(ws.reduce(0, +), 1, accuracy: 1e-5)
                XCTAssertTrue(first >= 0 && first + ws.count <= Int(size.rounded(.up)))
                XCTAssertTrue(ws.allSatisfy { $0 >= 0 })
            }
        }
        try ImageIO.write(Image(width: 90, height: 70, red: 0.8, green: 0.2, blue: 0.4), to: dir + "/flat.png")
        var s = PriorSampling()
        s.multiScale = true
        let data = try PriorDataset(directory: dir, crop: 16, sampling: s)
        var rng = PriorRNG(seed: 9)
        let batch = data.batch(12, rng: &rng).values
        let expect: [Float] = [0.8, 0.2, 0.4].map { (($0 * 255).rounded()) / 127.5 - 1 }
        for b in 0..<12 {
            for c in 0..<3 {
                for j in 0..<256 { XCTAssertEqual(batch[(b * 3 + c) * 256 + j], expect[c], accuracy: 1e-6) }
            }
        }
    }

    func testJitterStaysWithinItsBounds() throws {
        var rng = PriorRNG(seed: 3)
        var lo: Float = 2, hi: Float = 0
        for _ in 0..<2000 {
            let j = PriorDataset.drawJitter(0.05, rng: &rng)
            for f in [j.brightness, j.contrast, j.saturation] {
                XCTAssertTrue(f >= 0.95 && f <= 1.05, "factor \(f)")
                lo = min(lo, f); hi = max(hi, f)
            }
        }
        XCTAssertLessThan(lo, 0.951)
        XCTAssertGreaterThan(hi, 1.049)
        // One flat colour: its luma is the crop's mean, so saturation and contrast both scale the
        // distance to it, and brightness is a gain.
        let n = 4
        var p = [Float](repeating: 200, count: n) + [Float](repeating: 100, count: n) + [Float](repeating: 50, count: n)
        PriorDataset.applyJitter(&p, pixels: n, brightness: 1.04, contrast: 0.95, saturation: 1.05)
        let y: Float = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
        for (c, v) in [Float(200), 100, 50].enumerated() {
            XCTAssertEqual(p[c * n], 1.04 * (y + 0.95 * 1.05 * (v - y)), accuracy: 1e-3)
        }
        // Identity factors change nothing; extreme ones stay inside 0…255.
        var q: [Float] = (0..<48).map { Float(($0 * 37) % 256) }
        let orig = q
        PriorDataset.applyJitter(&q, pixels: 16, brightness: 1, contrast: 1, saturation: 1)
        for (a, b) in zip(q, orig) { XCTAssertEqual(a, b, accuracy: 1e-3) }
        PriorDataset.applyJitter(&q, pixels: 16, brightness: 1.05, contrast: 1.05, saturation: 1.05)
        XCTAssertTrue(q.allSatisfy { $0 >= 0 && $0 <= 255 && $0.isFinite })
        // In a batch: a mid-grey photo's crops move by at most 5 % (+ rounding), and do move.
        try ImageIO.write(Image(width: 40, height: 40, red: 0.5, green: 0.5, blue: 0.5), to: dir + "/grey.png")
        var s = PriorSampling()
        s.multiScale = true
        s.jitter = 0.05
        let data = try PriorDataset(directory: dir, crop: 16, sampling: s)
        let batch = data.batch(64, rng: &rng).values
        let levels = batch.map { ($0 + 1) * 127.5 }
        XCTAssertTrue(levels.allSatisfy { abs($0 / 128 - 1) <= 0.05 + 1 / 128 }, "\(levels.min()!)…\(levels.max()!)")
        XCTAssertGreaterThan(levels.max()! - levels.min()!, 8)
    }

    func testKindWeightsAreHonouredAndUnlistedFilesAreScenes() throws {
        for n in ["a.png", "b.png", "c.png", "d.png"] { try writePhoto(n, 24, 24) }
        let manifest = try writeManifest(["a.png": "face", "b.png": "person", "c.png": "scene"])
        var s = PriorSampling()
        s.kindWeights = try PriorSampling.parseKindWeights("face=4, person=2,scene=1")
        let data = try PriorDataset(directory: dir, crop: 16, sampling: s, kinds: try PriorSampling.kinds(manifest: manifest))
        XCTAssertEqual(data.kinds, ["face", "person", "scene", "scene"])
        XCTAssertEqual(data.kindCounts, ["face": 1, "person": 1, "scene": 2])
        var rng = PriorRNG(seed: 21)
        var counts = [0, 0, 0, 0]
        let n = 16000
        for _ in 0..<n { counts[data.pickPhoto(rng: &rng)] += 1 }
        for (i, p) in [0.5, 0.25, 0.125, 0.125].enumerated() {
            let sd = (Double(n) * p * (1 - p)).squareRoot()
            XCTAssertEqual(Double(counts[i]), Double(n) * p, accuracy: 4 * sd, "photo \(i): \(counts)")
        }
        XCTAssertThrowsError(try PriorSampling.parseKindWeights("face=-1"))
        XCTAssertThrowsError(try PriorSampling.parseKindWeights("face"))
        XCTAssertEqual(PriorSampling.formatKindWeights(try PriorSampling.parseKindWeights("scene=1,face=4")), "face=4.0,scene=1.0")
        var zero = PriorSampling()
        zero.kindWeights = ["face": 0, "person": 0, "scene": 0]
        XCTAssertThrowsError(try PriorDataset(directory: dir, crop: 16, sampling: zero, kinds: try PriorSampling.kinds(manifest: manifest)))
    }

    func testUprightKindsAreNeverTurnedOrFlippedVertically() throws {
        // Dark at the top, bright at the bottom; only the face photo is drawn.
        try writePhoto("face.png", 40, 40, vertical: true)
        try writePhoto("scene.png", 40, 40, vertical: true)
        let manifest = try writeManifest(["face.png": "face"])
        for multi in [false, true] {
            var s = PriorSampling()
            s.multiScale = multi
            s.kindWeights = ["face": 1, "scene": 0]
            s.uprightKinds = ["face"]
            let data = try PriorDataset(directory: dir, crop: 16, sampling: s, kinds: try PriorSampling.kinds(manifest: manifest))
            var rng = PriorRNG(seed: 5)
            let v = data.batch(40, rng: &rng).values
            for b in 0..<40 {
                let top = v[b * 768 + 0 * 16 + 7], bottom = v[b * 768 + 15 * 16 + 7]
                XCTAssertLessThan(top, bottom, "crop \(b) is turned or upside down")
            }
            // The same photo as a scene gets turns and flips too.
            s.uprightKinds = []
            let free = try PriorDataset(directory: dir, crop: 16, sampling: s, kinds: try PriorSampling.kinds(manifest: manifest))
            let w = free.batch(40, rng: &rng).values
            XCTAssertTrue((0..<40).contains { w[$0 * 768 + 7] >= w[$0 * 768 + 15 * 16 + 7] })
        }
    }

    func testMediumConfigFitsTheBudget() throws {
        let config = try PriorModel.config(named: "medium")
        XCTAssertEqual(config.attentionRates(), [4, 8])
        let layout = try ADMLayout(config)
        let attention = layout.allBlocks.flatMap(\.layers).filter { if case .attention = $0 { return true } else { return false } }
        // Input and output blocks at 1/4 and 1/8 (1 + 2 each) and the middle block.
        XCTAssertEqual(attention.count, 7)
        var rng = PriorRNG(seed: 1)
        let params = try PriorModel.initialParameters(config, rng: &rng)
        let net = try ADMUNet(config: config, weights: params)
        let count = params.values.reduce(0) { $0 + $1.count }
        XCTAssertEqual(net.parameterCount, count)
        XCTAssertLessThanOrEqual(2 * count, 20 * 1024 * 1024 - 64 * 1024, "over 20 MB as fp16")
        XCTAssertLessThanOrEqual(try PriorModel.forwardFLOPs(config, height: 256, width: 256), 100e9)
        XCTAssertThrowsError(try PriorModel.config(named: "huge"))
    }

    func options() throws -> PriorTrainingOptions {
        var o = PriorTrainingOptions()
        o.configName = "tiny-attn"
        o.steps = 10
        o.batch = 3
        o.crop = 16
        o.lr = 2e-3
        o.warmup = 2
        o.emaDecay = 0.9
        o.seed = 13
        o.multiScale = true
        o.jitter = 0.05
        o.kindWeights = "face=4.0,scene=1.0"
        o.uprightKinds = "face"
        o.manifest = try writeManifest(["a.png": "face"])
        return o
    }

    func testResumeIsExactWithTheNewSamplingOptions() throws {
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let o = try options()
        for (n, w) in [("a.png", 40), ("b.png", 64), ("c.png", 30)] {
            try writePhoto(n, w, 36)
            try FileManager.default.moveItem(atPath: dir + "/" + n, toPath: data + "/" + n)
        }
        let a = try PriorTrainer(options: o)
        let da = try a.dataset(directory: data)
        for _ in 0..<3 { try a.trainStep(da) }
        try a.saveCheckpoint(to: dir + "/ckpt.safetensors")
        let next = [try a.trainStep(da), try a.trainStep(da)]
        XCTAssertTrue(next.allSatisfy(\.isFinite))

        let b = try PriorTrainer.resume(from: dir + "/ckpt.safetensors")
        XCTAssertEqual(b.options, o)
        XCTAssertEqual(b.step, 3)
        let db = try b.dataset(directory: data)
        XCTAssertEqual(db.kinds, ["face", "scene", "scene"])
        let resumed = [try b.trainStep(db), try b.trainStep(db)]
        XCTAssertEqual(resumed, next, "the resumed steps' losses differ from the uninterrupted run")
        for (p, q) in zip(a.parameters, b.parameters) { XCTAssertEqual(p.values, q.values) }
        for (p, q) in zip(a.ema.shadow, b.ema.shadow) { XCTAssertEqual(p.values, q.values) }
        // The attention layers learn: their output projections start at zero and move.
        let proj = a.names.firstIndex(of: "input_blocks.1.1.proj_out.weight")!
        XCTAssertTrue(a.parameters[proj].values.contains { $0 != 0 })
    }

    func testCheckpointsWithoutTheNewOptionsSampleAsBefore() throws {
        var m = PriorTrainingOptions().metadata
        for k in ["multi_scale", "jitter", "kind_weights", "upright_kinds", "manifest"] { m[k] = nil }
        let o = try PriorTrainingOptions(metadata: m)
        XCTAssertEqual(o, PriorTrainingOptions())
        XCTAssertEqual(try o.sampling(), PriorSampling())
        var bad = try options()
        bad.manifest = ""
        XCTAssertThrowsError(try PriorTrainer(options: bad))
        bad = try options()
        bad.jitter = 1.5
        XCTAssertThrowsError(try PriorTrainer(options: bad))
    }
}
