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
    /// measured by the iris network on x̂0, and the photo rectangle the network's window must
    /// include so the face mesh sees the whole face (x0, y0, x1, y1, exclusive ends).
    public static func gaze(_ target: GazeTarget, image: Image, landmarks lm: FaceLandmarks, analyzer: FaceAnalyzer,
                            weight: Double = defaultGazeWeight) throws -> (guidance: EditGuidance, context: [Int]) {
        let now = try analyzer.gazeFeatures(ImageTensor.tensor(image), at: lm).values
        let vertical = [now[1], now[3]]
        let goal = Float(target.horizontal)
        let w = Float(weight)
        let guidance = EditGuidance(name: "gaze") { x0, origin in
            var shifted = lm
            shifted.roi.centre = Point(lm.roi.centre.x - Double(origin.x), lm.roi.centre.y - Double(origin.y))
            shifted.mesh = lm.mesh.map { Point3($0.x - Double(origin.x), $0.y - Double(origin.y), $0.z) }
            let unit = x0.scaled(0.5, plus: 0.5)
            let f = try analyzer.gazeFeatures(unit, at: shifted)
            return try gazeLoss(f, horizontal: goal, vertical: vertical).scaled(w)
        }
        // The face mesh crops the rotated face box: the window must hold its bounding box.
        let r = lm.roi
        let c = cos(r.rotation), s = sin(r.rotation)
        let hx = abs(c) * r.width / 2 + abs(s) * r.height / 2, hy = abs(s) * r.width / 2 + abs(c) * r.height / 2
        let context = [Int((r.centre.x - hx).rounded(.down)), Int((r.centre.y - hy).rounded(.down)),
                       Int((r.centre.x + hx).rounded(.up)) + 1, Int((r.centre.y + hy).rounded(.up)) + 1]
        return (guidance, context)
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
