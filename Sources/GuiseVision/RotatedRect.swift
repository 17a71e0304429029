import func Foundation.atan2
import func Foundation.cos
import func Foundation.sin
import GuiseImage
import GuiseTensor

/// A landmark in image pixels; z is depth in the same pixel scale (MediaPipe: z × ROI width).
public struct Point3: Equatable, Codable, Sendable {
    public var x: Double
    public var y: Double
    public var z: Double
    public init(_ x: Double, _ y: Double, _ z: Double = 0) {
        self.x = x
        self.y = y
        self.z = z
    }
    public var xy: Point { Point(x, y) }
}

/// A rotated rectangle in image pixels (MediaPipe's NormalizedRect, in pixels). `rotation` is
/// in radians, clockwise on screen (y points down), as MediaPipe's.
public struct RotatedRect: Equatable, Sendable {
    public var centre: Point
    public var width: Double
    public var height: Double
    public var rotation: Double

    public init(centre: Point, width: Double, height: Double, rotation: Double) {
        self.centre = centre
        self.width = width
        self.height = height
        self.rotation = rotation
    }

    /// MediaPipe's DetectionsToRectsCalculator + RectTransformationCalculator: the box centre,
    /// turned so the vector from `start` to `end` becomes horizontal (target angle 0), made a
    /// square of the longer side (square_long), then scaled.
    public static func roi(box: Box, start: Point, end: Point, scale: Double) -> RotatedRect {
        let angle = -atan2(-(end.y - start.y), end.x - start.x)
        let side = max(box.width, box.height) * scale
        return RotatedRect(centre: box.centre, width: side, height: side, rotation: normalised(angle))
    }

    /// Wraps an angle into [−π, π) (MediaPipe's NormalizeRadians).
    public static func normalised(_ a: Double) -> Double {
        a - 2 * Double.pi * ((a + Double.pi) / (2 * Double.pi)).rounded(.down)
    }

    /// Image pixels → crop pixels for a `cropWidth` × `cropHeight` crop. As MediaPipe's
    /// ImageToTensorCalculator, the rectangle's corners go to the crop's outer corners
    /// (0 and cropWidth), and the crop is the rectangle turned upright.
    public func cropTransform(width cw: Int, height ch: Int) -> AffineTransform {
        let c = cos(rotation), s = sin(rotation)
        let sx = Double(cw) / width, sy = Double(ch) / height
        // crop = S · R(−θ) · (p − centre) + (cw/2, ch/2)
        return AffineTransform([c * sx, s * sx, Double(cw) / 2 - sx * (c * centre.x + s * centre.y),
                                -s * sy, c * sy, Double(ch) / 2 - sy * (-s * centre.x + c * centre.y)])
    }

    /// Crop pixels → image pixels (MediaPipe's LandmarkProjectionCalculator).
    public func imagePoint(cropX u: Double, cropY v: Double, cropWidth cw: Int, cropHeight ch: Int) -> Point {
        let x = (u / Double(cw) - 0.5) * width, y = (v / Double(ch) - 0.5) * height
        let c = cos(rotation), s = sin(rotation)
        return Point(centre.x + c * x - s * y, centre.y + s * x + c * y)
    }

    /// The crop as an NHWC tensor [1, h, w, 3] with values in `range`; bilinear, edges replicated.
    /// `mirrored` flips it left–right after cropping (cv::flip: column i ↔ w − 1 − i).
    public func crop(_ image: Image, width w: Int, height h: Int, range: ClosedRange<Float> = 0...1,
                     mirrored: Bool = false) throws -> Tensor {
        let t = cropTransform(width: w, height: h, mirrored: mirrored)
        let crop = try image.warpedAffine(t, width: w, height: h, interpolation: .linear, border: .replicate)
        return NHWC.tensor(from: crop, range: range)
    }
}

extension RotatedRect {
    /// `cropTransform`, then optionally flipped left–right (column i ↔ w − 1 − i, as cv::flip).
    public func cropTransform(width w: Int, height h: Int, mirrored: Bool) -> AffineTransform {
        let t = cropTransform(width: w, height: h)
        guard mirrored else { return t }
        return AffineTransform([-t.matrix[0], -t.matrix[1], Double(w - 1) - t.matrix[2], t.matrix[3], t.matrix[4], t.matrix[5]])
    }
}
