import GuiseFormats
import GuiseImage
import GuiseVision
import GuiseNetworks
import GuiseTensor

/// BlazeFace on the tensor engine: letterbox, network, decoding and weighted NMS.
///
/// The short-range model (128²) is trained on faces filling much of the frame (selfies); the
/// full-range one (192²) on faces down to a few percent of it. `ranges` lists the models to try
/// in turn: the first that finds any face wins. The default, short-range then full-range, keeps
/// short-range's precision on portraits and still finds small faces in wider shots.
public final class BlazeFaceDetector: FaceDetector {
    public enum Range: String, CaseIterable, Sendable {
        case short = "short-range"
        case full = "full-range"

        public var fileName: String {
            switch self {
            case .short: return "face_detection_short_range.tflite"
            case .full: return "face_detection_full_range_sparse.tflite"
            }
        }

        public var model: BlazeFaceModel {
            switch self {
            case .short: return .shortRange
            case .full: return .fullRange
            }
        }
    }

    struct Stage {
        let range: Range
        let network: TFLiteNetwork
        let model: BlazeFaceModel
    }

    let stages: [Stage]

    /// `networks` pairs each range with its loaded `.tflite` file.
    public init(networks: [(Range, TFLiteNetwork)]) throws {
        guard !networks.isEmpty else { throw FaceError("BlazeFace needs at least one network") }
        stages = try networks.map { range, net in
            let n = range.model.inputSize
            guard net.inputShapes.count == 1, net.inputShapes[0] == [1, n, n, 3], net.outputShapes.count == 2 else {
                throw FaceError("\(net.path): not a BlazeFace \(range.rawValue) model (inputs \(net.inputShapes), outputs \(net.outputShapes))", category: .model)
            }
            return Stage(range: range, network: net, model: range.model)
        }
    }

    /// The networks for `ranges` from the model store (`ModelStore.locate()` when nil).
    public convenience init(ranges: [Range] = [.short, .full], store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(networks: ranges.map { range in
            let path = try store.installedPath(range.fileName)
            do {
                return (range, try TFLiteNetwork(path: path))
            } catch let e as FormatError {
                throw FormatError("\(e.message) (the file is damaged; run `make models` to fetch it again)", category: e.category)
            }
        })
    }

    /// Whether every file `ranges` needs is present. A present file of the wrong size or
    /// content still counts: loading it fails with an error that says so, rather than the
    /// detector quietly standing in for a damaged install.
    public static func isInstalled(ranges: [Range] = [.short, .full], store: ModelStore) -> Bool {
        ranges.allSatisfy { range in
            guard let entry = store.manifest.files.first(where: { $0.name == range.fileName }) else { return false }
            return store.status(of: entry) != .missing
        }
    }

    /// The first stage's faces that finds any, on the photo and on the photo turned upside down.
    /// BlazeFace learnt upright faces: on an upside-down one it scores lower (0.56–0.66 on the
    /// sample portraits turned over, against 0.77–0.94 upright) and still places its keypoints
    /// as on an upright face, eyes above the mouth, so the mesh fitted from them is nonsense (an
    /// upside-down source gave a face with its mouth on the forehead). Turned over, such a face
    /// is upright; its detection, turned back, replaces the upright pass's where it scores more
    /// than 0.1 higher, or is added where that pass found nothing and it scores at least 0.75
    /// (as `TiledBlazeFaceDetector` requires of faces found only in its extra passes). Upright
    /// faces turned over scored at least 0.22 below themselves, so on upright photos the
    /// second pass changes nothing.
    public func detect(_ image: Image) throws -> [Face] {
        let upright = try firstFound(image)
        let turned = try firstFound(image.turnedOver()).map { $0.turnedOver(width: image.width, height: image.height) }
        return Self.merged(upright: upright, turned: turned)
    }

    static func merged(upright: [Face], turned: [Face]) -> [Face] {
        var out = upright
        var changed = false
        for t in turned.sorted(by: { $0.score > $1.score }) {
            if let k = out.firstIndex(where: { TiledBlazeFaceDetector.iou($0.box, t.box) > 0.3 }) {
                if t.score > out[k].score + 0.1 { out[k] = t; changed = true }
            } else if t.score >= TiledBlazeFaceDetector.minTileScore {
                out.append(t); changed = true
            }
        }
        return changed ? FaceOrder.largest.sorted(out) : upright
    }

    func firstFound(_ image: Image) throws -> [Face] {
        for stage in stages {
            let faces = try detect(image, stage)
            if !faces.isEmpty { return faces }
        }
        return []
    }

    func detect(_ image: Image, _ stage: Stage) throws -> [Face] {
        let letterbox = Letterbox(imageWidth: image.width, imageHeight: image.height, size: stage.model.inputSize)
        let input = try letterbox.input(image)
        let outputs = try Autograd.noGrad { try stage.network([input]) }
        // Outputs are told apart by their last axis: 16 box/keypoint coordinates or 1 logit per anchor.
        guard let regressors = outputs.first(where: { $0.shape.last == 16 }),
              let scores = outputs.first(where: { $0.shape.last == 1 }) else {
            throw FaceError("\(stage.network.path): outputs \(outputs.map(\.shape)) are not BlazeFace's [1, N, 16] and [1, N, 1]", category: .model)
        }
        return try stage.model.faces(regressors: regressors.values, classificators: scores.values, letterbox: letterbox)
    }
}

/// BlazeFace on overlapping tiles as well as the whole photo, for group photos: the whole photo
/// squeezed into the network's square leaves faces a few pixels wide, which neither model finds.
/// Each tile is a square of about half the photo's short side (at least twice the network's
/// input), overlapping its neighbours by a third, so every face up to a third of a tile lies
/// wholly inside one. A face cut by a tile's inner edge is dropped there (another tile holds it
/// whole); faces found more than once are merged, the best-scored kept. Faces found only in
/// tiles must score at least `minTileScore`.
public final class TiledBlazeFaceDetector: FaceDetector {
    public let detector: BlazeFaceDetector
    /// Tiles see many more candidate patches than one pass does; below this score their finds
    /// were mostly hands, cards and patterns on the sample photos (real faces scored 0.8–1.0).
    public static let minTileScore = 0.75

    public init(_ detector: BlazeFaceDetector) { self.detector = detector }

    public func detect(_ image: Image) throws -> [Face] {
        var found: [(face: Face, tile: Bool)] = try detector.detect(image).map { ($0, false) }
        let side = max(Int(Double(min(image.width, image.height)) / 2), 2 * 192)
        if side < max(image.width, image.height) {
            let step = max(1, side * 2 / 3)
            func starts(_ size: Int) -> [Int] {
                guard size > side else { return [0] }
                var s = Array(stride(from: 0, to: size - side, by: step))
                s.append(size - side)
                return s
            }
            for y0 in starts(image.height) {
                for x0 in starts(image.width) {
                    let w = min(side, image.width - x0), h = min(side, image.height - y0)
                    // Colour only, as the whole-photo pass sees it.
                    let tile = Image(width: w, height: h, rgb: try image.cropped(x: x0, y: y0, width: w, height: h).rgb)
                    for stage in detector.stages {
                        for f in try detector.detect(tile, stage) where f.score >= TiledBlazeFaceDetector.minTileScore {
                            // Cut by an inner edge of the tile: another tile holds this face whole.
                            let b = f.box, edge = 2.0
                            if (b.x <= edge && x0 > 0) || (b.y <= edge && y0 > 0)
                                || (b.x + b.width >= Double(w) - edge && x0 + w < image.width)
                                || (b.y + b.height >= Double(h) - edge && y0 + h < image.height) { continue }
                            var moved = f
                            moved.box.x += Double(x0)
                            moved.box.y += Double(y0)
                            moved.keypoints = f.keypoints.mapValues { Point($0.x + Double(x0), $0.y + Double(y0)) }
                            found.append((moved, true))
                        }
                    }
                }
            }
        }
        // Merge: the whole photo's faces first (as the plain detector reports them), then the
        // tiles' by score; a face overlapping a kept one by IoU 0.3 is the same face.
        let ordered = found.filter { !$0.tile } + found.filter(\.tile).sorted { $0.face.score > $1.face.score }
        var kept: [Face] = []
        for (f, _) in ordered where !kept.contains(where: { TiledBlazeFaceDetector.iou($0.box, f.box) > 0.3 }) {
            kept.append(f)
        }
        return FaceOrder.largest.sorted(kept)
    }

    static func iou(_ a: Box, _ b: Box) -> Double {
        let x0 = max(a.x, b.x), y0 = max(a.y, b.y), x1 = min(a.x + a.width, b.x + b.width), y1 = min(a.y + a.height, b.y + b.height)
        let inter = max(0, x1 - x0) * max(0, y1 - y0)
        let union = a.area + b.area - inter
        return union > 0 ? inter / union : 0
    }
}

extension Image {
    /// The colour planes turned by 180° (alpha dropped: the detector reads colour only).
    func turnedOver() -> Image {
        let n = pixelCount
        var out = [Float](repeating: 0, count: 3 * n)
        for c in 0..<3 { for i in 0..<n { out[c * n + i] = rgb[c * n + n - 1 - i] } }
        return Image(width: width, height: height, rgb: out)
    }
}

extension Face {
    /// The face as found in a photo turned by 180°, in the upright photo's coordinates (pixel
    /// centres at half-integers, so x becomes width − x). Keypoint names stay: they name the
    /// face's own parts as the detector saw them upright.
    func turnedOver(width: Int, height: Int) -> Face {
        let w = Double(width), h = Double(height)
        var f = self
        f.box = Box(x: w - box.x - box.width, y: h - box.y - box.height, width: box.width, height: box.height)
        f.keypoints = keypoints.mapValues { Point(w - $0.x, h - $0.y) }
        return f
    }
}
