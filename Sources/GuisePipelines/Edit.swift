import Foundation
import GuiseDiffusion
import GuiseImage
import GuiseTensor
import GuiseVision

/// How `Edit` changes the masked region.
public struct EditOptions {
    public enum Mode: String, CaseIterable, Sendable, Codable {
        /// Inpainting: the region is made anew from its surroundings (RePaint).
        case fill
        /// SDEdit inside the region: noise the photo to `strength`, denoise, keeping the rest
        /// from the noised original at every step, so a paste-in takes on its surroundings' look.
        case harmonize
    }

    /// What a fill starts from inside the region.
    public enum FillStart: String, CaseIterable, Sendable, Codable {
        /// Pure noise from the top of the schedule.
        case noise
        /// OpenCV's Telea inpainting, noised to `fillStrength` of the schedule.
        case telea
    }

    public var mode: Mode = .fill
    /// Model name or file (nil: the embedded prior).
    public var model: String?
    /// Reverse steps of the respaced schedule (the full walk; a Telea start or a harmonise runs
    /// the last `fillStrength` or `strength` of them).
    public var steps = 50
    /// RePaint: each stretch of `jump` steps is walked down `resample` times in all (1: no jumps).
    /// With the embedded prior, resampling smooths the fill (less texture, lower PSNR: see
    /// docs/EDIT.md), so it is off by default.
    public var resample = 1
    public var jump = 5
    /// Harmonise: the fraction of the schedule the photo is noised to.
    public var strength = 0.4
    /// How each reverse step is taken.
    public enum Sampler: String, CaseIterable, Sendable, Codable {
        /// DDPM with the posterior's variance (fixed-small): at a few respaced steps the fixed-large
        /// variance leaves visible grain.
        case ddpm
        /// DDIM, deterministic between RePaint's re-noising jumps.
        case ddim
    }

    public var sampler: Sampler = .ddpm
    /// Harmonise: first blend the region into its surroundings in the gradient domain (its own
    /// gradients kept, its edge made continuous with theirs: a membrane correction), then let the
    /// model redraw it. The model alone leaves most of a colour cast, since noise at a moderate
    /// strength keeps the low frequencies.
    public var poisson = true
    /// Harmonise: how much of the region's own fine detail (the band under `detailSigma`
    /// pixels, taken after the gradient-domain blend) replaces the model's. A paste-in's
    /// mismatch is in its colours and light, which live in the low frequencies the model redraws;
    /// at a moderate strength the small prior would also repaint its texture and edges as
    /// blotches. 1 keeps the region's detail, 0 keeps the model's (to redraw a scribble). Not
    /// applied with `guidance` that has no start (see `EditGuidance.start`).
    public var detail = 1.0
    public var detailSigma = 4.0
    /// Harmonise from a guidance's start: the start's broad colour and light (its Gaussian
    /// low-pass at this σ in pixels) replace the model's, so a large region keeps the photo's
    /// tones where the small prior drifts (a paler or tinted face). nil: the model's are kept.
    public var startToneSigma: Double?
    /// Telea then noise keeps the fill's broad colours near the smooth fill's (and so its PSNR)
    /// while the model draws texture; from pure noise the texture is right but colours wander.
    public var fillStart: FillStart = .telea
    /// A Telea-started fill is noised to this fraction of the schedule.
    public var fillStrength = 0.6
    /// Fill: blend the fill's edge into the photo (a membrane: the prior's broad colours drift)
    /// and scale its detail bands to the texture level around the hole (`FillTexture`); the
    /// prior alone draws about the same detail beside fur as beside sky.
    public var matchTexture = true
    public var seed: UInt64 = 0
    /// Context around the mask's bounding box, in pixels (nil: a quarter of its longer side, 16…64).
    public var margin: Int?
    /// The largest side the network sees at once; larger windows are tiled with a quarter overlap.
    public var tileSize = 384
    /// A photo rectangle [x0, y0, x1, y1) the network's window must include besides the mask
    /// (a guidance expert's input, e.g. the whole face for the gaze expert).
    public var context: [Int]?
    /// Extra energy on the window's x̂0 (in −1…1), lower is better; see `EditGuidance`.
    public var guidance: EditGuidance?
    /// Reference attention (`ADMReference`): an image the photo's size, cut into the same
    /// windows and tiles as the photo, each tile's piece running beside the tile in the network,
    /// whose self-attention layers then attend to it with `referenceWeight`. nil or 0: off.
    public var reference: Image?
    public var referenceWeight = 0.0
    /// (transitions done, total) over every tile.
    public var progress: ((Int, Int) -> Void)?

    public init() {}
}

/// Classifier guidance for a re-rendering edit. `energy` gets x̂0 of the whole photo-sized window
/// as [1, 3, h, w] in −1…1 and the window's top-left corner in photo pixels; its gradient is
/// applied only inside the mask (the rest is re-imposed from the original every step).
public struct EditGuidance {
    /// What the report calls it ("gaze", …).
    public var name: String
    public var energy: (_ x0: Tensor, _ origin: (x: Int, y: Int)) throws -> Tensor
    /// The photo the re-rendering starts from, made from the input (the eyes already turned,
    /// say); only pixels inside the mask may differ from the input's, the rest are ignored. With
    /// a start, the harmonise keeps the start's fine detail (`EditOptions.detail`); without one,
    /// the experts redraw the region and the old detail is not brought back.
    public var start: ((Image) throws -> Image)?
    public init(name: String = "custom", start: ((Image) throws -> Image)? = nil,
                energy: @escaping (_ x0: Tensor, _ origin: (x: Int, y: Int)) throws -> Tensor) {
        self.name = name
        self.start = start
        self.energy = energy
    }
}

/// What an edit did, for `--json` and logs.
public struct EditReport: Codable, Equatable {
    public var mode: EditOptions.Mode
    public var width: Int
    public var height: Int
    /// Pixels that may change (mask > 0 after grow and feather), and their share of the photo.
    public var maskPixels: Int
    public var maskFraction: Double
    /// The network's windows, [x, y, w, h] in photo pixels (they may reach past the edge, mirrored).
    public var windows: [[Int]]
    public var steps: Int
    public var resample: Int
    public var jump: Int
    public var strength: Double?
    public var fillStart: EditOptions.FillStart?
    public var sampler: EditOptions.Sampler
    public var guidance: String?
    /// The reference attention weight, when a reference was used.
    public var referenceAttention: Double? = nil
    /// Network evaluations in all.
    public var evaluations: Int
    public var seed: UInt64
    public var seconds: Double
    public var model: String
    public var notes: [String]
    public var warnings: [String]
}

/// Mask-guided editing: change the pixels under a mask with a diffusion model and keep every other
/// pixel exactly as decoded. The network sees a window around the mask at the photo's own
/// resolution, never a downscaled photo, so cost follows the mask's size, not the photo's.
///
/// Memory: the photo and the result as float planes (32 bytes a pixel with alpha), plus one
/// window of at most `tileSize`² at a time in the network (about 0.4 GB at 384² for the prior).
public struct Edit {
    public var options: EditOptions
    var model: DiffusionModel?
    var models: ModelCache?

    /// The network is `model`, or else loaded when a run needs it: from `models` (shared between
    /// a batch's jobs) or from its file.
    public init(_ options: EditOptions = EditOptions(), model: DiffusionModel? = nil, models: ModelCache? = nil) {
        self.options = options
        self.model = model
        self.models = models
    }

    public func run(image: Image, mask: Mask) throws -> (Image, EditReport) {
        let start = Date()
        try image.validate()
        var o = options
        guard o.steps >= 1, o.steps <= 1000 else { throw EditError("--steps must be between 1 and 1000") }
        guard o.resample >= 1, o.jump >= 1 else { throw EditError("--resample and --jump must be 1 or more") }
        guard o.strength > 0, o.strength <= 1 else { throw EditError("--strength must be in (0, 1]") }
        guard o.fillStrength > 0, o.fillStrength <= 1 else { throw EditError("the fill strength must be in (0, 1]") }
        guard o.detail >= 0, o.detail <= 1 else { throw EditError("--detail must be between 0 and 1") }
        guard o.detailSigma > 0, o.detailSigma <= 16 else { throw EditError("the detail scale must be in (0, 16] pixels") }
        if let t = o.startToneSigma { guard t > 0, t.isFinite else { throw EditError("the tone scale must be a positive number of pixels") } }
        guard o.tileSize >= 32 else { throw EditError("the tile size must be at least 32") }
        if let m = o.margin, m < 0 { throw EditError("--margin must be 0 or more") }
        guard o.referenceWeight.isFinite, o.referenceWeight >= 0, o.referenceWeight <= 10 else {
            throw EditError("the reference attention weight must be between 0 and 10")
        }
        let reference = o.referenceWeight > 0 ? o.reference : nil
        if let r = reference, r.width != image.width || r.height != image.height {
            throw EditError("the reference image is \(r.width)x\(r.height), the photo \(image.width)x\(image.height)")
        }
        var notes: [String] = [], warnings: [String] = []

        var weight = mask
        if mask.width != image.width || mask.height != image.height {
            warnings.append("the mask is \(mask.width)x\(mask.height), the photo \(image.width)x\(image.height): resized to fit")
            weight = try EditMasks.resize(mask, width: image.width, height: image.height)
        }
        guard !weight.values.contains(where: { $0.isNaN }) else { throw EditError("the mask holds NaN values") }
        weight.values = weight.values.map { min(max($0, 0), 1) }
        let changeable = weight.values.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        let fraction = Double(changeable) / Double(image.pixelCount)

        var report = EditReport(
            mode: o.mode, width: image.width, height: image.height, maskPixels: changeable, maskFraction: fraction,
            windows: [], steps: o.steps, resample: o.mode == .fill ? o.resample : 1, jump: o.jump,
            strength: o.mode == .harmonize ? o.strength : (o.fillStart == .telea ? o.fillStrength : nil),
            fillStart: o.mode == .fill ? o.fillStart : nil, sampler: o.sampler, guidance: o.guidance?.name, evaluations: 0, seed: o.seed, seconds: 0,
            model: o.model ?? DiffusionModel.priorName, notes: [], warnings: [])
        if reference != nil { report.referenceAttention = o.referenceWeight }

        if changeable == 0 {
            notes.append("the mask is empty: the photo is returned unchanged")
            report.notes = notes
            report.warnings = warnings
            report.seconds = Date().timeIntervalSince(start)
            return (image, report)
        }
        if changeable == image.pixelCount && o.mode == .fill {
            warnings.append("the mask covers the whole photo: the fill is an unconditional sample")
            // Telea has nothing to start from.
            o.fillStart = .noise
            report.fillStart = .noise
            report.strength = nil
        }

        let loaded = try model ?? models?.diffusion(o.model) ?? DiffusionModel.load(o.model)
        let cfg = loaded.config
        let diffusion = try GaussianDiffusion(
            schedule: try BetaSchedule(named: cfg.noiseSchedule), steps: cfg.diffusionSteps, respacing: String(o.steps),
            varianceType: cfg.learnSigma ? .learnedRange : .fixedSmall, rescaleTimesteps: cfg.rescaleTimesteps)
        let stride = loaded.stride
        var tile = max(stride, o.tileSize / stride * stride)
        if let c = o.context, c.count != 4 || c[0] >= c[2] || c[1] >= c[3] {
            throw EditError("the context rectangle must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        }
        // One window per cluster of mask parts (parts whose windows would overlap share one), so
        // two small holes far apart cost two small windows, not the photo between them.
        let windows = o.context != nil
            ? [Window.around(weight, stride: stride, margin: o.margin, include: o.context)]
            : Window.covering(weight, stride: stride, margin: o.margin)
        report.windows = windows.map { [$0.x, $0.y, $0.width, $0.height] }
        // A guidance's experts read the whole context (a face, for the mesh, iris and dlib
        // networks): a tile holding part of it would hand them a face they cannot read.
        if o.guidance != nil, o.context != nil, let window = windows.first {
            let need = (max(window.width, window.height) + stride - 1) / stride * stride
            if need > tile {
                guard need <= Edit.maxGuidedTile else {
                    throw EditError("the guided region needs a \(need)-pixel window, more than the \(Edit.maxGuidedTile) a guided edit runs at once: shrink the photo", category: .unsupported)
                }
                tile = need
            }
        }

        let skip: Int
        switch o.mode {
        case .fill: skip = o.fillStart == .telea ? o.steps - max(1, Int((o.fillStrength * Double(o.steps)).rounded())) : 0
        case .harmonize: skip = o.steps - max(1, Int((o.strength * Double(o.steps)).rounded()))
        }
        let repaint: RePaintJumps? = o.mode == .fill && o.resample > 1 ? RePaintJumps(jumpLength: o.jump, jumpNSample: o.resample) : nil
        let times = try repaint?.times(from: o.steps - skip) ?? Array((0..<(o.steps - skip)).reversed()) + [-1]
        let perTile = times.count - 1
        let reversePerTile = zip(times, times.dropFirst()).filter { $1 < $0 }.count

        // The window's pixels (mirrored past the photo's edge) and which of them the network makes.
        let begin = try o.guidance?.start?(image) ?? image
        guard begin.width == image.width, begin.height == image.height else {
            throw EditError("the guidance's start is \(begin.width)x\(begin.height), the photo \(image.width)x\(image.height)", category: .internal)
        }
        var works = windows.map { $0.extract(begin) }
        let referenceWorks = reference.map { r in windows.map { $0.extract(r) } }
        var unknowns = windows.map { w in w.extractMask(weight).map { $0 > 0 } }
        let plan: [(window: Int, tile: WindowRect)] = windows.indices.flatMap { k in
            Window.tiles(width: windows[k].width, height: windows[k].height, tile: tile, stride: stride)
                .filter { windows[k].any(unknowns[k], in: $0) }.map { (k, $0) }
        }
        let total = perTile * plan.count
        var done = 0

        for (index, step) in plan.enumerated() {
            let window = windows[step.window], t = step.tile
            let (w, h) = (t.width, t.height)
            var tileImage = try window.crop(works[step.window], rect: t)
            let tileUnknown = window.cropMask(unknowns[step.window], rect: t)
            let m = Tensor(shape: [1, 1, h, w], values: tileUnknown.map { $0 ? 1 : 0 })
            if o.mode == .fill {
                if o.fillStart == .telea {
                    tileImage = try tileImage.inpainted(mask: Mask(width: w, height: h, values: tileUnknown.map { $0 ? 1 : 0 }))
                } else {
                    // Nothing of the old content leaks into the fill: the hole starts mid-grey under the noise.
                    let n = w * h
                    for i in 0..<n where tileUnknown[i] { for c in 0..<3 { tileImage.rgb[c * n + i] = 0.5 } }
                }
            }
            if o.mode == .harmonize && o.poisson {
                Membrane.blend(&tileImage, region: tileUnknown)
            }
            var sampler = SamplerOptions(method: o.sampler == .ddim ? .ddim(eta: 0) : .ddpm, clipDenoised: true, skipTimesteps: skip)
            sampler.mask = MaskBlend(mask: m, schedule: .hard, timing: .beforeStep, composite: .none)
            sampler.repaint = repaint
            let known = ImageTensor.tensor(tileImage, range: .signed)
            if let g = o.guidance {
                // The energy sees the known pixels as they are and x̂0 only where pixels are made.
                let origin = (x: window.x + t.x, y: window.y + t.y)
                let keep = m.scaled(-1, plus: 1)
                sampler.guidance = Guidance(image: .predictedStart, gradient: .throughPrediction) { x0, _ in
                    try g.energy(x0 * m + known * keep, origin)
                }
            }
            if let referenceWorks {
                let piece = try window.crop(referenceWorks[step.window], rect: t)
                sampler.reference = ReferenceImage(image: ImageTensor.tensor(piece, range: .signed), weight: o.referenceWeight,
                                                   seed: Edit.tileSeed(o.seed ^ 0x5EF_A77E_4710_0000, index))
            }
            let base = done
            sampler.progress = { p in o.progress?(base + p.index, total) }
            let noise = SeededNoise(seed: Edit.tileSeed(o.seed, index))
            let result = try diffusion.sample(loaded.denoiser, shape: [1, 3, h, w],
                                              initImage: known,
                                              options: sampler, noise: noise)
            done += perTile
            var made = try ImageTensor.image(result.sample, range: .signed)
            guard !made.rgb.contains(where: { $0.isNaN }) else { throw EditError("the model produced NaN values", category: .model) }
            // Guidance without a start moves features (an iris) the old detail would draw back.
            if o.mode == .harmonize && o.detail > 0 && (o.guidance == nil || o.guidance?.start != nil) {
                made = try Edit.withDetail(of: tileImage, on: made, amount: Float(o.detail), sigma: o.detailSigma)
            }
            if o.mode == .harmonize, let sigma = o.startToneSigma, o.guidance?.start != nil {
                made = try Edit.withTone(of: tileImage, on: made, sigma: sigma)
            }
            window.paste(made, into: &works[step.window], unknown: &unknowns[step.window], rect: t)
        }
        report.evaluations = reversePerTile * plan.count
        if o.mode == .fill && o.matchTexture {
            for (k, window) in windows.enumerated() {
                let hole = window.extractMask(weight).map { $0 > 0 }
                Membrane.blend(&works[k], region: hole, maxSweeps: 300)
                works[k] = try FillTexture.match(works[k], hole: hole)
            }
        }

        var out = image
        let grey = image.isGrey
        for (k, window) in windows.enumerated() { window.composite(works[k], into: &out, weight: weight, grey: grey) }
        report.notes = notes
        report.warnings = warnings
        report.seconds = Date().timeIntervalSince(start)
        return (out, report)
    }

    /// The largest tile a guided edit grows to (about 5 GB with the expert's gradient at 1024²).
    public static let maxGuidedTile = 1024

    /// `base` with `amount` of its band under `sigma` pixels swapped for `source`'s.
    static func withDetail(of source: Image, on base: Image, amount: Float, sigma: Double) throws -> Image {
        let sb = try source.blurred(sigma: sigma), bb = try base.blurred(sigma: sigma)
        var out = base
        for k in 0..<out.rgb.count {
            let v = base.rgb[k] + amount * ((source.rgb[k] - sb.rgb[k]) - (base.rgb[k] - bb.rgb[k]))
            out.rgb[k] = min(max(v, 0), 1)
        }
        return out
    }

    /// `base` with its Gaussian low-pass at `sigma` swapped for `source`'s.
    static func withTone(of source: Image, on base: Image, sigma: Double) throws -> Image {
        var difference = source
        for k in 0..<difference.rgb.count { difference.rgb[k] = source.rgb[k] - base.rgb[k] }
        let low = try difference.blurred(sigma: sigma)
        var out = base
        for k in 0..<out.rgb.count { out.rgb[k] = min(max(base.rgb[k] + low.rgb[k], 0), 1) }
        return out
    }

    /// Each tile draws its own noise stream, so a tile's result does not depend on how many
    /// draws the tiles before it made.
    static func tileSeed(_ seed: UInt64, _ index: Int) -> UInt64 {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A rectangle in window pixels.
struct WindowRect: Equatable {
    var x: Int, y: Int, width: Int, height: Int
}

/// The region the network sees: the mask's bounding box plus a margin, its sides multiples of
/// the model's stride. It is placed inside the photo where it fits; where the photo is smaller,
/// it reaches past the edge and those pixels mirror the photo (reflect-101).
struct Window {
    let x: Int, y: Int, width: Int, height: Int
    let imageWidth: Int, imageHeight: Int

    static func around(_ mask: Mask, stride: Int, margin: Int?, include: [Int]? = nil) -> Window {
        var x0 = mask.width, y0 = mask.height, x1 = -1, y1 = -1
        for yy in 0..<mask.height {
            let row = yy * mask.width
            for xx in 0..<mask.width where mask.values[row + xx] > 0 {
                x0 = min(x0, xx); x1 = max(x1, xx); y0 = min(y0, yy); y1 = max(y1, yy)
            }
        }
        if let c = include, c.count == 4 {
            x0 = min(x0, max(0, c[0])); y0 = min(y0, max(0, c[1]))
            x1 = max(x1, min(mask.width, c[2]) - 1); y1 = max(y1, min(mask.height, c[3]) - 1)
        }
        return make(Box4(x0: x0, y0: y0, x1: x1, y1: y1), width: mask.width, height: mask.height, stride: stride, margin: margin)
    }

    /// An inclusive pixel box.
    struct Box4 {
        var x0: Int, y0: Int, x1: Int, y1: Int
        func union(_ b: Box4) -> Box4 { Box4(x0: min(x0, b.x0), y0: min(y0, b.y0), x1: max(x1, b.x1), y1: max(y1, b.y1)) }
    }

    /// Windows for the mask's connected parts (8-neighbours), merged while any two overlap; more
    /// than `maxWindows` clusters (a speckled mask) fall back to one window round everything.
    static func covering(_ mask: Mask, stride: Int, margin: Int?, maxWindows: Int = 8) -> [Window] {
        let (w, h) = (mask.width, mask.height)
        var seen = [Bool](repeating: false, count: w * h)
        var boxes: [Box4] = []
        var stack: [Int] = []
        for start in 0..<(w * h) where mask.values[start] > 0 && !seen[start] {
            var b = Box4(x0: start % w, y0: start / w, x1: start % w, y1: start / w)
            seen[start] = true
            stack.append(start)
            while let p = stack.popLast() {
                let x = p % w, y = p / w
                b = b.union(Box4(x0: x, y0: y, x1: x, y1: y))
                for dy in -1...1 {
                    let yy = y + dy
                    guard yy >= 0, yy < h else { continue }
                    for dx in -1...1 {
                        let xx = x + dx
                        guard xx >= 0, xx < w else { continue }
                        let q = yy * w + xx
                        if !seen[q] && mask.values[q] > 0 { seen[q] = true; stack.append(q) }
                    }
                }
            }
            boxes.append(b)
            if boxes.count > 4096 { break }
        }
        func window(_ b: Box4) -> Window { make(b, width: w, height: h, stride: stride, margin: margin) }
        var merged = true
        while merged && boxes.count > 1 {
            merged = false
            let wins = boxes.map(window)
            search: for i in 0..<boxes.count {
                for j in (i + 1)..<boxes.count where wins[i].overlaps(wins[j]) {
                    boxes[i] = boxes[i].union(boxes[j])
                    boxes.remove(at: j)
                    merged = true
                    break search
                }
            }
        }
        if boxes.count > maxWindows { return [around(mask, stride: stride, margin: margin)] }
        return boxes.map(window)
    }

    func overlaps(_ o: Window) -> Bool {
        x < o.x + o.width && o.x < x + width && y < o.y + o.height && o.y < y + height
    }

    static func make(_ b: Box4, width: Int, height: Int, stride: Int, margin: Int?) -> Window {
        let bw = b.x1 - b.x0 + 1, bh = b.y1 - b.y0 + 1
        let m = margin ?? min(64, max(16, max(bw, bh) / 4))
        func axis(_ lo: Int, _ size: Int, _ limit: Int) -> (Int, Int) {
            let want = size + 2 * m
            let len = (want + stride - 1) / stride * stride
            var start = lo - (len - size) / 2
            if len <= limit {
                start = min(max(start, 0), limit - len)
            } else {
                start = -(len - limit) / 2
            }
            return (start, len)
        }
        let (wx, ww) = axis(b.x0, bw, width)
        let (wy, wh) = axis(b.y0, bh, height)
        return Window(x: wx, y: wy, width: ww, height: wh, imageWidth: width, imageHeight: height)
    }

    /// Tiles of at most `tile` a side covering a `width` × `height` window, overlapping by about a quarter.
    static func tiles(width: Int, height: Int, tile: Int, stride: Int) -> [WindowRect] {
        func starts(_ length: Int) -> [Int] {
            guard length > tile else { return [0] }
            let step = max(stride, (tile * 3 / 4) / stride * stride)
            let n = (length - tile + step - 1) / step + 1
            let room = (length - tile) / stride
            return (0..<n).map { i in stride * Int((Double(i * room) / Double(n - 1)).rounded()) }
        }
        let size = { (l: Int) in min(l, tile) }
        return starts(height).flatMap { ty in starts(width).map { tx in
            WindowRect(x: tx, y: ty, width: size(width), height: size(height))
        } }
    }

    /// reflect-101 into 0..<n.
    static func mirror(_ i: Int, _ n: Int) -> Int {
        guard n > 1 else { return 0 }
        let period = 2 * (n - 1)
        var j = i % period
        if j < 0 { j += period }
        return j < n ? j : period - j
    }

    func source(_ wx: Int, _ wy: Int) -> Int {
        Window.mirror(y + wy, imageHeight) * imageWidth + Window.mirror(x + wx, imageWidth)
    }

    func extract(_ image: Image) -> Image {
        let n = width * height, sn = image.pixelCount
        var rgb = [Float](repeating: 0, count: 3 * n)
        for wy in 0..<height {
            for wx in 0..<width {
                let s = source(wx, wy), d = wy * width + wx
                for c in 0..<3 { rgb[c * n + d] = image.rgb[c * sn + s] }
            }
        }
        return Image(width: width, height: height, rgb: rgb)
    }

    func extractMask(_ mask: Mask) -> [Float] {
        var out = [Float](repeating: 0, count: width * height)
        for wy in 0..<height { for wx in 0..<width { out[wy * width + wx] = mask.values[source(wx, wy)] } }
        return out
    }

    func any(_ flags: [Bool], in r: WindowRect) -> Bool {
        for yy in r.y..<(r.y + r.height) { for xx in r.x..<(r.x + r.width) where flags[yy * width + xx] { return true } }
        return false
    }

    /// The tile's colour planes (the network sees colour only).
    func crop(_ image: Image, rect r: WindowRect) throws -> Image {
        Image(width: r.width, height: r.height, rgb: try image.cropped(x: r.x, y: r.y, width: r.width, height: r.height).rgb)
    }

    func cropMask(_ flags: [Bool], rect r: WindowRect) -> [Bool] {
        (0..<(r.width * r.height)).map { i in flags[(r.y + i / r.width) * width + r.x + i % r.width] }
    }

    /// The tile's made pixels replace the window's unknown ones, which become known to later tiles.
    func paste(_ made: Image, into work: inout Image, unknown: inout [Bool], rect r: WindowRect) {
        let n = r.width * r.height, wn = width * height
        for yy in 0..<r.height {
            for xx in 0..<r.width {
                let d = (r.y + yy) * width + r.x + xx
                guard unknown[d] else { continue }
                for c in 0..<3 { work.rgb[c * wn + d] = made.rgb[c * n + yy * r.width + xx] }
                unknown[d] = false
            }
        }
    }

    /// out = photo·(1 − w) + made·w where w > 0; every other pixel (and all alpha) is left as it was.
    func composite(_ work: Image, into out: inout Image, weight: Mask, grey: Bool) {
        let n = out.pixelCount, wn = width * height
        for wy in 0..<height {
            let py = y + wy
            guard py >= 0, py < imageHeight else { continue }
            for wx in 0..<width {
                let px = x + wx
                guard px >= 0, px < imageWidth else { continue }
                let p = py * imageWidth + px
                let a = weight.values[p]
                guard a > 0 else { continue }
                let d = wy * width + wx
                var v = (work.rgb[d], work.rgb[wn + d], work.rgb[2 * wn + d])
                if grey {
                    let l = 0.299 * v.0 + 0.587 * v.1 + 0.114 * v.2
                    v = (l, l, l)
                }
                if a >= 1 {
                    out.rgb[p] = v.0; out.rgb[n + p] = v.1; out.rgb[2 * n + p] = v.2
                } else {
                    out.rgb[p] += (v.0 - out.rgb[p]) * a
                    out.rgb[n + p] += (v.1 - out.rgb[n + p]) * a
                    out.rgb[2 * n + p] += (v.2 - out.rgb[2 * n + p]) * a
                }
            }
        }
    }
}

/// Gradient-domain blending of a region into its surroundings with its own gradients: the result
/// is region + C, where C is harmonic inside the region and, across each edge to a pixel outside,
/// makes the two sides equal. A constant cast comes out exactly; a smooth one nearly so.
enum Membrane {
    /// `maxSweeps`: with a bound, the correction starts from a push–pull interpolation of its
    /// edge values instead of zero, and the relaxation only smooths that (a region of side L
    /// needs about 3L sweeps from zero; a photo-sized fill would cost more than its diffusion).
    static func blend(_ image: inout Image, region: [Bool], maxSweeps: Int? = nil) {
        let w = image.width, h = image.height, n = w * h
        let inside = (0..<n).filter { region[$0] }
        guard !inside.isEmpty, inside.count < n else { return }
        // Over-relaxed Gauss–Seidel; a region of side L needs on the order of L sweeps.
        var x0 = w, x1 = 0, y0 = h, y1 = 0
        for p in inside { x0 = min(x0, p % w); x1 = max(x1, p % w); y0 = min(y0, p / w); y1 = max(y1, p / w) }
        let fullSweeps = 3 * max(x1 - x0 + 1, y1 - y0 + 1) + 50
        let sweeps = min(fullSweeps, maxSweeps ?? fullSweeps)
        let warmStart = sweeps < fullSweeps
        let omega: Float = 1.9
        // Each inside pixel's neighbours in a fixed order (left, right, up, down): a neighbour
        // inside contributes its correction, one outside the fixed difference to this pixel.
        // Slot = index of the neighbour inside, -1 for one outside, -2 for none (the photo's edge).
        var slot = [Int32](repeating: -2, count: 4 * inside.count)
        var count = [Float](repeating: 0, count: inside.count)
        for (k, p) in inside.enumerated() {
            let x = p % w, y = p / w
            for (j, (q, ok)) in [(p - 1, x > 0), (p + 1, x < w - 1), (p - w, y > 0), (p + w, y < h - 1)].enumerated() where ok {
                slot[4 * k + j] = region[q] ? Int32(q) : -1
                count[k] += 1
            }
        }
        var outsideDifference = [Float](repeating: 0, count: 4 * inside.count)
        for c in 0..<3 {
            let base = c * n
            for (k, p) in inside.enumerated() {
                let neighbours = [p - 1, p + 1, p - w, p + w]
                for j in 0..<4 where slot[4 * k + j] == -1 {
                    outsideDifference[4 * k + j] = image.rgb[base + neighbours[j]] - image.rgb[base + p]
                }
            }
            var corr = [Float](repeating: 0, count: n)
            if warmStart {
                // Edge pixels' own goal: the mean difference to their neighbours outside.
                var edge = [Float](repeating: 0, count: n), known = [Bool](repeating: false, count: n)
                for (k, p) in inside.enumerated() {
                    var sum: Float = 0, m: Float = 0
                    for j in 0..<4 where slot[4 * k + j] == -1 { sum += outsideDifference[4 * k + j]; m += 1 }
                    if m > 0 { edge[p] = sum / m; known[p] = true }
                }
                let guess = pushPull(edge, known: known, width: w, height: h)
                for p in inside { corr[p] = guess[p] }
            }
            slot.withUnsafeBufferPointer { sl in
                outsideDifference.withUnsafeBufferPointer { od in
                    corr.withUnsafeMutableBufferPointer { cr in
                        for _ in 0..<sweeps {
                            var change: Float = 0
                            for (k, p) in inside.enumerated() {
                                guard count[k] > 0 else { continue }
                                var sum: Float = 0
                                for j in 0..<4 {
                                    let q = sl[4 * k + j]
                                    if q >= 0 { sum += cr[Int(q)] } else if q == -1 { sum += od[4 * k + j] }
                                }
                                let next = cr[p] + omega * (sum / count[k] - cr[p])
                                change = max(change, abs(next - cr[p]))
                                cr[p] = next
                            }
                            if change < 1e-5 { break }
                        }
                    }
                }
            }
            for p in inside { image.rgb[base + p] = min(max(image.rgb[base + p] + corr[p], 0), 1) }
        }
    }

    /// Fills the pixels not `known` by pulling known values down a pyramid of 2×2 weighted means
    /// and pushing them back up (bilinear), each level keeping what it knows: a smooth
    /// interpolation in time linear in the pixels.
    static func pushPull(_ values: [Float], known: [Bool], width: Int, height: Int) -> [Float] {
        var levels: [(v: [Float], w: [Float], width: Int, height: Int)] =
            [(zip(values, known).map { $1 ? $0 : 0 }, known.map { $0 ? 1 : 0 }, width, height)]
        while levels.last!.width > 1 || levels.last!.height > 1 {
            let (v, wt, lw, lh) = levels.last!
            let nw = (lw + 1) / 2, nh = (lh + 1) / 2
            var nv = [Float](repeating: 0, count: nw * nh), nwt = [Float](repeating: 0, count: nw * nh)
            for y in 0..<lh {
                for x in 0..<lw {
                    let i = y * lw + x, o = (y / 2) * nw + x / 2
                    nv[o] += v[i] * wt[i]
                    nwt[o] += wt[i]
                }
            }
            for o in 0..<(nw * nh) where nwt[o] > 0 {
                nv[o] /= nwt[o]
                nwt[o] = min(nwt[o], 1)
            }
            levels.append((nv, nwt, nw, nh))
        }
        for l in stride(from: levels.count - 2, through: 0, by: -1) {
            let up = levels[l + 1]
            var (v, wt, lw, lh) = levels[l]
            for y in 0..<lh {
                for x in 0..<lw {
                    let i = y * lw + x
                    guard wt[i] < 1 else { continue }
                    // The coarse pixel centres sit at 2c + 0.5 in this level's pixels.
                    let fx = min(max((Float(x) - 0.5) / 2, 0), Float(up.width - 1))
                    let fy = min(max((Float(y) - 0.5) / 2, 0), Float(up.height - 1))
                    let x0 = Int(fx), y0 = Int(fy), x1 = min(x0 + 1, up.width - 1), y1 = min(y0 + 1, up.height - 1)
                    let ax = fx - Float(x0), ay = fy - Float(y0)
                    let top = up.v[y0 * up.width + x0] * (1 - ax) + up.v[y0 * up.width + x1] * ax
                    let bottom = up.v[y1 * up.width + x0] * (1 - ax) + up.v[y1 * up.width + x1] * ax
                    let coarse = top * (1 - ay) + bottom * ay
                    v[i] = wt[i] * v[i] + (1 - wt[i]) * coarse
                }
            }
            wt = [Float](repeating: 1, count: lw * lh)
            levels[l] = (v, wt, lw, lh)
        }
        return levels[0].v
    }
}
