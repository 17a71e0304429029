import Foundation
import GuiseFace
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseVision

/// Where `--gaze` asks the irises to look, as gaze features (see `Gaze`): per eye, the iris
/// centre's position along the eye in eye widths from the corners' midpoint.
public enum GazeTarget: Equatable, Sendable {
    /// Both irises on their eye's centre line.
    case camera
    /// Both irises at this horizontal offset (eye widths, positive towards the image's right).
    case horizontal(Double)

    /// "camera" or a number.
    public init(parsing text: String) throws {
        if text == "camera" { self = .camera; return }
        guard let v = Double(text), v.isFinite, abs(v) <= 0.5 else {
            throw EditError("--gaze takes camera or a horizontal offset in eye widths between -0.5 and 0.5, got '\(text)'")
        }
        self = .horizontal(v)
    }

    var horizontal: Double {
        switch self {
        case .camera: return 0
        case .horizontal(let v): return v
        }
    }
}

/// Expert guidance for re-rendering a region.
public enum EditGuides {
    /// The default weight of the gaze energy (features in eye widths, squared). With the embedded
    /// prior, weights much above this make the iris network's adversarial patterns rather than eyes.
    public static let defaultGazeWeight = 300.0

    /// Guidance that moves both irises to `target` horizontally and keeps their vertical place,
    /// measured by the iris network on x̂0, starting from the photo with its irises warped there
    /// (`gazeWarp`), and the photo rectangle the network's window must
    /// include so the face mesh sees the whole face (x0, y0, x1, y1, exclusive ends).
    public static func gaze(_ target: GazeTarget, image: Image, landmarks lm: FaceLandmarks, analyzer: FaceAnalyzer,
                            weight: Double = defaultGazeWeight) throws -> (guidance: EditGuidance, context: [Int]) {
        let now = try analyzer.gazeFeatures(ImageTensor.tensor(image), at: lm).values
        let vertical = [now[1], now[3]]
        let goal = Float(target.horizontal)
        let w = Float(weight)
        let guidance = EditGuidance(name: "gaze", start: { try gazeWarp($0, landmarks: lm, target: target, analyzer: analyzer) }) { x0, origin in
            var shifted = lm
            shifted.roi.centre = Point(lm.roi.centre.x - Double(origin.x), lm.roi.centre.y - Double(origin.y))
            shifted.mesh = lm.mesh.map { Point3($0.x - Double(origin.x), $0.y - Double(origin.y), $0.z) }
            let unit = x0.scaled(0.5, plus: 0.5)
            let f = try analyzer.gazeFeatures(unit, at: shifted)
            return try gazeLoss(f, horizontal: goal, vertical: vertical).scaled(w)
        }
        return (guidance, meshContext(lm))
    }

    /// The photo rectangle (x0, y0, x1, y1, exclusive ends) a guidance window must hold for the
    /// face mesh to see the face: the mesh crops the rotated face box, so its bounding box.
    static func meshContext(_ lm: FaceLandmarks) -> [Int] {
        let r = lm.roi
        let c = cos(r.rotation), s = sin(r.rotation)
        let hx = abs(c) * r.width / 2 + abs(s) * r.height / 2, hy = abs(s) * r.width / 2 + abs(c) * r.height / 2
        return [Int((r.centre.x - hx).rounded(.down)), Int((r.centre.y - hy).rounded(.down)),
                Int((r.centre.x + hx).rounded(.up)) + 1, Int((r.centre.y + hy).rounded(.up)) + 1]
    }

    /// The photo with each iris moved along its eye to `target`'s horizontal place, by a warp
    /// inside the eye openings alone: along the corner-to-corner axis, a displacement that is the
    /// whole shift over the iris (so it keeps its round shape) and falls linearly to nothing at
    /// the two corners, so the white on one side is stretched and on the other squeezed. Pixels
    /// outside the openings are returned exactly. The guided re-rendering then starts with the
    /// eyes already looking the new way, as the swap starts from its warp: the prior draws no
    /// eyes of its own.
    public static func gazeWarp(_ image: Image, landmarks lm: FaceLandmarks, target: GazeTarget) throws -> Image {
        try gazeWarp(image, landmarks: lm, shifts: try lm.gazePerEye().map { target.horizontal - $0.x })
    }

    /// `gazeWarp` to `target`, corrected by what the iris network then reads: the network reads a
    /// warped iris a little short of where it was put, so the shift is raised by the shortfall
    /// (twice) and the photo warped once with the total, from the original pixels.
    public static func gazeWarp(_ image: Image, landmarks lm: FaceLandmarks, target: GazeTarget, analyzer: FaceAnalyzer) throws -> Image {
        var shifts = try lm.gazePerEye().map { target.horizontal - $0.x }
        var out = try gazeWarp(image, landmarks: lm, shifts: shifts)
        for _ in 0..<2 {
            var seen = lm
            (seen.leftEye, seen.rightEye) = try analyzer.eyes(out, mesh: lm.mesh)
            let now = try seen.gazePerEye()
            guard now.contains(where: { abs(target.horizontal - $0.x) > 0.01 }) else { break }
            for k in shifts.indices { shifts[k] += target.horizontal - now[k].x }
            out = try gazeWarp(image, landmarks: lm, shifts: shifts)
        }
        return out
    }

    /// `gazeWarp` by a shift per eye (image-left, image-right) in eye widths along the eye.
    public static func gazeWarp(_ image: Image, landmarks lm: FaceLandmarks, shifts: [Double]) throws -> Image {
        let w = image.width, h = image.height, n = w * h
        var out = image
        let eyes = [(MeshRegions.imageLeftEye, lm.leftEye, Gaze.meshEyes[0]), (MeshRegions.imageRightEye, lm.rightEye, Gaze.meshEyes[1])]
        for (k, (outline, eye, idx)) in eyes.enumerated() {
            let l = lm.mesh[idx.cornerLeft].xy, r = lm.mesh[idx.cornerRight].xy
            let ax = r.x - l.x, ay = r.y - l.y
            let width = (ax * ax + ay * ay).squareRoot()
            guard width > 2 else { continue }
            let ux = ax / width, uy = ay / width
            let c = eye.irisCentre
            let along = (c.x - l.x) * ux + (c.y - l.y) * uy
            var rimSum = 0.0
            for q in eye.iris.dropFirst() {
                let dx: Double = q.x - c.x, dy: Double = q.y - c.y
                rimSum += (dx * dx + dy * dy).squareRoot()
            }
            let radius = eye.iris.count > 1 ? rimSum / Double(eye.iris.count - 1) : 0.2 * width
            // The plateau the iris sits on, and where the ramps to the corners start.
            let p0 = max(1, along - radius), p1 = min(width - 1, along + radius)
            guard p1 > p0 else { continue }
            var shift = shifts[k] * width
            // The side the iris moves towards is squeezed: keep it to at least a quarter of its width,
            // so the map stays one-to-one.
            let room = shift > 0 ? width - p1 : p0
            shift = min(max(shift, -0.75 * room), 0.75 * room)
            guard abs(shift) > 1e-3 else { continue }
            func weight(_ u: Double) -> Double {
                if u <= 0 || u >= width { return 0 }
                if u < p0 { return u / p0 }
                if u > p1 { return (width - u) / (width - p1) }
                return 1
            }
            let region = try FaceMasks.polygons([outline.map { lm.mesh[$0].xy }], width: w, height: h)
            for y in 0..<h {
                for x in 0..<w where region.values[y * w + x] > 0 {
                    let u = (Double(x) - l.x) * ux + (Double(y) - l.y) * uy
                    // The source place v with v + shift·weight(v) = u: that map increases, so bisect
                    // between u − |shift| and u + |shift|.
                    var lo = u - abs(shift), hi = u + abs(shift)
                    for _ in 0..<40 {
                        let mid = (lo + hi) / 2
                        if mid + shift * weight(mid) < u { lo = mid } else { hi = mid }
                    }
                    let v = (lo + hi) / 2
                    let sx = Double(x) + (v - u) * ux, sy = Double(y) + (v - u) * uy
                    let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                    let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
                    func at(_ xx: Int, _ yy: Int) -> Int { min(max(yy, 0), h - 1) * w + min(max(xx, 0), w - 1) }
                    let i00 = at(x0, y0), i10 = at(x0 + 1, y0), i01 = at(x0, y0 + 1), i11 = at(x0 + 1, y0 + 1)
                    for ch in 0..<3 {
                        let o = ch * n
                        let top: Float = image.rgb[o + i00] * (1 - fx) + image.rgb[o + i10] * fx
                        let bottom: Float = image.rgb[o + i01] * (1 - fx) + image.rgb[o + i11] * fx
                        out.rgb[o + y * w + x] = top * (1 - fy) + bottom * fy
                    }
                }
            }
        }
        return out
    }

    /// `gaze` for face `faceIndex` of `image` (largest first), with the models from `models`, or else `store`.
    public static func gazeForFace(_ target: GazeTarget, image: Image, faceIndex: Int = 0, label: String = "the photo",
                                   weight: Double = defaultGazeWeight, store: ModelStore? = nil, models: ModelCache? = nil,
                                   note: (String) -> Void = { _ in }) throws -> (guidance: EditGuidance, context: [Int]) {
        let models = models ?? ModelCache(store: store)
        let (d, _) = try models.detector(.blazeface, note: note)
        let face = try FaceSelection.pick(try d.detect(image, order: .largest), index: faceIndex, label: label)
        let analyzer = try models.faceAnalyzer()
        let lm = try FaceSelection.landmarks(image, face: face, analyzer: analyzer)
        return try gaze(target, image: image, landmarks: lm, analyzer: analyzer, weight: weight)
    }

    /// Σ over both eyes of (horizontal − goal)² + (vertical − its value before the edit)².
    public static func gazeLoss(_ features: Tensor, horizontal goal: Float, vertical: [Float]) throws -> Tensor {
        let target = Tensor(shape: [2, 2], values: [goal, vertical[0], goal, vertical[1]])
        let d = features - target
        return (d * d).sum()
    }
}
