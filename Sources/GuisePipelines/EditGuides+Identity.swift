import Foundation
import GuiseFace
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseVision

extension EditGuides {
    /// The default weight of the identity energy (dlib's squared descriptor distance, which is
    /// about 0.5–0.9 between two people). Much above it the guidance paints adversarial colour
    /// patterns that dlib reads as the other face (docs/EDIT.md).
    public static let defaultIdentityWeight = 300.0
    /// The harmonise's detail scale (`EditOptions.detailSigma`) that suits identity guidance, in
    /// pixels of dlib's 150² chip (`identity` returns it in photo pixels): on a face about the
    /// chip's size, at the usual 4 px the kept detail pins the face's features (a third of the
    /// move), and with no detail kept the small prior paints the face as blotches.
    public static let identityDetailScale = 2.0
    /// Views of the chip the identity energy averages over (the first as it is).
    public static let identityViews = 4

    /// Guidance that moves the face at `lm` towards the identity of `descriptor` (dlib's 128-d
    /// descriptor of another face): the swap's dlib energy (`DlibIdentityEnergy`) on x̂0, over
    /// the face's chip and small random views of it. The re-rendering starts from the photo
    /// itself, so the harmonise keeps the region's fine detail and the identity moves in the
    /// broader shapes and shading. Also returns the photo rectangle the network's window must
    /// include so the chips are whole (x0, y0, x1, y1, exclusive ends), and the detail scale to
    /// harmonise with (`identityDetailScale` chip pixels in photo pixels, at least that many).
    public static func identity(towards descriptor: [Float], image: Image, landmarks lm: FaceLandmarks,
                                identity: FaceIdentity, weight: Double = defaultIdentityWeight,
                                seed: UInt64 = 0) throws -> (guidance: EditGuidance, context: [Int], detailScale: Double) {
        guard descriptor.count == 128, descriptor.allSatisfy(\.isFinite) else {
            throw EditError("the identity reference must be a dlib descriptor of 128 finite values", category: .internal)
        }
        let points = try lm.dlib5()
        let views = DlibIdentityEnergy.views(count: identityViews, points: points, seed: seed ^ 0x1D_E471_7E00)
        let target = Tensor(shape: [1, descriptor.count], values: descriptor)
        let w = Float(weight)
        // A face larger than the chip is sampled sparsely by the chip's bilinear warp: its gradient
        // would land on scattered pixels and the guidance paint speckles. A Gaussian first, as
        // wide as the chip's pixel is (dlib itself shrinks large faces with pyramid_down).
        let shrink = try DlibChip.details(points: points, size: identity.encoder.chipSize, padding: 0.25).chipToImage.scale
        let blur = shrink > 1.2 ? gaussianKernel(sigma: 0.5 * (shrink * shrink - 1).squareRoot()) : nil
        let guidance = EditGuidance(name: "identity", start: { $0 }) { x0, origin in
            let shifted = views.map { v in v.map { Point($0.x - Double(origin.x), $0.y - Double(origin.y)) } }
            let energy = DlibIdentityEnergy(identity: identity, target: target, views: shifted)
            var img = x0.scaled(0.5, plus: 0.5)
            if let blur {
                img = NN.conv2d(img, weight: blur, padding: NN.Padding(integerLiteral: blur.shape[2] / 2), groups: 3)
            }
            return try energy(img).scaled(w)
        }
        // Every view's chip, with a little room.
        var x0 = Double.infinity, y0 = Double.infinity, x1 = -Double.infinity, y1 = -Double.infinity
        let s = Double(identity.encoder.chipSize)
        for v in views {
            let m = try DlibChip.details(points: v, size: identity.encoder.chipSize, padding: 0.25).chipToImage
            for c in [Point(0, 0), Point(s, 0), Point(0, s), Point(s, s)] {
                let p = m.apply(c)
                x0 = min(x0, p.x); y0 = min(y0, p.y); x1 = max(x1, p.x); y1 = max(y1, p.y)
            }
        }
        let context = [Int((x0 - 2).rounded(.down)), Int((y0 - 2).rounded(.down)), Int((x1 + 2).rounded(.up)) + 1, Int((y1 + 2).rounded(.up)) + 1]
        return (guidance, context, min(16, identityDetailScale * max(1, shrink)))
    }

    /// A normalised Gaussian [3, 1, k, k] for a per-channel (grouped) convolution.
    static func gaussianKernel(sigma: Double) -> Tensor {
        let r = max(1, Int((3 * sigma).rounded(.up))), side = 2 * r + 1
        var g = [Float](repeating: 0, count: side * side)
        for y in -r...r { for x in -r...r { g[(y + r) * side + x + r] = Float(exp(-Double(x * x + y * y) / (2 * sigma * sigma))) } }
        let sum = g.reduce(0, +)
        g = g.map { $0 / sum }
        return Tensor(shape: [3, 1, side, side], values: g + g + g)
    }

    /// dlib's descriptor of face `faceIndex` (largest first) of `photo`; `label` names it in errors.
    public static func identityDescriptor(of photo: Image, faceIndex: Int = 0, label: String, models: ModelCache,
                                          note: (String) -> Void = { _ in }) throws -> [Float] {
        let (d, _) = try models.detector(.blazeface, note: note)
        let face = try FaceSelection.pick(try d.detect(photo, order: .largest), index: faceIndex, label: label)
        let lm = try FaceSelection.landmarks(photo, face: face, analyzer: try models.faceAnalyzer())
        return try models.faceIdentity().descriptor(photo, dlib5: try lm.dlib5())
    }

    /// `identity` for face `faceIndex` of `image` towards the largest face of `reference`, with
    /// the models from `models`, or else `store`.
    public static func identityForFace(reference: Image, referenceLabel: String, image: Image, faceIndex: Int = 0,
                                       label: String = "the photo", weight: Double = defaultIdentityWeight, seed: UInt64 = 0,
                                       store: ModelStore? = nil, models: ModelCache? = nil,
                                       note: (String) -> Void = { _ in }) throws -> (guidance: EditGuidance, context: [Int], detailScale: Double) {
        let models = models ?? ModelCache(store: store)
        let descriptor = try identityDescriptor(of: reference, label: referenceLabel, models: models, note: note)
        let (d, _) = try models.detector(.blazeface, note: note)
        let face = try FaceSelection.pick(try d.detect(image, order: .largest), index: faceIndex, label: label)
        let lm = try FaceSelection.landmarks(image, face: face, analyzer: try models.faceAnalyzer())
        return try identity(towards: descriptor, image: image, landmarks: lm, identity: try models.faceIdentity(),
                            weight: weight, seed: seed)
    }
}
