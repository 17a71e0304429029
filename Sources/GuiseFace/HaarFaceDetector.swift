import CVBridge
import Foundation
import GuiseImage
import GuiseVision

/// OpenCV's Viola–Jones Haar cascades from Debian's opencv-data: the fallback detector.
/// The score is the number of raw detections merged into the face (detectMultiScale2's
/// numDetections): an integer ≥ minNeighbours, higher is surer, not a probability.
/// (detectMultiScale3's level weights need outputRejectLevels, which also returns windows
/// rejected by the last stages and so changes what is detected.)
/// OpenCV groups raw windows of similar size only, so a false detection can enclose a real
/// face; of two boxes where one holds more than half of the other, only the higher score stays.
/// With `findEyes`, an eye cascade searched in the upper face adds `leftEye`/`rightEye`
/// keypoints when it finds one plausible eye on each side; alignment then uses them.
/// Not for concurrent use: OpenCV's cascade keeps per-call state.
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

    private let faces: CascadeClassifier
    private let eyes: CascadeClassifier?

    public init(cascade: Cascade = .frontalDefault, findEyes: Bool = true) throws {
        faces = try CascadeClassifier(file: cascade.rawValue)
        eyes = findEyes ? try CascadeClassifier(file: "haarcascade_eye.xml") : nil
    }

    public func detect(_ image: Image) throws -> [Face] {
        let grey = image.interleaved8(channels: 1)
        let minSize = max(24, Int(Double(min(image.width, image.height)) * minSizeFraction))
        var found = try faces.detect(grey, width: image.width, height: image.height, scaleFactor: scaleFactor,
                                     minNeighbours: minNeighbours, minSize: minSize)
            .map { Face(box: $0.box, score: Double($0.count)) }
        found = Self.suppressNested(found)
        if let eyes {
            for i in found.indices { found[i].keypoints = try findEyes(in: image, face: found[i].box, with: eyes) }
        }
        return FaceOrder.largest.sorted(found)
    }

    static func suppressNested(_ faces: [Face]) -> [Face] {
        func overlap(_ a: Box, _ b: Box) -> Double {
            let w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
            let h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
            return w > 0 && h > 0 ? w * h : 0
        }
        var kept: [Face] = []
        for face in FaceOrder.score.sorted(faces) {
            let nested = kept.contains { overlap($0.box, face.box) > 0.5 * min($0.box.area, face.box.area) }
            if !nested { kept.append(face) }
        }
        return kept
    }

    /// Searches the band from 15 % to 60 % of the face's height, scaled to 160 px wide (eye
    /// cascades need eyes of 20 px or more). Accepts one eye per half, level within a quarter
    /// of the face width and 25–65 % of the width apart; otherwise gives no keypoints.
    private func findEyes(in image: Image, face b: Box, with eyes: CascadeClassifier) throws -> [String: Point] {
        let x0 = max(0, Int(b.x)), x1 = min(image.width, Int(b.x + b.width))
        let y0 = max(0, Int(b.y + 0.15 * b.height)), y1 = min(image.height, Int(b.y + 0.6 * b.height))
        guard x1 - x0 >= 8, y1 - y0 >= 4 else { return [:] }
        let w = x1 - x0, h = y1 - y0
        let luma = image.grey()
        var band = [Float](repeating: 0, count: w * h)
        for y in 0..<h { for x in 0..<w { band[y * w + x] = luma[(y0 + y) * image.width + x0 + x] } }
        let scale = 160 / Double(w)
        let (sw, sh) = (160, max(1, Int((Double(h) * scale).rounded())))
        let scaled = try Image(grey: band, width: w, height: h).resized(width: sw, height: sh, interpolation: scale > 1 ? .cubic : .area)
        let hits = try eyes.detect(scaled.interleaved8(channels: 1), width: sw, height: sh, scaleFactor: 1.1,
                                   minNeighbours: 3, minSize: 20)
        func centre(_ box: Box) -> Point {
            Point(Double(x0) + box.centre.x / scale, Double(y0) + box.centre.y / scale)
        }
        let mid = b.x + b.width / 2
        let candidates = hits.map { (centre($0.box), $0.box.area) }
        guard let left = candidates.filter({ $0.0.x < mid }).max(by: { $0.1 < $1.1 })?.0,
              let right = candidates.filter({ $0.0.x >= mid }).max(by: { $0.1 < $1.1 })?.0 else { return [:] }
        let gap = right.x - left.x
        guard abs(right.y - left.y) < 0.25 * b.width, gap > 0.25 * b.width, gap < 0.65 * b.width else { return [:] }
        return [KeypointName.leftEye: left, KeypointName.rightEye: right]
    }
}

/// One loaded cascade file.
final class CascadeClassifier {
    private let handle: OpaquePointer

    init(file: String) throws {
        let fm = FileManager.default
        guard let path = HaarFaceDetector.searchPaths.map({ "\($0)/\(file)" }).first(where: fm.fileExists) else {
            throw FaceError("Haar cascade \(file) not found; install opencv-data (make deps)", category: .model)
        }
        var handle: OpaquePointer?
        guard cvb_cascade_load(path, &handle) == 0, let handle else {
            throw FaceError(String(cString: cvb_last_error()))
        }
        self.handle = handle
    }

    deinit { cvb_cascade_free(handle) }

    /// Boxes with their merged-detection counts, on an 8-bit grey image.
    func detect(_ grey: [UInt8], width: Int, height: Int, scaleFactor: Double, minNeighbours: Int,
                minSize: Int) throws -> [(box: Box, count: Int)] {
        precondition(grey.count == width * height)
        var buffer: OpaquePointer?
        guard cvb_cascade_detect(handle, grey, Int32(width), Int32(height), scaleFactor,
                                 Int32(minNeighbours), Int32(minSize), &buffer) == 0 else {
            throw FaceError(String(cString: cvb_last_error()))
        }
        defer { cvb_buffer_free(buffer) }
        let count = cvb_buffer_size(buffer) / (5 * MemoryLayout<Int32>.size)
        guard count > 0, let data = cvb_buffer_data(buffer) else { return [] }
        let v = UnsafeBufferPointer(start: data.assumingMemoryBound(to: Int32.self), count: 5 * count)
        return (0..<count).map { i in
            (Box(x: Double(v[5 * i]), y: Double(v[5 * i + 1]), width: Double(v[5 * i + 2]), height: Double(v[5 * i + 3])),
             Int(v[5 * i + 4]))
        }
    }
}
