import func Foundation.atan2
import func Foundation.cos
import func Foundation.sin
import GuiseImage
import GuiseVision
import GuiseTensor

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

    /// dlib's rectangle as (left, top, right, bottom).
    typealias Rect = (l: Double, t: Double, r: Double, b: Double)
    var rect: Rect { (centre.x - width / 2, centre.y - height / 2, centre.x + width / 2, centre.y + height / 2) }

    /// Chip pixels → the pixels of an image holding `r`: dlib maps the chip's corner pixels
    /// (0 and size − 1) onto the corners of `r` turned by `angle` about its centre.
    func chipMapping(_ r: Rect) -> AffineTransform {
        let c = cos(angle), s = sin(angle), cx = (r.l + r.r) / 2, cy = (r.t + r.b) / 2
        func rotated(_ x: Double, _ y: Double) -> Point { Point(cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)) }
        let tl = rotated(r.l, r.t), tr = rotated(r.r, r.t), bl = rotated(r.l, r.b)
        let n = Double(size - 1)
        return AffineTransform([(tr.x - tl.x) / n, (bl.x - tl.x) / n, tl.x, (tr.y - tl.y) / n, (bl.y - tl.y) / n, tl.y])
    }

    /// Chip pixels → image pixels.
    public var chipToImage: AffineTransform { chipMapping(rect) }

    /// Image pixels → chip pixels.
    public func imageToChip() throws -> AffineTransform { try chipToImage.inverted() }

    /// dlib's pyramid_down<2> coordinate map (image_pyramid.h), applied to a rectangle's corners.
    static func down(_ r: Rect) -> Rect { (r.l / 2 - 1.25, r.t / 2 - 0.75, r.r / 2 - 1.25, r.b / 2 - 0.75) }
    /// drectangle::area: its sides count both end pixels.
    static func area(_ r: Rect) -> Double { (r.r - r.l + 1) * (r.b - r.t + 1) }

    /// The chip as dlib's extract_image_chip makes it. Sampling is dlib's interpolate_bilinear:
    /// a pixel whose 2 × 2 neighbourhood leaves the source is 0. When the chip is over 2× smaller
    /// than its rectangle, dlib first crops the rotated rectangle's bounding box (grown by a
    /// margin) and shrinks it with pyramid_down<2> (a 5-tap [1 4 6 4 1] filter, then every other
    /// pixel) until one more level would drop below the chip's area; this does the same.
    /// `quantised` works on 8-bit values, truncating as dlib's rgb_pixel arithmetic does;
    /// otherwise everything stays in floating point.
    public func extract(from image: Image, quantised: Bool = true) throws -> Image {
        try image.validate()
        let fullW = image.width, fullH = image.height
        // Only the part of the photo the chip reads is converted: a whole 35 Mpx photo as
        // Double planes is 840 MB, for a chip of 150².
        func crop(_ x0: Int, _ y0: Int, _ cw: Int, _ ch: Int) -> [[Double]] {
            (0..<3).map { c in
                var out = [Double](repeating: 0, count: cw * ch)
                let base = c * fullW * fullH
                for y in 0..<ch {
                    let row = base + (y0 + y) * fullW + x0
                    for x in 0..<cw {
                        let v = Double(image.rgb[row + x]) * 255
                        out[y * cw + x] = quantised ? v.rounded() : v
                    }
                }
                return out
            }
        }
        let chipArea = Double(size * size)
        var levelRect = rect
        var depth = 0, grow = 2.0
        var probe = Self.down(levelRect)
        while Self.area(probe) > chipArea {
            probe = Self.down(probe)
            depth += 1
            grow = grow * 2 + 2
        }
        let corners = [(0.0, 0.0), (Double(size - 1), 0), (0, Double(size - 1)), (Double(size - 1), Double(size - 1))]
        let planes: [[Double]]
        // The sampled plane's size (a sample whose 2 × 2 neighbourhood leaves it is 0), and
        // where in it the converted crop lies.
        var w = fullW, h = fullH, ox = 0, oy = 0, stride = 0
        if depth > 0 {
            // The rotated rectangle's bounding box, grown, clipped to the image and rounded
            // (drectangle → rectangle), is all the pyramid sees.
            let m = chipToImage
            let mapped = corners.map { m.apply(Point($0.0, $0.1)) }
            let l = max(mapped.map(\.x).min()! - grow, 0), t = max(mapped.map(\.y).min()! - grow, 0)
            let r = min(mapped.map(\.x).max()! + grow, Double(w - 1)), b = min(mapped.map(\.y).max()! + grow, Double(h - 1))
            guard l <= r, t <= b else { return Image(width: size, height: size, red: 0, green: 0, blue: 0) }
            let x0 = Int((l + 0.5).rounded(.down)), y0 = Int((t + 0.5).rounded(.down))
            let x1 = Int((r + 0.5).rounded(.down)), y1 = Int((b + 0.5).rounded(.down))
            var level = crop(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
            (w, h) = (x1 - x0 + 1, y1 - y0 + 1)
            levelRect = (levelRect.l - Double(x0), levelRect.t - Double(y0), levelRect.r - Double(x0), levelRect.b - Double(y0))
            for _ in 0..<depth {
                guard w > 8, h > 8 else { return Image(width: size, height: size, red: 0, green: 0, blue: 0) }
                (level, w, h) = Self.pyramidDown(level, w, h, quantised: quantised)
                levelRect = Self.down(levelRect)
            }
            planes = level
            stride = w
        } else {
            // The pixels the bilinear samples touch: the chip's corners' box, a pixel wider.
            let mapped = corners.map { chipMapping(levelRect).apply(Point($0.0, $0.1)) }
            let x0 = max(0, Int(mapped.map(\.x).min()!.rounded(.down)) - 1), y0 = max(0, Int(mapped.map(\.y).min()!.rounded(.down)) - 1)
            let x1 = min(w - 1, Int(mapped.map(\.x).max()!.rounded(.down)) + 2), y1 = min(h - 1, Int(mapped.map(\.y).max()!.rounded(.down)) + 2)
            guard x0 <= x1, y0 <= y1 else { return Image(width: size, height: size, red: 0, green: 0, blue: 0) }
            planes = crop(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
            (ox, oy, stride) = (x0, y0, x1 - x0 + 1)
        }
        let t = chipMapping(levelRect)
        let n = size * size
        var rgb = [Float](repeating: 0, count: 3 * n)
        for r in 0..<size {
            for c in 0..<size {
                let q = t.apply(Point(Double(c), Double(r)))
                let x0 = Int(q.x.rounded(.down)), y0 = Int(q.y.rounded(.down))
                guard x0 >= 0, y0 >= 0, x0 + 1 < w, y0 + 1 < h else { continue }
                let fx = q.x - Double(x0), fy = q.y - Double(y0)
                for ch in 0..<3 {
                    let p = planes[ch], i = (y0 - oy) * stride + x0 - ox
                    var v = (1 - fy) * ((1 - fx) * p[i] + fx * p[i + 1]) + fy * ((1 - fx) * p[i + stride] + fx * p[i + stride + 1])
                    if quantised { v = min(max(v, 0), 255).rounded(.towardZero) }
                    rgb[ch * n + r * size + c] = Float(v / 255)
                }
            }
        }
        return Image(width: size, height: size, rgb: rgb)
    }

    /// Chips as dlib's network input: [N, 3, size, size] RGB in 0…255 (the network's
    /// input_rgb_image_sized layer does its own mean subtraction and scaling).
    public static func tensor(_ chips: [Image]) throws -> Tensor {
        guard let first = chips.first else { throw FaceError("no face chips to stack") }
        let s = first.width, n = s * s
        guard chips.allSatisfy({ $0.width == s && $0.height == s }) else { throw FaceError("face chips differ in size") }
        var v = [Float](repeating: 0, count: chips.count * 3 * n)
        for (k, chip) in chips.enumerated() {
            for i in 0..<(3 * n) { v[k * 3 * n + i] = (chip.rgb[i] * 255).rounded() }
        }
        return Tensor(shape: [chips.count, 3, s, s], values: v)
    }

    /// One pyramid_down<2> level: rows filtered [1 4 6 4 1] at every other column, then columns
    /// at every other row from row 2, divided by 256 (truncated for 8-bit values).
    static func pyramidDown(_ planes: [[Double]], _ w: Int, _ h: Int, quantised: Bool) -> ([[Double]], Int, Int) {
        let tw = (w - 3) / 2, dh = (h - 3) / 2
        let out = planes.map { p -> [Double] in
            var rows = [Double](repeating: 0, count: h * tw)
            for y in 0..<h {
                for x in 0..<tw {
                    let i = y * w + 2 * x
                    rows[y * tw + x] = p[i] + 4 * p[i + 1] + 6 * p[i + 2] + 4 * p[i + 3] + p[i + 4]
                }
            }
            var down = [Double](repeating: 0, count: dh * tw)
            for d in 0..<dh {
                let y = 2 + 2 * d
                for x in 0..<tw {
                    let v = rows[(y - 2) * tw + x] + 4 * rows[(y - 1) * tw + x] + 6 * rows[y * tw + x]
                        + 4 * rows[(y + 1) * tw + x] + rows[(y + 2) * tw + x]
                    down[d * tw + x] = quantised ? (v / 256).rounded(.down) : v / 256
                }
            }
            return down
        }
        return (out, tw, dh)
    }
}
