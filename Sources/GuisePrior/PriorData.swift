import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage

/// The training photos, held in memory as 8-bit planes at a few scales, and the random crops a
/// batch is made of.
///
/// A batch draws a photo first, then a scale, then a crop: the large wallpapers hold most of the
/// pixels and would otherwise fill every batch. Scales are successive 2×2 box halvings; a level is
/// kept while its long side is at most `maxSide` (big smooth photos train at reduced scale) and its
/// short side still holds a crop.
public final class PriorDataset {
    public struct Plane {
        public let width: Int, height: Int
        /// R, G, B planes, 8-bit.
        public let rgb: [UInt8]
    }

    public let names: [String]
    /// levels[i]: the scales kept for photo i, largest first.
    public let levels: [[Plane]]
    public let crop: Int

    public init(directory: String, crop: Int, maxSide: Int = 1280, maxLevels: Int = 3) throws {
        guard crop >= 8 else { throw FormatError("--crop must be at least 8", category: .input) }
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: directory) else {
            throw FormatError("cannot read the data folder \(directory)", category: .input)
        }
        let files = entries.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
        guard !files.isEmpty else { throw FormatError("\(directory) holds no .png or .jpg photos; run `make prior-data`", category: .input) }
        var names: [String] = [], levels: [[Plane]] = []
        for f in files {
            // Grey files come back as three equal planes; alpha is dropped (ignored).
            let image = try ImageIO.read(directory + "/" + f)
            var w = image.width, h = image.height
            var planes = image.rgb.map { $0 * 255 }
            var kept: [Plane] = []
            while min(w, h) >= crop && kept.count < maxLevels {
                if max(w, h) <= maxSide {
                    kept.append(Plane(width: w, height: h, rgb: planes.map { UInt8(min(max($0.rounded(), 0), 255)) }))
                }
                (planes, w, h) = PriorDataset.halve(planes, w, h)
            }
            if kept.isEmpty { continue }
            names.append(f)
            levels.append(kept)
        }
        guard !names.isEmpty else { throw FormatError("no photo in \(directory) is at least \(crop)×\(crop)", category: .input) }
        self.names = names
        self.levels = levels
        self.crop = crop
    }

    static func halve(_ src: [Float], _ w: Int, _ h: Int) -> ([Float], Int, Int) {
        let w2 = w / 2, h2 = h / 2
        var out = [Float](repeating: 0, count: 3 * w2 * h2)
        for c in 0..<3 {
            let s = c * w * h, d = c * w2 * h2
            for y in 0..<h2 {
                for x in 0..<w2 {
                    let i = s + 2 * y * w + 2 * x
                    out[d + y * w2 + x] = 0.25 * (src[i] + src[i + 1] + src[i + w] + src[i + w + 1])
                }
            }
        }
        return (out, w2, h2)
    }

    public var pixelCount: Int { levels.reduce(0) { $0 + $1.reduce(0) { $0 + $1.width * $1.height } } }

    /// A batch [n, 3, crop, crop] in [−1, 1]: random photo, scale, crop and one of the 8 flips and
    /// quarter turns.
    public func batch(_ n: Int, rng: inout PriorRNG) -> Tensor {
        let c = crop, plane = c * c
        let out = Tensor(uninitialized: [n, 3, c, c])
        let p = out.data
        for b in 0..<n {
            let photo = levels[rng.below(levels.count)]
            let img = photo[rng.below(photo.count)]
            let x0 = rng.below(img.width - c + 1), y0 = rng.below(img.height - c + 1)
            let t = rng.below(8)
            let transpose = t & 4 != 0, flipX = t & 1 != 0, flipY = t & 2 != 0
            for ch in 0..<3 {
                let src = ch * img.width * img.height
                let dst = p + (b * 3 + ch) * plane
                for y in 0..<c {
                    for x in 0..<c {
                        var sx = transpose ? y : x, sy = transpose ? x : y
                        if flipX { sx = c - 1 - sx }
                        if flipY { sy = c - 1 - sy }
                        dst[y * c + x] = Float(img.rgb[src + (y0 + sy) * img.width + x0 + sx]) / 127.5 - 1
                    }
                }
            }
        }
        return out
    }
}
