import func Foundation.atan2
import func Foundation.cos
import func Foundation.sin
import GuiseImage

/// dlib's face chip (dlib/image_transforms/interpolation.h: get_face_chip_details and
/// extract_image_chip), the input of dlib's face recognition network.
public struct DlibChip: Equatable, Sendable {
    /// The extraction rectangle (dlib's chip_details.rect) before rotation, in image pixels:
    /// `width` is its right − left, one pixel less than size × scale (dlib's centered_drect),
    /// so the chip's corner pixels land on its corners and a scale-1 chip copies pixels.
    public var centre: Point
    public var width: Double
    public var height: Double
    /// Radians, dlib's chip_details.angle.
    public var angle: Double
    public var size: Int

    /// dlib's mean 5-point face (shape_predictor_5_face_landmarks part order: image-right eye
    /// outer and inner corner, image-left eye outer and inner corner, nose base), as fractions of
    /// an unpadded chip.
    public static let template5 = [
        Point(0.8595674595992, 0.2134981538014), Point(0.6460604764104, 0.2289674387677),
        Point(0.1205750620789, 0.2137274526848), Point(0.3340850613712, 0.2290642403242),
        Point(0.4901123135679, 0.6277975316475),
    ]

    /// get_face_chip_details(shape, size, padding) for a 5-point shape: the similarity taking the
    /// padded template to the points gives the rotation and the scale of a size × size chip.
    public static func details(points: [Point], size: Int = 150, padding: Double = 0.25) throws -> DlibChip {
        guard points.count == 5 else { throw FaceError("dlib's face chip needs 5 points, got \(points.count)") }
        guard size > 1, padding >= 0 else { throw FaceError("a face chip needs size > 1 and padding ≥ 0") }
        let s = Double(size)
        let from = template5.map { Point((padding + $0.x) / (2 * padding + 1) * s, (padding + $0.y) / (2 * padding + 1) * s) }
        let t = try AffineTransform.similarity(from: from, to: points)
        let scale = (t.matrix[0] * t.matrix[0] + t.matrix[3] * t.matrix[3]).squareRoot()
        guard scale > 0, scale.isFinite else { throw FaceError("the 5 points coincide") }
        return DlibChip(centre: t.apply(Point(s / 2, s / 2)), width: s * scale - 1, height: s * scale - 1,
                        angle: atan2(t.matrix[3], t.matrix[0]), size: size)
    }

    /// Chip pixels → image pixels (dlib maps the chip's corner pixels 0 and size − 1 onto the
    /// rotated rectangle's corners).
    public var chipToImage: AffineTransform {
        let c = cos(angle), s = sin(angle)
        func rotated(_ dx: Double, _ dy: Double) -> Point { Point(centre.x + c * dx - s * dy, centre.y + s * dx + c * dy) }
        let tl = rotated(-width / 2, -height / 2), tr = rotated(width / 2, -height / 2), bl = rotated(-width / 2, height / 2)
        let n = Double(size - 1)
        return AffineTransform([(tr.x - tl.x) / n, (bl.x - tl.x) / n, tl.x, (tr.y - tl.y) / n, (bl.y - tl.y) / n, tl.y])
    }

    /// Image pixels → chip pixels.
    public func imageToChip() throws -> AffineTransform { try chipToImage.inverted() }

    /// The chip, sampled as dlib's interpolate_bilinear: a pixel whose 2 × 2 neighbourhood leaves
    /// the image is 0; `quantised` truncates to 8 bits as dlib's assign_pixel does for an
    /// rgb_pixel chip. Exact when the chip is at most 2× smaller than its rectangle; beyond that
    /// dlib samples pyramid_down<2> levels and this samples an area-downscaled copy instead.
    public func extract(from image: Image, quantised: Bool = true) throws -> Image {
        try image.validate()
        var source = image
        var t = chipToImage
        var factor = 1.0
        // dlib: while (pyr.rect_down(rect).area() > chip area) go one level down.
        while ((width + 1) / (2 * factor)) * ((height + 1) / (2 * factor)) > Double(size * size),
              source.width >= 4, source.height >= 4 {
            source = try source.resized(width: source.width / 2, height: source.height / 2, interpolation: .area)
            factor *= 2
        }
        if factor > 1 {
            let m = t.matrix, k = 1 / factor, o = 0.5 / factor - 0.5
            t = AffineTransform([m[0] * k, m[1] * k, m[2] * k + o, m[3] * k, m[4] * k, m[5] * k + o])
        }
        let w = source.width, h = source.height, n = w * h, cn = size * size
        var rgb = [Float](repeating: 0, count: 3 * cn)
        source.rgb.withUnsafeBufferPointer { p in
            for r in 0..<size {
                for c in 0..<size {
                    let q = t.apply(Point(Double(c), Double(r)))
                    let x0 = Int(q.x.rounded(.down)), y0 = Int(q.y.rounded(.down))
                    guard x0 >= 0, y0 >= 0, x0 + 1 < w, y0 + 1 < h else { continue }
                    let fx = q.x - Double(x0), fy = q.y - Double(y0)
                    for ch in 0..<3 {
                        let base = ch * n + y0 * w + x0
                        // dlib interpolates 8-bit values in double precision.
                        func u8(_ i: Int) -> Double { quantised ? (Double(p[i]) * 255).rounded() : Double(p[i]) * 255 }
                        let tl = u8(base), tr = u8(base + 1), bl = u8(base + w), br = u8(base + w + 1)
                        var v = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
                        if quantised { v = min(max(v, 0), 255).rounded(.towardZero) }
                        rgb[ch * cn + r * size + c] = Float(v / 255)
                    }
                }
            }
        }
        return Image(width: size, height: size, rgb: rgb)
    }
}
