import GuiseFiles
import GuiseImage
import GuiseVision

/// Keypoint names. Sides are the image's, not the person's: `leftEye` is the eye with the
/// smaller x on an upright frontal face (the person's right eye). A detector reports the
/// names it knows; 5-point models give the first five, BlazeFace eyes, nose, mouth centre, ears.
public enum KeypointName {
    public static let leftEye = "leftEye"
    public static let rightEye = "rightEye"
    public static let nose = "nose"
    public static let mouthLeft = "mouthLeft"
    public static let mouthRight = "mouthRight"
    public static let mouthCentre = "mouthCentre"
    public static let leftEar = "leftEar"
    public static let rightEar = "rightEar"
}

public struct Face: Equatable, Sendable {
    public var box: Box
    /// Detector-specific confidence; higher is more confident. See each detector for its scale.
    public var score: Double
    /// Named keypoints in image pixels; empty when the detector gives none.
    public var keypoints: [String: Point]

    public init(box: Box, score: Double, keypoints: [String: Point] = [:]) {
        self.box = box
        self.score = score
        self.keypoints = keypoints
    }
}

/// The order faces are listed in; `--face N` and every pipeline index into it.
public enum FaceOrder: String, CaseIterable, Sendable {
    /// Largest box area first (the default): the main subject of a photo is face 0.
    case largest
    /// Highest score first.
    case score
    /// Left to right by box centre.
    case leftToRight = "left-to-right"

    /// Sorts stably; ties fall back to the box position, so the order is deterministic.
    public func sorted(_ faces: [Face]) -> [Face] {
        faces.sorted { a, b in
            switch self {
            case .largest where a.box.area != b.box.area: return a.box.area > b.box.area
            case .score where a.score != b.score: return a.score > b.score
            default:
                return a.box.centre.x != b.box.centre.x ? a.box.centre.x < b.box.centre.x : a.box.centre.y < b.box.centre.y
            }
        }
    }
}

/// A face detector: BlazeFace and others plug in here. Implementations return faces
/// sorted largest first (`FaceOrder.largest`).
public protocol FaceDetector {
    func detect(_ image: Image) throws -> [Face]
}

extension FaceDetector {
    public func detect(_ image: Image, order: FaceOrder) throws -> [Face] {
        order.sorted(try detect(image))
    }
}

/// A face-analysis failure with a one-line, user-facing message.
public struct FaceError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .internal) {
        self.message = message
        self.category = category
    }
}
