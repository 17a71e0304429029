import CVBridge
import Foundation
import GuiseImage

/// OpenCV's Viola–Jones Haar cascades from Debian's opencv-data: the fallback detector.
/// It gives boxes only (no keypoints). The score is the number of raw detections merged into
/// the face (detectMultiScale2's numDetections): an integer ≥ minNeighbours, higher is surer,
/// not a probability. (detectMultiScale3's level weights need outputRejectLevels, which also
/// returns windows rejected by the last stages and so changes what is detected.)
public final class HaarFaceDetector: FaceDetector {
    public enum Cascade: String, CaseIterable, Sendable {
        case frontalDefault = "haarcascade_frontalface_default.xml"
        case frontalAlt2 = "haarcascade_frontalface_alt2.xml"
    }

    /// Where opencv-data installs the cascades on Debian/Ubuntu, then other common prefixes.
    public static let searchPaths = [
        "/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades",
        "/usr/local/share/opencv4/haarcascades", "/usr/local/share/opencv/haarcascades",
    ]

    public var scaleFactor = 1.1
    public var minNeighbours = 5
    /// The smallest face searched for, as a fraction of the image's shorter side (at least 24 px).
    public var minSizeFraction = 0.05

    private let cascade: OpaquePointer

    public init(cascade: Cascade = .frontalDefault) throws {
        let fm = FileManager.default
        guard let path = Self.searchPaths.map({ "\($0)/\(cascade.rawValue)" }).first(where: fm.fileExists) else {
            throw FaceError("Haar cascade \(cascade.rawValue) not found; install opencv-data (make deps)")
        }
        var handle: OpaquePointer?
        guard cvb_cascade_load(path, &handle) == 0, let handle else {
            throw FaceError(String(cString: cvb_last_error()))
        }
        self.cascade = handle
    }

    deinit { cvb_cascade_free(cascade) }

    public func detect(_ image: Image) throws -> [Face] {
        let grey = image.interleaved8(channels: 1)
        let minSize = max(24, Int(Double(min(image.width, image.height)) * minSizeFraction))
        var buffer: OpaquePointer?
        guard cvb_cascade_detect(cascade, grey, Int32(image.width), Int32(image.height), scaleFactor,
                                 Int32(minNeighbours), Int32(minSize), &buffer) == 0 else {
            throw FaceError(String(cString: cvb_last_error()))
        }
        defer { cvb_buffer_free(buffer) }
        let count = cvb_buffer_size(buffer) / (5 * MemoryLayout<Int32>.size)
        guard count > 0, let data = cvb_buffer_data(buffer) else { return [] }
        let v = UnsafeBufferPointer(start: data.assumingMemoryBound(to: Int32.self), count: 5 * count)
        let faces = (0..<count).map { i in
            Face(box: Box(x: Double(v[5 * i]), y: Double(v[5 * i + 1]), width: Double(v[5 * i + 2]), height: Double(v[5 * i + 3])),
                 score: Double(v[5 * i + 4]))
        }
        return FaceOrder.largest.sorted(faces)
    }
}
