import Foundation
import GuiseNetworks
import GuisePrior
import GuiseTensor

/// DiffFace's expert networks as its guidance calls them: plain functions of tensors,
/// differentiable in their input. Any of them may be missing; the swap then uses the embedded
/// expert for that job (see `DiffFaceSwap`).
public struct DiffFaceExperts {
    /// ArcFace: [N, 3, 112, 112], ImageNet-normalised → [N, 512] raw embedding.
    public var identity: ((Tensor) throws -> Tensor)?
    /// BiSeNet: [N, 3, 512, 512] (ImageNet-normalised, then (x − 0.5)/0.5, as DiffFace feeds it)
    /// → [N, 19, 512, 512] logits of the main head.
    public var parser: ((Tensor) throws -> Tensor)?
    /// EyeNet: [N, 96, 160] grey in 0…1 → [N, 2] gaze (pitch, yaw).
    public var gaze: ((Tensor) throws -> Tensor)?

    public init(identity: ((Tensor) throws -> Tensor)? = nil, parser: ((Tensor) throws -> Tensor)? = nil,
                gaze: ((Tensor) throws -> Tensor)? = nil) {
        self.identity = identity
        self.parser = parser
        self.gaze = gaze
    }
}

/// One augmented view of the identity loss: an optional affine warp (border padding) and then an
/// optional perspective warp (zero padding), both in the normalised coordinates of
/// `F.grid_sample` (align_corners false), each mapping an output position to where it samples.
public struct DiffFaceView: Equatable {
    /// Row-major 2×3.
    public var affine: [Float]?
    /// Row-major 3×3, applied as a homography.
    public var perspective: [Float]?

    public init(affine: [Float]? = nil, perspective: [Float]? = nil) {
        self.affine = affine
        self.perspective = perspective
    }

    /// DiffFace's kornia pipeline, `RandomAffine(15°, translate 0.1, border)` then
    /// `RandomPerspective(0.7)`, each applied with probability 0.7: the rotation is about the
    /// centre, the shift up to a tenth of the side; each perspective corner moves inwards by up to
    /// 0.7 of the half side.
    public static func random(count: Int, generator g: inout PriorRNG) -> [DiffFaceView] {
        (0..<count).map { _ in
            var v = DiffFaceView()
            if g.uniform() < 0.7 {
                let a = Float((g.uniform() * 2 - 1) * 15 * Double.pi / 180)
                let tx = Float((g.uniform() * 2 - 1) * 0.2), ty = Float((g.uniform() * 2 - 1) * 0.2)
                // Output → input: rotate by −a about the centre, shift by −t (in [−1, 1] units).
                v.affine = [cos(a), sin(a), -tx, -sin(a), cos(a), -ty]
            }
            if g.uniform() < 0.7 {
                let corners: [(Double, Double)] = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
                var moved: [(Double, Double)] = []
                for (cx, cy) in corners {
                    let dx = 0.7 * g.uniform(), dy = 0.7 * g.uniform()
                    moved.append((cx < 0 ? cx + dx : cx - dx, cy < 0 ? cy + dy : cy - dy))
                }
                // The image is squeezed into the moved corners: an output position samples the
                // input at the homography from the moved corners back to the originals.
                v.perspective = DiffFaceView.homography(from: moved, to: corners).map(Float.init)
            }
            return v
        }
    }

    /// The 3×3 homography (h33 = 1) taking four points onto four others.
    static func homography(from p: [(Double, Double)], to q: [(Double, Double)]) -> [Double] {
        var a = [[Double]](repeating: [Double](repeating: 0, count: 9), count: 8)
        for k in 0..<4 {
            let (x, y) = p[k], (u, v) = q[k]
            a[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y, u]
            a[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y, v]
        }
        // Gauss–Jordan with partial pivoting on the 8×8 system.
        for c in 0..<8 {
            let pivot = (c..<8).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, pivot)
            let d = a[c][c]
            for j in c..<9 { a[c][j] /= d }
            for r in 0..<8 where r != c {
                let f = a[r][c]
                if f != 0 { for j in c..<9 { a[r][j] -= f * a[c][j] } }
            }
        }
        return (0..<8).map { a[$0][8] } + [1]
    }

    /// The view of `x` [N, C, H, W].
    func apply(_ x: Tensor) -> Tensor {
        var y = x
        let n = x.shape[0], h = x.shape[2], w = x.shape[3]
        if let affine {
            let theta = Tensor(shape: [n, 2, 3], values: Array((0..<n).map { _ in affine }.joined()))
            y = NN.gridSample(y, grid: NN.affineGrid(theta, size: NN.Pair(h, w), alignCorners: false), padding: .border, alignCorners: false)
        }
        if let perspective {
            y = NN.gridSample(y, grid: DiffFaceView.grid(perspective, n: n, h: h, w: w), padding: .zeros, alignCorners: false)
        }
        return y
    }

    /// Sampling grid [N, H, W, 2] of a homography over pixel centres in normalised coordinates.
    static func grid(_ m: [Float], n: Int, h: Int, w: Int) -> Tensor {
        // Pixel centres, as affine_grid places them with align_corners false.
        let xs = (0..<w).map { Float((2 * Double($0) + 1) / Double(w) - 1) }
        let ys = (0..<h).map { Float((2 * Double($0) + 1) / Double(h) - 1) }
        var g = [Float](repeating: 0, count: n * h * w * 2)
        for i in 0..<h {
            for j in 0..<w {
                let x = xs[j], y = ys[i]
                let d = m[6] * x + m[7] * y + m[8]
                let u = (m[0] * x + m[1] * y + m[2]) / d, v = (m[3] * x + m[4] * y + m[5]) / d
                for b in 0..<n {
                    let o = ((b * h + i) * w + j) * 2
                    g[o] = u; g[o + 1] = v
                }
            }
        }
        return Tensor(shape: [n, h, w, 2], values: g)
    }
}

/// DiffFace's guidance energy on its guidance image x_in (DESIGN §3), term by term as its sampler
/// computes them on a 256² aligned face in [−1, 1]:
///
/// - identity: 1 − cos(ArcFace(views of normalise((x_in+1)/2)·M, nearest-resized to 112),
///   ArcFace(source)), averaged over one clean and `views − 1` augmented views;
/// - semantic: Σ over the face classes of mean |BiSeNet(x_in) − BiSeNet(target)| on logits
///   brought back from 512 to 256;
/// - gaze: mean |EyeNet(eye crop of x_in) − EyeNet(eye crop of target)| over both eyes, only for
///   10 < t < 50;
/// - background: mean (x_in − target)² over the whole image.
///
/// A missing expert's term is left out (the swap adds the embedded expert's instead).
public struct DiffFaceLosses {
    public struct Weights: Codable, Equatable {
        public var identity: Float = 6000
        public var semantic: Float = 200
        public var gaze: Float = 200
        public var background: Float = 50
        public init() {}
    }

    /// BiSeNet's classes that make DiffFace's face mask and its semantic loss: skin, brows, eyes,
    /// nose, mouth, lips.
    public static let faceClasses = [1, 2, 3, 4, 5, 10, 11, 12, 13]
    /// DiffFace runs the gaze term only for 10 < t < 50 (respaced steps).
    public static func gazeActive(_ t: Int) -> Bool { t > 10 && t < 50 }
    static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
    static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

    public let experts: DiffFaceExperts
    public var weights = Weights()
    /// The aligned target [1, 3, 256, 256] in [−1, 1] and DiffFace's binary face mask [1, 1, 256, 256]
    /// (settable, since DiffFace makes it from the target's parsing, which this computes).
    public let target: Tensor
    public var mask: Tensor {
        didSet { precondition(mask.shape == [1, 1, 256, 256], "DiffFace's mask must be [1, 1, 256, 256]") }
    }
    /// The source's L2-normalised ArcFace embedding [1, 512] (nil without ArcFace); settable,
    /// so that several photos of one person can give their mean.
    public var sourceEmbedding: Tensor?
    /// The target's parsing logits at 256 (nil without BiSeNet).
    public let targetParsing: Tensor?
    /// Eye boxes (x0, y0, x1, y1, half-open, in 256² pixels) and the target's gaze through each.
    public let eyeBoxes: [[Int]]
    public let targetGaze: [Tensor]

    public init(experts: DiffFaceExperts, target: Tensor, mask: Tensor, source: Tensor?, eyeBoxes: [[Int]]) throws {
        guard target.shape == [1, 3, 256, 256] else { throw PipelineError("DiffFace works on [1, 3, 256, 256] faces, got \(target.shape)", category: .internal) }
        guard mask.shape == [1, 1, 256, 256] else { throw PipelineError("DiffFace's mask must be [1, 1, 256, 256], got \(mask.shape)", category: .internal) }
        self.experts = experts
        self.target = target
        self.mask = mask
        self.eyeBoxes = eyeBoxes
        if let embed = experts.identity, let source {
            sourceEmbedding = try Autograd.noGrad {
                let e = try DiffFaceLosses.embedding(source, mask: nil, embed: embed)
                return e / e.norm(dims: [1], keepDims: true)
            }
        } else {
            sourceEmbedding = nil
        }
        if let parse = experts.parser {
            targetParsing = try Autograd.noGrad { try DiffFaceLosses.parsing(target, parse: parse) }
        } else {
            targetParsing = nil
        }
        if let gaze = experts.gaze, eyeBoxes.count == 2 {
            targetGaze = try Autograd.noGrad { try eyeBoxes.map { try DiffFaceLosses.eyeGaze(target, box: $0, gaze: gaze) } }
        } else {
            targetGaze = []
        }
    }

    /// The energy at respaced step t, the identity term averaged over the clean view and
    /// `views`; `terms` receives each weighted term's value. With t nil the gaze term is on
    /// whatever the step.
    public func energy(_ xIn: Tensor, t: Int?, views: [DiffFaceView] = [], terms: ((String, Float) -> Void)? = nil) throws -> Tensor {
        var total = Tensor.scalar(0)
        if let embed = experts.identity, let src = sourceEmbedding, weights.identity > 0 {
            let e = try DiffFaceLosses.embedding(xIn, mask: mask, embed: embed, views: [DiffFaceView()] + views)
            let d = DiffFaceLosses.cosine(e, src).scaled(-1, plus: 1).mean().scaled(weights.identity)
            terms?("identity", d.item())
            total = total + d
        }
        if let parse = experts.parser, let ref = targetParsing, weights.semantic > 0 {
            let p = try DiffFaceLosses.parsing(xIn, parse: parse)
            var s = Tensor.scalar(0)
            for c in DiffFaceLosses.faceClasses {
                let a = p.slice(dim: 1, start: c, end: c + 1), b = ref.slice(dim: 1, start: c, end: c + 1)
                s = s + (a - b).absolute().mean()
            }
            s = s.scaled(weights.semantic)
            terms?("semantic", s.item())
            total = total + s
        }
        if let gaze = experts.gaze, targetGaze.count == 2, t.map(DiffFaceLosses.gazeActive) ?? true, weights.gaze > 0 {
            var g = Tensor.scalar(0)
            for (box, ref) in zip(eyeBoxes, targetGaze) {
                g = g + (try DiffFaceLosses.eyeGaze(xIn, box: box, gaze: gaze) - ref).absolute().mean()
            }
            g = g.scaled(weights.gaze)
            terms?("gaze", g.item())
            total = total + g
        }
        if weights.background > 0 {
            let b = (xIn - target).squared().mean().scaled(weights.background)
            terms?("background", b.item())
            total = total + b
        }
        return total
    }

    /// (x + 1)/2, ImageNet-normalised per channel.
    static func imageNet(_ x: Tensor) -> Tensor {
        let scale = Tensor(shape: [1, 3, 1, 1], values: imageNetStd.map { 0.5 / $0 })
        let shift = Tensor(shape: [1, 3, 1, 1], values: zip(imageNetMean, imageNetStd).map { (0.5 - $0) / $1 })
        return x * scale + shift
    }

    /// ArcFace embeddings of x in [−1, 1] (optionally masked after normalisation, as DiffFace
    /// does), nearest-resized to 112, one row per view.
    static func embedding(_ x: Tensor, mask: Tensor?, embed: (Tensor) throws -> Tensor, views: [DiffFaceView] = [DiffFaceView()]) throws -> Tensor {
        var a = imageNet(x)
        if let mask { a = a * mask }
        let small = NN.upsampleNearest(a, size: NN.Pair(112, 112))
        let batch = Tensor.concat(views.map { $0.apply(small) }, dim: 0)
        return try embed(batch)
    }

    /// Row-wise cosine of a [N, D] against b [1, D] → [N].
    static func cosine(_ a: Tensor, _ b: Tensor) -> Tensor {
        let dot = (a * b).sum(dims: [1])
        return dot / (a.norm(dims: [1]) * b.norm(dims: [1]))
    }

    /// BiSeNet's logits for x in [−1, 1] at 256: up to 512, normalised twice as DiffFace does
    /// (ImageNet, then SimSwap's (x − 0.5)/0.5), and the logits back down to 256 (bilinear, no
    /// antialiasing, as torchvision's tensor Resize of its time).
    static func parsing(_ x: Tensor, parse: (Tensor) throws -> Tensor) throws -> Tensor {
        let big = NN.upsampleBilinear(imageNet(x), size: NN.Pair(512, 512), alignCorners: false).scaled(2, plus: -1)
        let logits = try parse(big)
        return NN.upsampleBilinear(logits, size: NN.Pair(256, 256), alignCorners: false)
    }

    /// EyeNet's gaze for the eye box of x in [−1, 1]: the crop in 0…1, averaged over channels,
    /// bilinearly resized to 96×160.
    static func eyeGaze(_ x: Tensor, box b: [Int], gaze: (Tensor) throws -> Tensor) throws -> Tensor {
        let crop = x.scaled(0.5, plus: 0.5).slice(dim: 2, start: b[1], end: b[3]).slice(dim: 3, start: b[0], end: b[2])
        let grey = crop.mean(dims: [1], keepDims: true)
        let eye = NN.upsampleBilinear(grey, size: NN.Pair(96, 160), alignCorners: false).reshaped([x.shape[0], 96, 160])
        return try gaze(eye)
    }

    /// DiffFace's eye boxes from the target's 68 points (36/39 and 42/45) in 256² pixels: the
    /// corners' x padded by 5, 9 rows above and below their mean height, as its `get_eye_coords`
    /// rounds them; clamped to the image. Nil when a box would be empty.
    public static func eyeBoxes(ibug68 p: [(x: Double, y: Double)]) -> [[Int]]? {
        guard p.count == 68 else { return nil }
        var boxes: [[Int]] = []
        for (l, r) in [(36, 39), (42, 45)] {
            let ym = ((p[l].y + p[r].y) / 2).rounded(.down)
            let x0 = Int(p[l].x) - 5, x1 = Int(p[r].x) + 5
            let y0 = Int(ym - 9), y1 = Int(ym + 9)
            let b = [max(0, x0), max(0, y0), min(256, x1), min(256, y1)]
            guard b[2] - b[0] >= 2, b[3] - b[1] >= 2 else { return nil }
            boxes.append(b)
        }
        return boxes
    }
}

extension DiffFaceExperts {
    /// The experts among `files` (the model file is not an expert), loaded from DiffFace's
    /// checkpoints or any file of the same networks; `names` says what each one is, for reports.
    /// EyeNet runs with batch statistics, as DiffFace leaves its gaze network in training mode.
    public static func load(_ files: DiffFaceFiles) throws -> (experts: DiffFaceExperts, names: [String: String]) {
        var experts = DiffFaceExperts()
        var names: [String: String] = [:]
        if let path = files.arcface {
            let net = try ArcFaceNetwork(path: path)
            experts.identity = { try net($0) }
            names["identity"] = "\(net.description) (\(path))"
        }
        if let path = files.parser {
            let net = try BiSeNet(path: path)
            guard net.classes > DiffFaceLosses.faceClasses.max()! else {
                throw PipelineError("\(path): the face parser has \(net.classes) classes; DiffFace's mask needs its 19", category: .model)
            }
            experts.parser = { try net($0) }
            names["semantic"] = "BiSeNet, \(net.classes) classes (\(path))"
        }
        if let path = files.gaze {
            let net = try EyeNet(path: path)
            experts.gaze = { try net($0, statistics: .batch) }
            names["gaze"] = "EyeNet, \(net.nstack) stacks (\(path))"
        }
        return (experts, names)
    }
}
