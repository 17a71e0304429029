import XCTest
import GuiseDiffusion
import GuiseFormats
import GuiseImage
import GuiseNetworks
@testable import GuisePipelines
import GuiseTensor
import GuiseTestSupport

/// Reference attention through the pipelines. The shipped prior's one attention layer barely
/// reacts to a reference (docs/ARCHITECTURE.md), so whether the reference reaches the network is
/// checked with a random-weight ADM (written here as a prior file) whose attention layers, at the
/// lowest level and in the middle, have weights large enough to show.
final class ReferenceAttentionPipelineTests: XCTestCase {
    static let attentionModel: String = {
        let path = NSTemporaryDirectory() + "guise-refattn-\(ProcessInfo.processInfo.processIdentifier).safetensors"
        var c = ADMConfig()
        c.imageSize = 64
        c.numChannels = 32
        c.numResBlocks = 1
        c.channelMult = [1, 2, 2, 2]
        c.attentionResolutions = [8]
        c.numHeadChannels = 32
        c.noiseSchedule = "cosine"
        // Dense layers ~ N(0, 0.8²/fan-in), zero-initialised ones included; norms 1, biases 0.02.
        let noise = SeededNoise(seed: 77)
        var weights: [String: Tensor] = [:]
        for p in try! ADMLayout(c).parameters {
            switch p.kind {
            case .normWeight: weights[p.name] = Tensor(shape: p.shape, repeating: 1)
            case .normBias: weights[p.name] = Tensor(zeros: p.shape)
            case .classEmbedding: weights[p.name] = try! noise.next(p.shape)
            case .dense(let fanIn, _):
                weights[p.name] = try! noise.next(p.shape).scaled(p.name.hasSuffix(".bias") ? 0.02 : 0.8 / Float(fanIn).squareRoot())
            }
        }
        let json = try! JSONSerialization.data(withJSONObject: c.jsonObject(), options: [.sortedKeys])
        try! SafeTensorsWriter.write(tensors: weights, to: path, metadata: ["adm_config": String(decoding: json, as: UTF8.self)])
        return path
    }()

    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: attentionModel)
    }

    func testTheDenoiserPassesTheReferenceToTheNetwork() throws {
        let model = try DiffusionModel.load(Self.attentionModel)
        XCTAssertEqual(model.config.attentionResolutions, [8])
        let x = try SeededNoise(seed: 1).next([1, 3, 64, 64]), xr = try SeededNoise(seed: 2).next([1, 3, 64, 64])
        let t = Tensor(shape: [1], values: [300])
        let expected = try model.net(x, timesteps: t, reference: ADMReference(x: xr, weight: 0.5))
        let got = try model.denoiser(x, t, [ReferenceImage.conditioningKey: xr, ReferenceImage.weightKey: Tensor.scalar(0.5)])
        XCTAssertEqual(got.values, expected.values)
        let plain = try model.denoiser(x, t, [:])
        XCTAssertGreaterThan(zip(got.values, plain.values).map { abs($0 - $1) }.max()!, 1e-3)
    }

    func swapOptions(_ w: Double) -> FaceSwapOptions {
        var o = FaceSwapOptions()
        o.model = Self.attentionModel
        o.maxWorkSize = 128
        o.identityWeight = 0
        o.structureWeight = 0
        o.gazeWeight = 0
        o.referenceAttention = w
        return o
    }

    func testSwapWithTheSourceAsReference() throws {
        let source = try sample("biden.jpg"), target = try sample("astronaut.png")
        let (plain, plainReport) = try FaceSwap(options: swapOptions(0)).run(source: source, target: target)
        let (with, report) = try FaceSwap(options: swapOptions(1)).run(source: source, target: target)
        XCTAssertNil(plainReport.referenceAttention)
        XCTAssertEqual(report.referenceAttention, 1)
        XCTAssertFalse(with.rgb.contains { !$0.isFinite })
        let n = target.pixelCount
        var differ = 0, outside = 0
        for i in 0..<n {
            let changedByReference = (0..<3).contains { with.rgb[$0 * n + i] != plain.rgb[$0 * n + i] }
            let swapped = (0..<3).contains { plain.rgb[$0 * n + i] != target.rgb[$0 * n + i] }
            if changedByReference { differ += 1; if !swapped && (0..<3).allSatisfy({ with.rgb[$0 * n + i] != target.rgb[$0 * n + i] }) { outside += 1 } }
        }
        XCTAssertGreaterThan(differ, 1000, "the reference reaches the network")
        // Both are pasted under the same mask: where the plain swap kept the target, so does this one.
        XCTAssertEqual(outside, 0)
        XCTAssertThrowsError(try FaceSwap(options: swapOptions(-1))) { XCTAssertTrue("\($0)".contains("reference attention")) }
        XCTAssertThrowsError(try FaceSwap(options: swapOptions(.nan))) { XCTAssertTrue("\($0)".contains("reference attention")) }
    }

    static let models = Result { ModelCache(store: try ModelStore(directory: repoRoot + "/Models")) }

    func clothes(_ configure: (inout ClothesOptions) -> Void) throws -> ClothesSwap {
        var o = ClothesOptions()
        o.harmonizeSteps = 4
        configure(&o)
        return try ClothesSwap(options: o, models: try Self.models.get())
    }

    func testClothesHarmoniseWithTheGarmentAsReference() throws {
        // Half size: the pipeline's per-pixel loops are slow in a debug build.
        let person = try sample("astronaut.png").resized(width: 256, height: 256)
        let garment = try sample("grace_hopper.jpg")
        let half = try garment.resized(width: garment.width / 2, height: garment.height / 2)
        let n = person.pixelCount
        let base = try clothes { _ in }.runDetailed(person: person, garment: half)
        XCTAssertNil(base.report.harmonize)
        func check(_ r: ClothesSwap.Detailed, _ what: String) -> Int {
            var inside = 0
            for i in 0..<n {
                let same = (0..<3).allSatisfy { r.image.rgb[$0 * n + i] == base.image.rgb[$0 * n + i] }
                if !r.changed.bits[i] {
                    if !((0..<3).allSatisfy { r.image.rgb[$0 * n + i] == person.rgb[$0 * n + i] }) {
                        XCTFail("\(what): pixel \(i) changed outside the region"); return -1
                    }
                } else if !same { inside += 1 }
            }
            XCTAssertFalse(r.image.rgb.contains { !$0.isFinite }, what)
            return inside
        }
        let harmonised = try clothes { $0.harmonize = 0.5; $0.model = Self.attentionModel }.runDetailed(person: person, garment: half)
        XCTAssertEqual(harmonised.report.harmonize, 0.5)
        XCTAssertNil(harmonised.report.referenceAttention)
        XCTAssertGreaterThan(check(harmonised, "harmonise"), n / 20)
        XCTAssertEqual(harmonised.report.diffusionEvaluations.map { $0 > 0 }, true)

        let referenced = try clothes { $0.harmonize = 0.5; $0.model = Self.attentionModel; $0.referenceAttention = 2 }
            .runDetailed(person: person, garment: half)
        XCTAssertEqual(referenced.report.referenceAttention, 2)
        _ = check(referenced, "harmonise with reference")
        var differ = 0
        for i in 0..<(3 * n) where referenced.image.rgb[i] != harmonised.image.rgb[i] { differ += 1 }
        XCTAssertGreaterThan(differ, 1000, "the garment reference reaches the network")

        XCTAssertThrowsError(try clothes { $0.referenceAttention = 1 }) { XCTAssertTrue("\($0)".contains("--harmonize")) }
        XCTAssertThrowsError(try clothes { $0.harmonize = 1.5 }) { XCTAssertTrue("\($0)".contains("--harmonize")) }
    }
}
