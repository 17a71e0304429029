import Foundation
import GuiseFace
import GuiseFormats
import GuiseImage

/// The face detectors a user can choose between.
public enum DetectorChoice: String, CaseIterable, Sendable {
    /// Short-range BlazeFace, then full-range when it finds nothing.
    case blazeface
    case blazefaceFull = "blazeface-full"
    /// BlazeFace on the whole photo and on overlapping tiles: group photos with small faces.
    case blazefaceTiled = "blazeface-tiled"
    case haar
    case haarAlt2 = "haar-alt2"

    /// The detector and the name it goes by in reports. BlazeFace falls back to the Haar
    /// cascade when its network files are absent; `note` is told once per call. Files that are
    /// present but damaged (wrong size or sha256, a graph that fails to load) are an error, never
    /// a fallback.
    public func make(store: ModelStore? = nil, note: (String) -> Void = { _ in }) throws -> (detector: FaceDetector, name: String) {
        switch self {
        case .haar: return (try HaarFaceDetector(cascade: .frontalDefault), rawValue)
        case .haarAlt2: return (try HaarFaceDetector(cascade: .frontalAlt2), rawValue)
        case .blazeface, .blazefaceFull, .blazefaceTiled:
            let ranges: [BlazeFaceDetector.Range] = self == .blazefaceFull ? [.full] : [.short, .full]
            if let store = try? store ?? ModelStore.locate(), BlazeFaceDetector.isInstalled(ranges: ranges, store: store) {
                let d = try BlazeFaceDetector(ranges: ranges, store: store)
                return (self == .blazefaceTiled ? TiledBlazeFaceDetector(d) : d, rawValue)
            }
            note("\(ranges.map(\.fileName).joined(separator: ", ")) not installed (run `make models`); using the Haar detector")
            return (try HaarFaceDetector(cascade: .frontalDefault), DetectorChoice.haar.rawValue)
        }
    }
}

/// Picking faces the way every command counts them: detector order (largest first by
/// default), indices from 0.
public enum FaceSelection {
    /// Face `index` of `image`; `label` names the photo in errors. No face, or too few, is an error.
    public static func pick(_ faces: [Face], index: Int, label: String) throws -> Face {
        guard !faces.isEmpty else { throw FaceError("no face found in \(label)", category: .notFound) }
        guard index >= 0, index < faces.count else {
            throw FaceError("face \(index) is out of range: \(label) has \(faces.count) face\(faces.count == 1 ? "" : "s") (0...\(faces.count - 1))", category: .input)
        }
        return faces[index]
    }

    /// The mesh needs eye keypoints: a Haar box without them cannot seed it.
    public static func landmarks(_ image: Image, face: Face, analyzer: FaceAnalyzer) throws -> FaceLandmarks {
        guard face.keypoints[KeypointName.leftEye] != nil, face.keypoints[KeypointName.rightEye] != nil else {
            throw FaceError("the face mesh needs a detector that finds the eyes (--detector blazeface)", category: .unsupported)
        }
        return try analyzer.landmarks(image, face: face)
    }
}
