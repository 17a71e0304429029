import GuiseImage
import GuiseTensor

/// The square a detector sees: MediaPipe's ImageToTensorCalculator with keep_aspect_ratio
/// pads the whole image, centred, to a square of its longer side, then scales it to the
/// tensor. As there, the square's outer corners map to the tensor's outer corners (0 and
/// `size`), and padding is black (−1 in a [−1, 1] tensor: BORDER_ZERO before normalising).
public struct Letterbox: Equatable, Sendable {
    public var imageWidth: Int
    public var imageHeight: Int
    public var size: Int

    public init(imageWidth: Int, imageHeight: Int, size: Int) {
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        self.size = size
    }

    /// The padded square's side and top-left corner in image pixels.
    public var side: Double { Double(max(imageWidth, imageHeight)) }
    public var origin: Point { Point((Double(imageWidth) - side) / 2, (Double(imageHeight) - side) / 2) }

    /// Image pixels → tensor pixels.
    public var transform: AffineTransform {
        let s = Double(size) / side, o = origin
        return AffineTransform([s, 0, -o.x * s, 0, s, -o.y * s])
    }

    /// A normalised tensor coordinate (0…1 across the tensor) → image pixels.
    public func imagePoint(_ p: Point) -> Point {
        Point(origin.x + p.x * side, origin.y + p.y * side)
    }

    /// The network input [1, size, size, 3] (NHWC) with values in `range` (BlazeFace: −1…1),
    /// made as MediaPipe's CPU converter makes it: the padded square warped in 8 bits
    /// (cv::warpPerspective, INTER_LINEAR, `rotatedRectCrop8Bit`). A float warp of the same
    /// square moves full-range detections on small faces by a fifth of a pixel.
    public func input(_ image: Image, range: ClosedRange<Float> = -1...1) throws -> Tensor {
        guard image.width == imageWidth, image.height == imageHeight else {
            throw VisionError("the image is \(image.width)x\(image.height), the letterbox was made for \(imageWidth)x\(imageHeight)")
        }
        let square = try image.rotatedRectCrop8Bit(centre: Point(Double(imageWidth) / 2, Double(imageHeight) / 2),
                                                   width: side, height: side, rotation: 0,
                                                   outputWidth: size, outputHeight: size, border: .constant(0))
        return NHWC.tensor(from: square, range: range)
    }
}

/// Conversions between planar `Image`s and the NHWC tensors TFLite networks take.
public enum NHWC {
    /// [1, H, W, 3] with 0…1 pixel values mapped linearly onto `range`.
    public static func tensor(from image: Image, range: ClosedRange<Float>) -> Tensor {
        let n = image.pixelCount, a = range.upperBound - range.lowerBound, b = range.lowerBound
        var v = [Float](repeating: 0, count: 3 * n)
        image.rgb.withUnsafeBufferPointer { p in
            for i in 0..<n { for c in 0..<3 { v[3 * i + c] = p[c * n + i] * a + b } }
        }
        return Tensor(shape: [1, image.height, image.width, 3], values: v)
    }
}
