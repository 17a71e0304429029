import CVBridge

/// A point in pixel coordinates: x to the right, y down, (0, 0) the centre of the top-left pixel
/// (OpenCV's convention).
public struct Point: Equatable, Codable, Sendable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) {
        self.x = x
        self.y = y
    }
}

/// A 2×3 affine map, row-major as OpenCV's: x' = a·x + b·y + c, y' = d·x + e·y + f.
public struct AffineTransform: Equatable, Sendable {
    public var matrix: [Double]

    public init(_ matrix: [Double]) {
        precondition(matrix.count == 6, "an affine transform has 6 coefficients")
        self.matrix = matrix
    }

    public static let identity = AffineTransform([1, 0, 0, 0, 1, 0])

    public func apply(_ p: Point) -> Point {
        Point(matrix[0] * p.x + matrix[1] * p.y + matrix[2], matrix[3] * p.x + matrix[4] * p.y + matrix[5])
    }

    /// The inverse map (cv::invertAffineTransform); throws for a singular transform.
    public func inverted() throws -> AffineTransform {
        var inv = [Double](repeating: 0, count: 6)
        try OpenCV.check(cvb_invert_affine(matrix, &inv))
        return AffineTransform(inv)
    }

    /// The least-squares similarity (rotation, uniform scale, translation; no reflection)
    /// taking `source` to `target`: Umeyama's closed form, which in 2-D reduces to one complex
    /// division. It is what scikit-image's SimilarityTransform (used by insightface's
    /// alignment) computes, and is deterministic, unlike a RANSAC/LMEDS fit.
    public static func similarity(from source: [Point], to target: [Point]) throws -> AffineTransform {
        guard source.count == target.count, source.count >= 2 else {
            throw ImageError("a similarity needs at least 2 matching point pairs", category: .internal)
        }
        let n = Double(source.count)
        let ms = Point(source.map(\.x).reduce(0, +) / n, source.map(\.y).reduce(0, +) / n)
        let mt = Point(target.map(\.x).reduce(0, +) / n, target.map(\.y).reduce(0, +) / n)
        var dot = 0.0, cross = 0.0, norm = 0.0
        for (s, t) in zip(source, target) {
            let a = Point(s.x - ms.x, s.y - ms.y), b = Point(t.x - mt.x, t.y - mt.y)
            dot += a.x * b.x + a.y * b.y
            cross += a.x * b.y - a.y * b.x
            norm += a.x * a.x + a.y * a.y
        }
        guard norm > 0 else { throw ImageError("the source points coincide", category: .internal) }
        let c = dot / norm, s = cross / norm  // scale·cos θ, scale·sin θ
        return AffineTransform([c, -s, mt.x - (c * ms.x - s * ms.y),
                                s, c, mt.y - (s * ms.x + c * ms.y)])
    }

    /// The uniform scale of a similarity.
    public var scale: Double { (matrix[0] * matrix[0] + matrix[3] * matrix[3]).squareRoot() }
}

public enum Interpolation: Int32, Sendable {
    case nearest = 0, linear = 1, cubic = 2, area = 3
}

/// What a warp samples outside the source image.
public enum Border: Equatable, Sendable {
    case constant(Float)
    /// The nearest edge pixel.
    case replicate
    /// Mirrored without repeating the edge pixel (OpenCV's BORDER_REFLECT_101).
    case reflect

    var mode: Int32 {
        switch self {
        case .constant: Int32(CVB_BORDER_CONSTANT)
        case .replicate: Int32(CVB_BORDER_REPLICATE)
        case .reflect: Int32(CVB_BORDER_REFLECT101)
        }
    }

    var value: Float {
        if case .constant(let v) = self { return v }
        return 0
    }
}

/// Raw plane operations behind Image and Mask: `count` planes of width × height, one after another.
/// The sizes are checked here, not only in initialisers, because OpenCV trusts them and this
/// module builds with -Ounchecked, where preconditions vanish.
enum Planes {
    static func check(_ v: [Float], _ w: Int, _ h: Int, _ count: Int) throws {
        guard w > 0, h > 0, v.count == w * h * count else {
            throw ImageError("\(v.count) values do not make \(count) planes of \(w)x\(h)", category: .internal)
        }
    }

    static func resize(_ v: [Float], _ w: Int, _ h: Int, _ count: Int, to dw: Int, _ dh: Int, _ interp: Interpolation) throws -> [Float] {
        try check(v, w, h, count)
        guard dw > 0 && dh > 0 else { throw ImageError("cannot resize to \(dw)x\(dh)", category: .internal) }
        var out = [Float](repeating: 0, count: dw * dh * count)
        try OpenCV.check(cvb_resize(v, Int32(w), Int32(h), Int32(count), &out, Int32(dw), Int32(dh), interp.rawValue))
        return out
    }

    static func warp(_ v: [Float], _ w: Int, _ h: Int, _ count: Int, _ t: AffineTransform, to dw: Int, _ dh: Int,
                     _ interp: Interpolation, border: Border) throws -> [Float] {
        try check(v, w, h, count)
        guard dw > 0 && dh > 0 else { throw ImageError("cannot warp to \(dw)x\(dh)", category: .internal) }
        var out = [Float](repeating: 0, count: dw * dh * count)
        try OpenCV.check(cvb_warp_affine(v, Int32(w), Int32(h), Int32(count), t.matrix, &out, Int32(dw), Int32(dh),
                                         interp.rawValue, border.mode, border.value))
        return out
    }

    static func blur(_ v: [Float], _ w: Int, _ h: Int, _ count: Int, sigma: Double) throws -> [Float] {
        try check(v, w, h, count)
        guard sigma > 0 else { return v }
        var out = [Float](repeating: 0, count: v.count)
        try OpenCV.check(cvb_gaussian_blur(v, Int32(w), Int32(h), Int32(count), &out, sigma, 0))
        return out
    }

    static func morphology(_ v: [Float], _ w: Int, _ h: Int, _ count: Int, dilate: Bool, radius: Int) throws -> [Float] {
        try check(v, w, h, count)
        guard radius > 0 else { return v }
        var out = [Float](repeating: 0, count: v.count)
        try OpenCV.check(cvb_morphology(v, Int32(w), Int32(h), Int32(count), &out, dilate ? 1 : 0, Int32(radius)))
        return out
    }
}

extension Image {
    /// Throws if the planes do not match the size (they are public and mutable).
    public func validate() throws {
        try Planes.check(rgb, width, height, 3)
        if let alpha { try Planes.check(alpha, width, height, 1) }
    }

    /// RGB and alpha planes together, so one bridge call handles both.
    private var allPlanes: (values: [Float], count: Int) {
        get throws {
            try validate()
            return alpha.map { (rgb + $0, 4) } ?? (rgb, 3)
        }
    }

    private func with(_ planes: [Float], width w: Int, height h: Int) -> Image {
        let n = w * h
        return Image(width: w, height: h, rgb: Array(planes[0..<3 * n]),
                     alpha: alpha == nil ? nil : Array(planes[3 * n..<4 * n]), sourceFormat: sourceFormat)
    }

    public func resized(width w: Int, height h: Int, interpolation: Interpolation = .area) throws -> Image {
        let (v, c) = try allPlanes
        return with(try Planes.resize(v, width, height, c, to: w, h, interpolation), width: w, height: h)
    }

    /// dst(p) = self(t⁻¹(p)) on a width × height canvas (cv::warpAffine).
    public func warpedAffine(_ t: AffineTransform, width w: Int, height h: Int,
                             interpolation: Interpolation = .linear, border: Border = .constant(0)) throws -> Image {
        let (v, c) = try allPlanes
        return with(try Planes.warp(v, width, height, c, t, to: w, h, interpolation, border: border), width: w, height: h)
    }

    public func blurred(sigma: Double) throws -> Image {
        let (v, c) = try allPlanes
        return with(try Planes.blur(v, width, height, c, sigma: sigma), width: width, height: height)
    }

    /// `top` where mask = 1, self where mask = 0, linear in between. Pixels where the mask is
    /// exactly 0 are copied, so they stay bit-exact.
    public func blended(with top: Image, mask: Mask) throws -> Image {
        guard top.width == width, top.height == height, mask.width == width, mask.height == height else {
            throw ImageError("blend: image, overlay and mask sizes differ", category: .internal)
        }
        try validate()
        try top.validate()
        try Planes.check(mask.values, width, height, 1)
        var out = self
        let n = pixelCount
        for i in 0..<n where mask.values[i] > 0 {
            let m = min(mask.values[i], 1)
            for c in 0..<3 { out.rgb[c * n + i] = rgb[c * n + i] * (1 - m) + top.rgb[c * n + i] * m }
            if out.alpha != nil { out.alpha![i] = alpha![i] * (1 - m) + (top.alpha?[i] ?? 1) * m }
        }
        return out
    }

    /// Poisson blending (cv::seamlessClone, NORMAL_CLONE) of `source`, already in this image's
    /// coordinates, where mask > 0.5. OpenCV works in 8-bit here, so the blended region is
    /// quantised; pixels outside the mask are returned unchanged (bit-exact).
    public func seamlessCloned(_ source: Image, mask: Mask) throws -> Image {
        guard source.width == width, source.height == height, mask.width == width, mask.height == height else {
            throw ImageError("seamlessClone: image, source and mask sizes differ", category: .internal)
        }
        try validate()
        try source.validate()
        try Planes.check(mask.values, width, height, 1)
        var out = [Float](repeating: 0, count: rgb.count)
        try OpenCV.check(cvb_seamless_clone(source.rgb, rgb, mask.values, Int32(width), Int32(height), &out))
        let cloned = Image(width: width, height: height, rgb: out, alpha: alpha)
        return try blended(with: cloned, mask: Mask(width: width, height: height, values: mask.values.map { $0 > 0.5 ? 1 : 0 }))
    }

    /// Fills the pixels where mask > 0.5 with cv::inpaint (Telea's fast marching method),
    /// a baseline for masked editing. 8-bit inside OpenCV; pixels outside the mask are unchanged.
    public func inpainted(mask: Mask, radius: Double = 3) throws -> Image {
        guard mask.width == width, mask.height == height else { throw ImageError("inpaint: image and mask sizes differ", category: .internal) }
        try validate()
        try Planes.check(mask.values, width, height, 1)
        var out = [Float](repeating: 0, count: rgb.count)
        try OpenCV.check(cvb_inpaint_telea(rgb, mask.values, Int32(width), Int32(height), radius, &out))
        let filled = Image(width: width, height: height, rgb: out, alpha: alpha)
        return try blended(with: filled, mask: Mask(width: width, height: height, values: mask.values.map { $0 > 0.5 ? 1 : 0 }))
    }
}

/// A single-channel float map in 0…1 (region masks, alpha, feathering weights).
public struct Mask: Equatable {
    public var width: Int
    public var height: Int
    public var values: [Float]

    public init(width: Int, height: Int, values: [Float]) {
        precondition(width > 0 && height > 0 && values.count == width * height, "mask size mismatch")
        self.width = width
        self.height = height
        self.values = values
    }

    public init(width: Int, height: Int, fill: Float) {
        self.init(width: width, height: height, values: [Float](repeating: fill, count: width * height))
    }

    public subscript(x: Int, y: Int) -> Float {
        get { values[y * width + x] }
        set { values[y * width + x] = newValue }
    }

    public func resized(width w: Int, height h: Int, interpolation: Interpolation = .linear) throws -> Mask {
        Mask(width: w, height: h, values: try Planes.resize(values, width, height, 1, to: w, h, interpolation))
    }

    /// Outside the source the mask is 0.
    public func warpedAffine(_ t: AffineTransform, width w: Int, height h: Int, interpolation: Interpolation = .linear) throws -> Mask {
        Mask(width: w, height: h, values: try Planes.warp(values, width, height, 1, t, to: w, h, interpolation, border: .constant(0)))
    }

    public func blurred(sigma: Double) throws -> Mask {
        Mask(width: width, height: height, values: try Planes.blur(values, width, height, 1, sigma: sigma))
    }

    /// Minimum over a disc of the given radius.
    public func eroded(radius: Int) throws -> Mask {
        Mask(width: width, height: height, values: try Planes.morphology(values, width, height, 1, dilate: false, radius: radius))
    }

    /// Maximum over a disc of the given radius.
    public func dilated(radius: Int) throws -> Mask {
        Mask(width: width, height: height, values: try Planes.morphology(values, width, height, 1, dilate: true, radius: radius))
    }
}

extension Image {
    /// The pixels of a whole-pixel rectangle inside the image, copied exactly (alpha and the
    /// source layout carried over). A rectangle reaching outside the image is an error.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) throws -> Image {
        guard w > 0, h > 0, x >= 0, y >= 0, x + w <= width, y + h <= height else {
            throw ImageError("the rectangle \(x),\(y),\(w)x\(h) is not inside the \(width)x\(height) image", category: .internal)
        }
        try validate()
        let n = pixelCount, m = w * h
        var rgb = [Float](repeating: 0, count: 3 * m)
        for c in 0..<3 {
            for r in 0..<h {
                let s = c * n + (y + r) * width + x, d = c * m + r * w
                for q in 0..<w { rgb[d + q] = self.rgb[s + q] }
            }
        }
        var a: [Float]?
        if let alpha {
            var out = [Float](repeating: 0, count: m)
            for r in 0..<h {
                let s = (y + r) * width + x
                for q in 0..<w { out[r * w + q] = alpha[s + q] }
            }
            a = out
        }
        return Image(width: w, height: h, rgb: rgb, alpha: a, sourceFormat: sourceFormat)
    }
}
