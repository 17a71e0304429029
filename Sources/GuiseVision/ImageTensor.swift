import GuiseImage
import GuiseTensor

/// Conversions between `Image`s (planar RGB in 0…1, optional alpha) and the NCHW tensors the
/// diffusion networks and differentiable experts take. The one place this happens, so every
/// pipeline agrees on channel order, value range and what happens to alpha.
public enum ImageTensor {
    /// How pixel values 0…1 map onto tensor values.
    public enum Range: Sendable {
        /// 0…1, as stored (the face networks' crops, identity chips).
        case unit
        /// −1…1 (diffusion models): v ↦ 2v − 1.
        case signed

        var scale: Float { self == .unit ? 1 : 2 }
        var offset: Float { self == .unit ? 0 : -1 }
    }

    /// [1, 3, H, W]. Alpha is not part of the tensor: networks see colour only, and callers that
    /// write a picture back carry `image.alpha` over (see `image(_:range:alpha:)`).
    public static func tensor(_ image: Image, range: Range = .unit) -> Tensor {
        if range == .unit { return Tensor(shape: [1, 3, image.height, image.width], values: image.rgb) }
        let s = range.scale, o = range.offset
        return Tensor(shape: [1, 3, image.height, image.width], values: image.rgb.map { $0 * s + o })
    }

    /// [N, 3, H, W] from images of one size.
    public static func batch(_ images: [Image], range: Range = .unit) throws -> Tensor {
        guard let first = images.first else { throw VisionError("a batch needs at least one image") }
        guard images.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw VisionError("a batch needs images of one size, got \(images.map { "\($0.width)x\($0.height)" }.joined(separator: ", "))")
        }
        var values: [Float] = []
        values.reserveCapacity(images.count * first.rgb.count)
        let s = range.scale, o = range.offset
        for im in images { values += range == .unit ? im.rgb : im.rgb.map { $0 * s + o } }
        return Tensor(shape: [images.count, 3, first.height, first.width], values: values)
    }

    /// Image `index` of an [N, C, H, W] tensor (C = 3, or 1 for grey, copied into R, G and B),
    /// values mapped back from `range` and clamped to 0…1. `alpha`, if given, must be H × W.
    public static func image(_ t: Tensor, range: Range = .unit, index: Int = 0, alpha: [Float]? = nil) throws -> Image {
        guard t.rank == 4, t.shape[1] == 3 || t.shape[1] == 1, index >= 0, index < t.shape[0] else {
            throw VisionError("an image tensor must be [N, 3 or 1, H, W] with image \(index) in it, got \(t.shape)")
        }
        let c = t.shape[1], h = t.shape[2], w = t.shape[3]
        guard h > 0, w > 0 else { throw VisionError("an image tensor needs a positive size, got \(t.shape)") }
        if let alpha, alpha.count != w * h { throw VisionError("alpha holds \(alpha.count) values for a \(w)x\(h) image") }
        let plane = t.narrow(index..<(index + 1)).values
        let s = 1 / range.scale, o = range.offset
        // A NaN pixel would be written as 0 by the encoder and hide a fault; it is kept as NaN here
        // so `Image.validate` and comparisons catch it.
        func back(_ v: Float) -> Float { v.isNaN ? v : min(max((v - o) * s, 0), 1) }
        let rgb = c == 3 ? plane.map(back) : { let g = plane.map(back); return g + g + g }()
        return Image(width: w, height: h, rgb: rgb, alpha: alpha)
    }

    /// A mask as [1, 1, H, W].
    public static func tensor(_ mask: Mask) -> Tensor {
        Tensor(shape: [1, 1, mask.height, mask.width], values: mask.values)
    }

    /// A [1, 1, H, W] (or [H, W]) tensor as a mask, values as they are.
    public static func mask(_ t: Tensor) throws -> Mask {
        let dims = t.shape.filter { $0 != 1 }
        guard t.rank >= 2, dims.count <= 2, t.shape[t.rank - 1] > 0, t.shape[t.rank - 2] > 0,
              t.shape.dropLast(2).allSatisfy({ $0 == 1 }) else {
            throw VisionError("a mask tensor must be [1, 1, H, W] or [H, W], got \(t.shape)")
        }
        return Mask(width: t.shape[t.rank - 1], height: t.shape[t.rank - 2], values: t.values)
    }
}
