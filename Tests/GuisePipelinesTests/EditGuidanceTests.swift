import XCTest
import Foundation
import GuiseFace
import GuiseImage
import GuiseTensor
import GuiseVision
@testable import GuisePipelines

/// The identity and appearance guidance of `Edit`: each lowers its own energy against the same
/// edit at weight 0, and nothing outside the mask changes.
extension EditTests {
    func samplePhoto(_ name: String) throws -> Image {
        let path = Self.root + "/Samples/" + name
        guard FileManager.default.fileExists(atPath: path) else {
            throw NSError(domain: "EditGuidanceTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path) is missing: run `make samples`"])
        }
        return try ImageIO.read(path)
    }

    func testIdentityGuidanceLowersItsOwnLoss() throws {
        let photo = try samplePhoto("astronaut.png"), reference = try samplePhoto("obama.jpg")
        let models = ModelCache()
        let descriptor = try EditGuides.identityDescriptor(of: reference, label: "obama", models: models)
        let analyzer = try models.faceAnalyzer(), identity = try models.faceIdentity()
        let face = try FaceSelection.pick(try DetectorChoice.blazeface.make().detector.detect(photo, order: .largest), index: 0, label: "astronaut")
        let lm = try FaceSelection.landmarks(photo, face: face, analyzer: analyzer)
        let mask = try EditMasks.region(.face, in: photo)
        let points = try lm.dlib5()
        func distance(_ image: Image) throws -> Double { FaceIdentity.distance(try identity.descriptor(image, dlib5: points), descriptor) }
        func run(weight: Double) throws -> Image {
            let g = try EditGuides.identity(towards: descriptor, image: photo, landmarks: lm, identity: identity, weight: weight)
            let e = try edit { o in
                o.mode = .harmonize; o.poisson = false; o.steps = 10; o.strength = 0.5
                o.guidance = g.guidance; o.context = g.context
            }
            let (out, report) = try e.run(image: photo, mask: mask)
            XCTAssertEqual(report.guidance, "identity")
            assertKeptOutside(out, photo, mask)
            return out
        }
        let before = try distance(photo)
        let plain = try distance(try run(weight: 0)), guided = try distance(try run(weight: EditGuides.defaultIdentityWeight))
        XCTAssertFalse(before.isNaN || plain.isNaN || guided.isNaN)
        XCTAssertLessThan(guided, plain - 0.05, "identity guidance should bring the face nearer the reference (\(before): \(plain) → \(guided))")
    }

    func testAppearanceGuidanceLowersItsOwnLoss() throws {
        let photo = try samplePhoto("chelsea.png"), source = try samplePhoto("coffee.png")
        let patch = try source.cropped(x: 10, y: 150, width: 80, height: 180)
        let mask = try EditMasks.box(x: 40, y: 180, w: 100, h: 90, width: photo.width, height: photo.height)
        let target = try Autograd.noGrad {
            try EditGuides.appearanceStatistics(ImageTensor.tensor(patch), weight: Tensor(shape: [1, 1, patch.height, patch.width], repeating: 1))
        }
        func loss(_ image: Image) throws -> Float {
            try Autograd.noGrad {
                let t = ImageTensor.tensor(try image.cropped(x: 20, y: 160, width: 140, height: 130))
                var m = [Float](repeating: 0, count: 140 * 130)
                for y in 20..<110 { for x in 20..<120 { m[y * 140 + x] = 1 } }
                let s = try EditGuides.appearanceStatistics(t, weight: Tensor(shape: [1, 1, 130, 140], values: m))
                return EditGuides.appearanceLoss(s, target).item()
            }
        }
        func run(weight: Double, start: Bool) throws -> Image {
            var g = try EditGuides.appearance(patch: patch, mask: mask, weight: weight)
            if !start { g.start = { $0 } }
            let (out, report) = try edit { o in
                o.mode = .harmonize; o.poisson = false; o.steps = 10; o.strength = 0.5; o.guidance = g
            }.run(image: photo, mask: mask)
            XCTAssertEqual(report.guidance, "appearance")
            assertKeptOutside(out, photo, mask)
            return out
        }
        // The start alone: exact outside the mask, and nearer the patch.
        let moved = try EditGuides.appearanceTransfer(photo, mask: mask, patch: patch)
        assertKeptOutside(moved, photo, mask)
        let before = try loss(photo), transferred = try loss(moved)
        // The guidance alone (from the photo itself), at the default weight and at five times it,
        // and then from the transferred start, which does most of the work.
        let plain = try loss(try run(weight: 0, start: false)), guided = try loss(try run(weight: EditGuides.defaultAppearanceWeight, start: false))
        let strong = try loss(try run(weight: 5 * EditGuides.defaultAppearanceWeight, start: false))
        let both = try loss(try run(weight: EditGuides.defaultAppearanceWeight, start: true))
        let withStartOnly = try loss(try run(weight: 0, start: true))
        for v in [before, transferred, plain, guided, strong, both, withStartOnly] { XCTAssertFalse(v.isNaN) }
        XCTAssertLessThan(transferred, before * 0.5, "the transfer moves the region towards the patch (\(before) → \(transferred))")
        XCTAssertLessThan(withStartOnly, plain * 0.5, "the transferred start moves the result towards the patch (\(plain) → \(withStartOnly))")
        XCTAssertLessThan(guided, plain * 0.97, "appearance guidance should lower its loss (\(plain) → \(guided))")
        XCTAssertLessThan(strong, plain * 0.85, "stronger appearance guidance lowers it further (\(plain) → \(strong))")
        XCTAssertLessThan(both, withStartOnly, "guidance lowers the loss from the transferred start too (\(withStartOnly) → \(both))")

        XCTAssertThrowsError(try EditGuides.appearance(patch: try patch.cropped(x: 0, y: 0, width: 20, height: 20), mask: mask)) { e in
            XCTAssertTrue("\(e)".contains("at least"), "\(e)")
        }
    }
}
