import func Foundation.cos
import func Foundation.sin
import GuiseImage
import GuiseTensor

/// Differentiable versions of the crops and decoders, for guidance: an image tensor goes in,
/// network inputs come out through NN.gridSample, and raw network outputs map back to image
/// pixels through tensor ops, so a loss on landmarks (e.g. gaze features) reaches the image.
/// Each samples at the same points as its counterpart in the plain pipeline, which crops in
/// 8 bits as MediaPipe does; these work in float and OpenCV rounds bilinear positions to 1/32
/// pixel, so values differ by up to half an 8-bit level plus ~1/64 of a pixel's local gradient.
public enum TensorCrops {
    /// Samples `image` [1, 3, H, W] where `transform` (image pixels → output pixels) says, as
    /// cv::warpAffine does, into NHWC [1, h, w, 3] with values mapped from 0…1 onto `range`.
    /// `replicate` clamps to the edge (BORDER_REPLICATE), otherwise outside reads 0 (BORDER_CONSTANT).
    public static func warp(_ image: Tensor, _ transform: AffineTransform, width w: Int, height h: Int,
                            range: ClosedRange<Float>, replicate: Bool) throws -> Tensor {
        guard image.rank == 4, image.shape[0] == 1, image.shape[1] == 3 else {
            throw VisionError("a crop needs an image tensor [1, 3, H, W], got \(image.shape)")
        }
        guard w > 0, h > 0 else { throw VisionError("a crop needs a positive size, got \(w)x\(h)") }
        let H = Double(image.shape[2]), W = Double(image.shape[3])
        let m = try transform.inverted().matrix  // output pixels → image pixels
        // Output grid coordinate g ↦ output pixel (w g + w − 1) / 2 (align_corners false);
        // image pixel X ↦ grid coordinate (2X + 1) / W − 1.
        let ox = Double(w) / 2, oy = Double(h) / 2, cx = Double(w - 1) / 2, cy = Double(h - 1) / 2
        func row(_ a: Double, _ b: Double, _ c: Double, _ size: Double) -> [Float] {
            let s = 2 / size
            return [Float(s * a * ox), Float(s * b * oy), Float(s * (a * cx + b * cy + c) + 1 / size - 1)]
        }
        let theta = Tensor(shape: [1, 2, 3], values: row(m[0], m[1], m[2], W) + row(m[3], m[4], m[5], H))
        let grid = NN.affineGrid(theta, size: NN.Pair(h, w), alignCorners: false)
        let sampled = NN.gridSample(image, grid: grid, padding: replicate ? .border : .zeros, alignCorners: false)
        let a = range.upperBound - range.lowerBound
        return sampled.permuted(0, 2, 3, 1).contiguous().scaled(a, plus: range.lowerBound)
    }

    /// `RotatedRect.crop` on a tensor.
    public static func crop(_ image: Tensor, roi: RotatedRect, width w: Int, height h: Int,
                            range: ClosedRange<Float> = 0...1, mirrored: Bool = false) throws -> Tensor {
        try warp(image, roi.cropTransform(width: w, height: h, mirrored: mirrored), width: w, height: h,
                 range: range, replicate: true)
    }

    /// `Iris.input` on a tensor [1, 3, H, W] → [1, 64, 64, 3], sampled as MediaPipe's iris
    /// graph samples (`Iris.Crop`): each pixel of the whole-pixel crop takes its nearest image
    /// pixel (read by gridSample at that pixel's exact centre, so its gradient goes to that one
    /// pixel), then OpenCV's resize to 64² and the mirror, written as two weight matrices.
    /// Only the 8-bit rounding of MediaPipe's values is missing: within half a level.

    /// `Letterbox.input` on a tensor (black padding).
    public static func letterbox(_ image: Tensor, _ lb: Letterbox, range: ClosedRange<Float> = -1...1) throws -> Tensor {
        guard image.rank == 4, image.shape[2] == lb.imageHeight, image.shape[3] == lb.imageWidth else {
            throw VisionError("the image tensor is \(image.shape), the letterbox was made for \(lb.imageWidth)x\(lb.imageHeight)")
        }
        return try warp(image, lb.transform, width: lb.size, height: lb.size, range: range, replicate: false)
    }

    /// Raw landmark outputs (x, y, z per point, in pixels of a `cropSize` crop; any shape with
    /// 3·count values) → [count, 3] in image pixels (z scaled like x), as `FaceMesh.landmarks`
    /// and `Iris.landmarks` do; a mirrored crop's x is unflipped (x → cropSize − x).
    public static func landmarks(_ raw: Tensor, roi: RotatedRect, cropSize: Int, mirrored: Bool = false) throws -> Tensor {
        guard raw.count % 3 == 0, raw.count > 0 else { throw VisionError("landmark outputs hold \(raw.count) values, not x, y, z triples") }
        let s = Double(cropSize)
        let c = cos(roi.rotation), sn = sin(roi.rotation)
        let kx = roi.width / s, ky = roi.height / s
        // image = centre + R(θ) · ((u/s − ½)·width, (v/s − ½)·height), with u = s − x when mirrored.
        let fx = mirrored ? -1.0 : 1.0
        let a = [c * kx * fx, -sn * ky, sn * kx * fx, c * ky]
        let u0 = mirrored ? roi.width / 2 : -roi.width / 2, v0 = -roi.height / 2
        let bx = roi.centre.x + c * u0 - sn * v0, by = roi.centre.y + sn * u0 + c * v0
        // points [n, 3] · Mᵀ + bias, with M = [[a0, a1, 0], [a2, a3, 0], [0, 0, kx]].
        let mt = Tensor(shape: [3, 3], values: [Float(a[0]), Float(a[2]), 0, Float(a[1]), Float(a[3]), 0, 0, 0, Float(kx)])
        let bias = Tensor(shape: [1, 3], values: [Float(bx), Float(by), 0])
        return raw.reshaped([raw.count / 3, 3]).matmul(mt) + bias
    }
}
