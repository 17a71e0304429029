/// How an image was stored in its file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA channels at 8 or
/// 16 bits. Writing a PNG again uses it, so an unmodified image saves bit-identically.
public struct PixelFormat: Equatable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var bitDepth: Int
    public init(channels: Int, bitDepth: Int) {
        self.channels = channels
        self.bitDepth = bitDepth
    }
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
    public var isGrey: Bool { channels <= 2 }
    public var description: String {
        ["", "grey", "grey+alpha", "RGB", "RGBA"][channels] + " \(bitDepth)-bit"
    }
}

/// Planar float RGB in 0…1 with an optional alpha plane; what every pipeline takes and returns.
/// Conversions to and from stored pixels are explicit: `init(interleaved:…)`, `interleaved8`,
/// `interleaved16`, `grey()`. A stored sample s at depth d maps to s / (2^d − 1), and back by
/// rounding to nearest, which reproduces every 8- and 16-bit value exactly.
public struct Image {
    public var width: Int
    public var height: Int
    /// R, G and B planes, each width × height, row-major, one after the other.
    public var rgb: [Float]
    /// width × height, or nil for an opaque image.
    public var alpha: [Float]?
    /// The layout of the file this image was read from, if any.
    public var sourceFormat: PixelFormat?

    public init(width: Int, height: Int, rgb: [Float], alpha: [Float]? = nil, sourceFormat: PixelFormat? = nil) {
        precondition(width > 0 && height > 0, "an image needs a positive size")
        precondition(rgb.count == 3 * width * height, "rgb must hold 3 planes of width × height")
        precondition(alpha == nil || alpha!.count == width * height, "alpha must hold width × height")
        self.width = width
        self.height = height
        self.rgb = rgb
        self.alpha = alpha
        self.sourceFormat = sourceFormat
    }

    /// A uniform image.
    public init(width: Int, height: Int, red: Float, green: Float, blue: Float) {
        let n = width * height
        self.init(width: width, height: height,
                  rgb: [Float](repeating: red, count: n) + [Float](repeating: green, count: n) + [Float](repeating: blue, count: n))
    }

    public var pixelCount: Int { width * height }

    /// Channel c (0 R, 1 G, 2 B, 3 alpha) at (x, y).
    public subscript(x: Int, y: Int, c: Int) -> Float {
        get { c == 3 ? (alpha?[y * width + x] ?? 1) : rgb[c * pixelCount + y * width + x] }
        set {
            if c == 3 {
                if alpha == nil { alpha = [Float](repeating: 1, count: pixelCount) }
                alpha![y * width + x] = newValue
            } else {
                rgb[c * pixelCount + y * width + x] = newValue
            }
        }
    }

    /// True when R, G and B are equal everywhere.
    public var isGrey: Bool {
        let n = pixelCount
        for i in 0..<n where rgb[i] != rgb[n + i] || rgb[i] != rgb[2 * n + i] { return false }
        return true
    }

    /// Each pixel that differs from `original`'s written as its luma (BT.601), the rest left as
    /// they are: a result made from a grey photo stays grey.
    public mutating func greyWhereChanged(from original: Image) {
        let n = pixelCount
        for i in 0..<n where rgb[i] != original.rgb[i] || rgb[n + i] != original.rgb[n + i] || rgb[2 * n + i] != original.rgb[2 * n + i] {
            let y = 0.299 * rgb[i] + 0.587 * rgb[n + i] + 0.114 * rgb[2 * n + i]
            rgb[i] = y; rgb[n + i] = y; rgb[2 * n + i] = y
        }
    }

    /// Luma with ITU-R BT.601 weights (as OpenCV's RGB→GRAY); R where the image is grey.
    public func grey() -> [Float] {
        let n = pixelCount
        return rgb.withUnsafeBufferPointer { p in
            (0..<n).map { i in 0.299 * p[i] + 0.587 * p[n + i] + 0.114 * p[2 * n + i] }
        }
    }

    /// An RGB image with the grey plane copied into R, G and B.
    public init(grey: [Float], width: Int, height: Int, alpha: [Float]? = nil) {
        self.init(width: width, height: height, rgb: grey + grey + grey, alpha: alpha)
    }

    // MARK: stored pixels

    /// Reads interleaved samples: channels 1 (grey), 2 (grey+alpha), 3 (RGB), 4 (RGBA).
    public init<S: FixedWidthInteger & UnsignedInteger>(interleaved samples: [S], width: Int, height: Int, channels: Int) {
        precondition((1...4).contains(channels) && samples.count == width * height * channels)
        let n = width * height
        let scale = 1 / Float(S.max)
        var rgb = [Float](repeating: 0, count: 3 * n)
        var alpha: [Float]? = channels % 2 == 0 ? [Float](repeating: 0, count: n) : nil
        let colours = channels <= 2 ? 1 : 3
        samples.withUnsafeBufferPointer { s in
            for i in 0..<n {
                let base = i * channels
                for c in 0..<3 { rgb[c * n + i] = Float(s[base + (colours == 1 ? 0 : c)]) * scale }
                if alpha != nil { alpha![i] = Float(s[base + channels - 1]) * scale }
            }
        }
        self.init(width: width, height: height, rgb: rgb, alpha: alpha,
                  sourceFormat: PixelFormat(channels: channels, bitDepth: S.bitWidth))
    }

    /// Interleaved 8-bit samples; channels 1 and 2 store luma, 2 and 4 add alpha (1 if absent).
    public func interleaved8(channels: Int) -> [UInt8] { interleaved(channels: channels) }
    /// Interleaved 16-bit samples, laid out as `interleaved8`.
    public func interleaved16(channels: Int) -> [UInt16] { interleaved(channels: channels) }

    public func interleaved<S: FixedWidthInteger & UnsignedInteger>(channels: Int) -> [S] {
        precondition((1...4).contains(channels))
        let n = pixelCount
        let maxValue = Float(S.max)
        @inline(__always) func quantise(_ v: Float) -> S {
            guard v > 0 else { return 0 }  // also catches NaN
            return v >= 1 ? S.max : S(v * maxValue + 0.5)
        }
        let luma = channels <= 2 ? grey() : []
        var out = [S](repeating: 0, count: n * channels)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<n {
                let base = i * channels
                if channels <= 2 {
                    o[base] = quantise(luma[i])
                } else {
                    for c in 0..<3 { o[base + c] = quantise(rgb[c * n + i]) }
                }
                if channels % 2 == 0 { o[base + channels - 1] = quantise(alpha?[i] ?? 1) }
            }
        }
        return out
    }
}
