import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage

/// How a batch is drawn from the photos. The defaults are the first prior's recipe.
public struct PriorSampling: Equatable {
    /// Each crop at a scale drawn log-uniformly between "the photo's short side fits the crop" and
    /// 1:1, resampled by area averaging. Off: a 2×2-halving level drawn uniformly from at most three,
    /// each with its long side ≤ 1280 px.
    public var multiScale = false
    /// Largest relative change of brightness, contrast and saturation, each drawn uniformly
    /// (0 draws nothing).
    public var jitter = 0.0
    /// Sampling weight of each photo's kind (kinds absent here weigh 1). Empty: every photo alike.
    public var kindWeights: [String: Double] = [:]
    /// Kinds that only get a left–right mirror, never a vertical flip or quarter turn.
    public var uprightKinds: Set<String> = []

    public init() {}

    /// The kind of a photo that the manifest does not list.
    public static let defaultKind = "scene"

    /// "face=4,person=2,scene=1" → weights; one clear error for a malformed or negative entry.
    public static func parseKindWeights(_ s: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for part in s.split(separator: ",") where !part.trimmingCharacters(in: .whitespaces).isEmpty {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, !kv[0].isEmpty, let w = Double(kv[1]), w.isFinite, w >= 0 else {
                throw FormatError("--kind-weights: '\(part)' is not KIND=WEIGHT with a weight ≥ 0", category: .input)
            }
            out[kv[0]] = w
        }
        return out
    }

    /// The canonical text of weights (sorted by kind), as stored in checkpoints.
    public static func formatKindWeights(_ w: [String: Double]) -> String {
        w.keys.sorted().map { "\($0)=\(w[$0]!)" }.joined(separator: ",")
    }

    /// file name → kind, from a data manifest's `files` entries (`name`, `kind`).
    public static func kinds(manifest path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError("cannot read the data manifest \(path)", category: .input)
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let files = root["files"] as? [[String: Any]] else {
            throw FormatError("\(path) is not a data manifest (no files list)", category: .input)
        }
        var out: [String: String] = [:]
        for f in files {
            if let name = f["name"] as? String, let kind = f["kind"] as? String { out[name] = kind }
        }
        return out
    }
}

/// The training photos, held in memory as 8-bit planes at several scales, and the random crops a
/// batch is made of.
///
/// A batch draws a photo first (by its kind's weight), then a scale, then a crop: the large
/// wallpapers hold most of the pixels and would otherwise fill every batch. Scales come from
/// successive 2×2 box halvings, and in multi-scale sampling from an area-averaging resize of the
/// nearest finer halving.
public final class PriorDataset {
    public struct Plane {
        public let width: Int, height: Int
        /// R, G, B planes, 8-bit.
        public let rgb: [UInt8]
    }

    public let names: [String]
    /// Each photo's kind (manifest `kind`, or scene).
    public let kinds: [String]
    /// levels[i]: the scales kept for photo i, largest first.
    public let levels: [[Plane]]
    public let crop: Int
    public let sampling: PriorSampling
    /// Cumulative sampling weights, normalised to end at 1; nil when every photo weighs the same.
    let cumulative: [Double]?
    let upright: [Bool]

    public init(directory: String, crop: Int, sampling: PriorSampling = PriorSampling(), kinds kindOf: [String: String] = [:],
                maxSide: Int = 1280, maxLevels: Int = 3) throws {
        guard crop >= 8 else { throw FormatError("--crop must be at least 8", category: .input) }
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: directory) else {
            throw FormatError("cannot read the data folder \(directory)", category: .input)
        }
        let files = entries.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
        guard !files.isEmpty else { throw FormatError("\(directory) holds no .png or .jpg photos; run `make prior-data`", category: .input) }
        // Multi-scale sampling resizes from the nearest finer halving, so it keeps them all, from 1:1.
        let maxSide = sampling.multiScale ? Int.max : maxSide
        let maxLevels = sampling.multiScale ? Int.max : maxLevels
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
        self.sampling = sampling
        kinds = names.map { kindOf[$0] ?? PriorSampling.defaultKind }
        upright = kinds.map { sampling.uprightKinds.contains($0) }
        if sampling.kindWeights.isEmpty {
            cumulative = nil
        } else {
            let w = kinds.map { sampling.kindWeights[$0] ?? 1 }
            let total = w.reduce(0, +)
            guard total > 0 else { throw FormatError("--kind-weights gives every photo in \(directory) weight 0", category: .input) }
            var acc = 0.0
            cumulative = w.map { acc += $0; return acc / total }
        }
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

    /// Photos per kind, for reports.
    public var kindCounts: [String: Int] { kinds.reduce(into: [:]) { $0[$1, default: 0] += 1 } }

    /// A photo index, by kind weight (one uniform draw), or uniformly (one `below` draw).
    public func pickPhoto(rng: inout PriorRNG) -> Int {
        guard let cumulative else { return rng.below(levels.count) }
        let u = rng.uniform()
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if u < cumulative[mid] { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Where a multi-scale crop of photo i comes from: the scale relative to the photo (log-uniform
    /// between crop/short side and 1), the halving level it is resized from, and the square it
    /// covers there, in that level's pixels (crop ≤ footprint < 2·crop).
    public struct Footprint: Equatable {
        public let scale: Double
        public let level: Int
        public let size: Double
    }

    /// Scale ratios to a halving level at or above this are taken at that level 1:1.
    public static let snapRatio = 0.9

    public func minimumScale(_ i: Int) -> Double {
        let p = levels[i][0]
        return Double(crop) / Double(min(p.width, p.height))
    }

    public func drawFootprint(_ i: Int, rng: inout PriorRNG) -> Footprint {
        let sMin = minimumScale(i)
        let s = exp(log(sMin) * rng.uniform())
        var level = 0
        while level + 1 < levels[i].count && s <= pow(0.5, Double(level + 1)) { level += 1 }
        let plane = levels[i][level]
        // Within 10 % of a halving level the crop is taken from it pixel for pixel: a resize by a
        // factor near 1 would only blur, and the sharp 1:1 patches are what 8-bit photos look like.
        let r = s * pow(2, Double(level))
        if r >= PriorDataset.snapRatio { return Footprint(scale: s, level: level, size: Double(crop)) }
        // Halving floors odd sides, so the coarsest levels may be a pixel short of the exact scale.
        let size = min(Double(crop) / r, Double(min(plane.width, plane.height)))
        return Footprint(scale: s, level: level, size: max(size, Double(crop)))
    }

    /// Area-averaging weights of `n` outputs over a source span of `size` pixels starting at 0:
    /// for output j, the overlap of [j·size/n, (j+1)·size/n) with each source pixel.
    static func areaWeights(_ n: Int, _ size: Double) -> [(first: Int, w: [Float])] {
        let step = size / Double(n)
        return (0..<n).map { j in
            let a = Double(j) * step, b = Double(j + 1) * step
            let first = Int(a.rounded(.down)), last = min(Int(b.rounded(.up)) - 1, Int(size.rounded(.up)) - 1)
            var w: [Float] = []
            for k in first...max(first, last) {
                let overlap = min(b, Double(k + 1)) - max(a, Double(k))
                w.append(Float(max(overlap, 0) / step))
            }
            return (first, w)
        }
    }

    /// One multi-scale crop of photo i as 3·crop² floats in 0–255 (not yet rounded).
    func multiScaleCrop(_ i: Int, rng: inout PriorRNG) -> [Float] {
        let c = crop
        let fp = drawFootprint(i, rng: &rng)
        let img = levels[i][fp.level]
        let span = Int(fp.size.rounded(.up))
        let x0 = rng.below(img.width - span + 1), y0 = rng.below(img.height - span + 1)
        var out = [Float](repeating: 0, count: 3 * c * c)
        if span == c {
            for ch in 0..<3 {
                let src = ch * img.width * img.height
                for y in 0..<c {
                    for x in 0..<c { out[(ch * c + y) * c + x] = Float(img.rgb[src + (y0 + y) * img.width + x0 + x]) }
                }
            }
            return out
        }
        let wts = PriorDataset.areaWeights(c, fp.size)
        var rows = [Float](repeating: 0, count: span * c)
        for ch in 0..<3 {
            let src = ch * img.width * img.height
            for y in 0..<span {
                let row = src + (y0 + y) * img.width + x0
                for x in 0..<c {
                    let (first, w) = wts[x]
                    var acc: Float = 0
                    for k in 0..<w.count { acc += w[k] * Float(img.rgb[row + first + k]) }
                    rows[y * c + x] = acc
                }
            }
            for y in 0..<c {
                let (first, w) = wts[y]
                for x in 0..<c {
                    var acc: Float = 0
                    for k in 0..<w.count { acc += w[k] * rows[(first + k) * c + x] }
                    out[(ch * c + y) * c + x] = acc
                }
            }
        }
        return out
    }

    /// Brightness, contrast and saturation factors, each uniform in [1 − jitter, 1 + jitter].
    public static func drawJitter(_ jitter: Double, rng: inout PriorRNG) -> (brightness: Float, contrast: Float, saturation: Float) {
        let f = { (u: Double) in Float(1 + jitter * (2 * u - 1)) }
        return (f(rng.uniform()), f(rng.uniform()), f(rng.uniform()))
    }

    /// Applies the factors to planar RGB in 0–255 (count pixels a plane): saturation about each
    /// pixel's luma, contrast about the crop's mean luma, then brightness as a gain; clipped to 0–255.
    public static func applyJitter(_ p: inout [Float], pixels n: Int, brightness: Float, contrast: Float, saturation: Float) {
        var mean: Double = 0
        var luma = [Float](repeating: 0, count: n)
        for j in 0..<n {
            luma[j] = 0.299 * p[j] + 0.587 * p[n + j] + 0.114 * p[2 * n + j]
            mean += Double(luma[j])
        }
        let m = Float(mean / Double(n))
        for ch in 0..<3 {
            for j in 0..<n {
                let v = luma[j] + saturation * (p[ch * n + j] - luma[j])
                p[ch * n + j] = min(max(brightness * (m + contrast * (v - m)), 0), 255)
            }
        }
    }

    /// A batch [n, 3, crop, crop] in [−1, 1] on the 8-bit grid: photo, scale, crop, one of the 8
    /// flips and quarter turns (only the left–right mirror for upright kinds), colour jitter.
    public func batch(_ n: Int, rng: inout PriorRNG) -> Tensor {
        let c = crop, plane = c * c
        let out = Tensor(uninitialized: [n, 3, c, c])
        let p = out.data
        let plain = !sampling.multiScale && sampling.jitter == 0
        for b in 0..<n {
            let i = pickPhoto(rng: &rng)
            if plain {
                // The first prior's stream of draws, kept so its recipe still rebuilds it.
                let photo = levels[i]
                let img = photo[rng.below(photo.count)]
                let x0 = rng.below(img.width - c + 1), y0 = rng.below(img.height - c + 1)
                let t = upright[i] ? rng.below(2) : rng.below(8)
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
                continue
            }
            var px: [Float]
            if sampling.multiScale {
                px = multiScaleCrop(i, rng: &rng)
            } else {
                let photo = levels[i]
                let img = photo[rng.below(photo.count)]
                let x0 = rng.below(img.width - c + 1), y0 = rng.below(img.height - c + 1)
                px = [Float](repeating: 0, count: 3 * plane)
                for ch in 0..<3 {
                    let src = ch * img.width * img.height
                    for y in 0..<c { for x in 0..<c { px[ch * plane + y * c + x] = Float(img.rgb[src + (y0 + y) * img.width + x0 + x]) } }
                }
            }
            let t = upright[i] ? rng.below(2) : rng.below(8)
            if sampling.jitter > 0 {
                let j = PriorDataset.drawJitter(sampling.jitter, rng: &rng)
                PriorDataset.applyJitter(&px, pixels: plane, brightness: j.brightness, contrast: j.contrast, saturation: j.saturation)
            }
            let transpose = t & 4 != 0, flipX = t & 1 != 0, flipY = t & 2 != 0
            for ch in 0..<3 {
                let dst = p + (b * 3 + ch) * plane
                for y in 0..<c {
                    for x in 0..<c {
                        var sx = transpose ? y : x, sy = transpose ? x : y
                        if flipX { sx = c - 1 - sx }
                        if flipY { sy = c - 1 - sy }
                        // Clean photos are 8-bit files, so resized and jittered crops go back to the grid.
                        dst[y * c + x] = px[ch * plane + sy * c + sx].rounded() / 127.5 - 1
                    }
                }
            }
        }
        return out
    }
}
