import GuiseImage
import GuiseVision

/// Where the five keypoints sit in a canonical square crop.
public struct FaceTemplate: Equatable, Sendable {
    public var size: Int
    public var points: [String: Point]

    public init(size: Int, points: [String: Point]) {
        self.size = size
        self.points = points
    }

    /// ArcFace's 112 × 112 template (insightface's `arcface_dst`), the mean 5 points of its
    /// training crops; face-recognition networks expect crops made with it.
    public static let arcface112 = FaceTemplate(size: 112, points: [
        KeypointName.leftEye: Point(38.2946, 51.6963),
        KeypointName.rightEye: Point(73.5318, 51.5014),
        KeypointName.nose: Point(56.0252, 71.7366),
        KeypointName.mouthLeft: Point(41.5493, 92.3655),
        KeypointName.mouthRight: Point(70.7299, 92.2041),
    ])

    /// An FFHQ-style 256 × 256 template, derived by applying FFHQ's crop rule
    /// (ffhq-dataset's recreate_aligned_images, Karras et al. 2019) to the ArcFace points:
    /// with e = eye-to-eye and m = eye-midpoint-to-mouth-midpoint vectors, the crop is the
    /// square centred at eyeMid + 0.1·m, of half-side max(2|e|, 1.8|m|), turned along
    /// e − rot90(m). The eyes and nose land within a pixel of the 5-point FFHQ template that
    /// face-restoration tools (facexlib) measured on FFHQ itself, scaled to 256; the mouth
    /// corners lie ~6 px lower and ~2.5 px closer together, as ArcFace's mean face differs.
    public static let ffhq256: FaceTemplate = {
        let a = arcface112.points
        func mid(_ p: Point, _ q: Point) -> Point { Point((p.x + q.x) / 2, (p.y + q.y) / 2) }
        let eyes = mid(a[KeypointName.leftEye]!, a[KeypointName.rightEye]!)
        let mouth = mid(a[KeypointName.mouthLeft]!, a[KeypointName.mouthRight]!)
        let e = Point(a[KeypointName.rightEye]!.x - a[KeypointName.leftEye]!.x, a[KeypointName.rightEye]!.y - a[KeypointName.leftEye]!.y)
        let m = Point(mouth.x - eyes.x, mouth.y - eyes.y)
        var x = Point(e.x + m.y, e.y - m.x)
        let len = (x.x * x.x + x.y * x.y).squareRoot()
        let half = max(2 * (e.x * e.x + e.y * e.y).squareRoot(), 1.8 * (m.x * m.x + m.y * m.y).squareRoot())
        x = Point(x.x / len * half, x.y / len * half)
        let y = Point(-x.y, x.x)
        let c = Point(eyes.x + 0.1 * m.x, eyes.y + 0.1 * m.y)
        let size = 256.0
        let quad = [Point(c.x - x.x - y.x, c.y - x.y - y.y), Point(c.x - x.x + y.x, c.y - x.y + y.y),
                    Point(c.x + x.x + y.x, c.y + x.y + y.y), Point(c.x + x.x - y.x, c.y + x.y - y.y)]
        let corners = [Point(0, 0), Point(0, size), Point(size, size), Point(size, 0)]
        // The quad is a rotated square, so this similarity maps it exactly.
        let t = try! AffineTransform.similarity(from: quad, to: corners)
        return FaceTemplate(size: 256, points: a.mapValues(t.apply))
    }()

    /// The template for a crop size the CLI offers: 112 (ArcFace) or 256 (FFHQ).
    public static func forSize(_ size: Int) -> FaceTemplate? {
        [112: arcface112, 256: ffhq256][size]
    }
}

/// A face cut out to a canonical crop, with the map from image to crop pixels.
public struct AlignedFace {
    public var crop: Image
    /// Image coordinates → crop coordinates.
    public var transform: AffineTransform
    public var template: FaceTemplate
}

public enum FaceAligner {
    /// Five points guessed from a box alone, as fractions of its width and height, for
    /// detectors that give no keypoints. Measured by hand on OpenCV's frontal Haar box of
    /// Samples/astronaut.png (brow to lower lip); good enough for an upright, frontal face.
    public static let boxKeypointFractions: [String: Point] = [
        KeypointName.leftEye: Point(0.30, 0.37),
        KeypointName.rightEye: Point(0.72, 0.37),
        KeypointName.nose: Point(0.51, 0.61),
        KeypointName.mouthLeft: Point(0.34, 0.79),
        KeypointName.mouthRight: Point(0.68, 0.79),
    ]

    /// Keypoint pairs (face → template) used for the fit: the five template points the face
    /// has, the mouth centre standing in for missing corners, else points guessed from the box.
    static func correspondences(_ face: Face, _ template: FaceTemplate) -> ([Point], [Point]) {
        var points = template.points
        if let l = points[KeypointName.mouthLeft], let r = points[KeypointName.mouthRight],
           face.keypoints[KeypointName.mouthLeft] == nil || face.keypoints[KeypointName.mouthRight] == nil {
            points[KeypointName.mouthCentre] = Point((l.x + r.x) / 2, (l.y + r.y) / 2)
            points[KeypointName.mouthLeft] = nil
            points[KeypointName.mouthRight] = nil
        }
        let names = points.keys.filter { face.keypoints[$0] != nil }.sorted()
        if names.count >= 2 && names.contains(KeypointName.leftEye) && names.contains(KeypointName.rightEye) {
            return (names.map { face.keypoints[$0]! }, names.map { points[$0]! })
        }
        let names5 = boxKeypointFractions.keys.sorted()
        let b = face.box
        return (names5.map { Point(b.x + boxKeypointFractions[$0]!.x * b.width, b.y + boxKeypointFractions[$0]!.y * b.height) },
                names5.map { template.points[$0]! })
    }

    /// Similarity-warps the face to the template's square crop (bilinear; edges replicate).
    public static func align(_ image: Image, face: Face, template: FaceTemplate = .ffhq256) throws -> AlignedFace {
        let (from, to) = correspondences(face, template)
        let t = try AffineTransform.similarity(from: from, to: to)
        let crop = try image.warpedAffine(t, width: template.size, height: template.size, interpolation: .linear, border: .replicate)
        return AlignedFace(crop: crop, transform: t, template: template)
    }

    /// The blend weights for pasting a crop back: the crop's footprint in the image (times the
    /// optional crop-space `mask`), eroded, then blurred with σ = feather/4. OpenCV's kernel
    /// reaches 4σ = feather pixels along each axis, so √2·feather on the diagonal: eroding by
    /// more than that keeps every weight outside the footprint exactly 0. `feather` nil picks
    /// 5 % of the face's size in the image.
    public static func pasteMask(for aligned: AlignedFace, imageWidth: Int, imageHeight: Int,
                                 mask: Mask? = nil, feather: Int? = nil) throws -> Mask {
        let inverse = try aligned.transform.inverted()
        let size = aligned.template.size
        if let mask, mask.width != size || mask.height != size {
            throw FaceError("the paste mask is \(mask.width)x\(mask.height), the crop \(size)x\(size)")
        }
        // Only pixels the crop covers fully; bilinear sampling blends its edge with the border.
        let footprint = try Mask(width: size, height: size, fill: 1).warpedAffine(inverse, width: imageWidth, height: imageHeight)
        var region = Mask(width: imageWidth, height: imageHeight, values: footprint.values.map { $0 >= 0.999 ? 1 : 0 })
        if let mask {
            let warped = try mask.warpedAffine(inverse, width: imageWidth, height: imageHeight)
            region.values = zip(region.values, warped.values).map { $0 * min(max($1, 0), 1) }
        }
        let radius = feather ?? max(2, Int((0.05 * Double(size) / aligned.transform.scale).rounded()))
        let erosion = Int((Double(radius) * 2.0.squareRoot()).rounded(.up)) + 1
        return try region.eroded(radius: erosion).blurred(sigma: Double(radius) / 4)
    }

    /// Puts a (possibly edited) crop back into the image: inverse warp, feathered mask, and
    /// optionally Poisson blending (cv::seamlessClone) inside it. Pixels where the mask is 0,
    /// including everything outside the crop's footprint, are returned bit-exact.
    public static func pasteBack(_ crop: Image, of aligned: AlignedFace, into image: Image,
                                 mask: Mask? = nil, feather: Int? = nil, poisson: Bool = false) throws -> Image {
        guard crop.width == aligned.template.size, crop.height == aligned.template.size else {
            throw FaceError("the crop is \(crop.width)x\(crop.height), expected \(aligned.template.size)x\(aligned.template.size)")
        }
        let weights = try pasteMask(for: aligned, imageWidth: image.width, imageHeight: image.height, mask: mask, feather: feather)
        var warped = try crop.warpedAffine(try aligned.transform.inverted(), width: image.width, height: image.height,
                                           interpolation: .linear, border: .replicate)
        if poisson {
            let inside = Mask(width: image.width, height: image.height, values: weights.values.map { $0 > 0.5 ? 1 : 0 })
            if inside.values.contains(1) { warped = try image.seamlessCloned(warped, mask: inside) }
        }
        return try image.blended(with: warped, mask: weights)
    }
}
