import ArgumentParser
import Foundation
import GuiseBody
import GuiseVision
import GuiseImage

struct PoseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pose",
        abstract: "Body pose: 33 landmarks (plus 6 auxiliary) and a person mask for the most prominent person.",
        discussion: """
        MediaPipe's pose pipeline (pose_detection + pose_landmark_full) as mp.solutions.pose runs \
        it on a still image. Landmarks are in image pixels; z is depth in the same scale (smaller \
        is nearer). Names are MediaPipe's: left and right are the person's own, so on a photo of \
        someone facing the camera left_shoulder is on the image's right. Finding no person is an \
        error, and then nothing is written.
        """
    )

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Flag(help: "Print a JSON report with every landmark.")
    var json = false

    @Option(name: .customLong("annotate"), help: "Also write a copy with the skeleton drawn on it.")
    var annotatePath: String?

    @Option(name: .customLong("mask"), help: "Also write the person mask (greyscale, 0-1).")
    var maskPath: String?

    func validate() throws {
        if let annotatePath, let maskPath, URL(fileURLWithPath: annotatePath).standardized == URL(fileURLWithPath: maskPath).standardized {
            throw ValidationError("--annotate and --mask name the same file")
        }
    }

    func run() throws {
        for path in [annotatePath, maskPath].compactMap({ $0 }) { try OutputOptions.check(path, kind: .image, inputs: [image]) }
        let picture = try ImageIO.read(image)
        let estimator = try PoseEstimator()
        guard let first = try estimator.detect(picture).first else { throw BodyError("no person found in \(image)", category: .notFound) }
        guard let pose = try estimator.landmarks(picture, detection: first, segmentation: maskPath != nil) else {
            throw BodyError("no person found in \(image) (the landmark model rejected the detection)", category: .notFound)
        }
        // Everything is computed before the first file is written.
        let annotated = annotatePath == nil ? nil : Self.annotated(picture, pose)
        let maskImage = pose.mask.map { m in Image(grey: m.values.map { min(max($0, 0), 1) }, width: m.width, height: m.height) }
        if let annotatePath, let annotated { try ImageIO.write(annotated, to: annotatePath) }
        if let maskPath, let maskImage { try ImageIO.write(maskImage, to: maskPath) }

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let report = PoseReport(image: image, width: picture.width, height: picture.height, pose: pose)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let d = pose.detection
            print("person: detection score \(String(format: "%.3f", d.score)), pose presence \(String(format: "%.3f", pose.presence))")
            for l in pose.landmarks {
                print("  \(l.name) (\(fmt(l.x)), \(fmt(l.y))) z \(fmt(l.z)) visibility \(String(format: "%.2f", l.visibility))")
            }
            if let m = pose.mask, let maskPath {
                let covered = m.values.reduce(0) { $0 + Double(min(max($1, 0), 1)) } / Double(m.values.count)
                print("\(maskPath): person mask \(m.width)x\(m.height), \(String(format: "%.1f", covered * 100))% covered")
            }
        }
    }

    /// The skeleton: bones in green where both ends are likely visible (visibility ≥ 0.5),
    /// grey otherwise; the person's left side's points in orange, right side's in cyan, the
    /// midline (nose, mouth) in white.
    static func annotated(_ picture: Image, _ pose: Pose) -> Image {
        var out = picture
        let scale = max(picture.width, picture.height)
        let r = max(1.5, Double(scale) / 250)
        let lm = pose.landmarks
        for (a, b) in PoseLandmarks.connections {
            let seen = lm[a].visibility >= 0.5 && lm[b].visibility >= 0.5
            let colour: (Float, Float, Float) = seen ? (0, 1, 0) : (0.6, 0.6, 0.6)
            let dx = lm[b].x - lm[a].x, dy = lm[b].y - lm[a].y
            let steps = max(1, Int(((dx * dx + dy * dy).squareRoot() / (r * 0.5)).rounded(.up)))
            for k in 0...steps {
                let t = Double(k) / Double(steps)
                out.fillDisc(centre: Point(lm[a].x + t * dx, lm[a].y + t * dy), radius: r * 0.6, colour: colour)
            }
        }
        for l in lm.prefix(PoseLandmarks.bodyCount) {
            let colour: (Float, Float, Float) = l.name.hasPrefix("left") ? (1, 0.55, 0) : l.name.hasPrefix("right") ? (0, 0.9, 1) : (1, 1, 1)
            out.fillDisc(centre: l.point, radius: l.visibility >= 0.5 ? r * 1.4 : r * 0.9, colour: colour)
        }
        return out
    }
}

struct PoseReport: Encodable {
    struct DetectionReport: Encodable {
        var score: Double
        var faceBox: Box
        var hipCentre: Point
        var bodyScalePoint: Point
        var shoulderCentre: Point
        var upperBodyScalePoint: Point
    }
    struct ROIReport: Encodable {
        var centre: Point
        var width: Double
        var height: Double
        /// Radians, clockwise on screen.
        var rotation: Double
    }

    var image: String
    var width: Int
    var height: Int
    var detection: DetectionReport
    var roi: ROIReport
    var presence: Double
    var landmarks: [PoseLandmark]

    init(image: String, width: Int, height: Int, pose: Pose) {
        self.image = image
        self.width = width
        self.height = height
        let d = pose.detection
        detection = DetectionReport(score: d.score, faceBox: d.faceBox, hipCentre: d.hipCentre, bodyScalePoint: d.bodyScalePoint,
                                    shoulderCentre: d.shoulderCentre, upperBodyScalePoint: d.upperBodyScalePoint)
        roi = ROIReport(centre: pose.roi.centre, width: pose.roi.width, height: pose.roi.height, rotation: pose.roi.rotation)
        presence = pose.presence
        landmarks = pose.landmarks
    }
}
