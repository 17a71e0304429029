import func Foundation.exp
import GuiseFormats
import GuiseImage
import GuiseNetworks
import GuiseTensor
import GuiseVision

/// One of the pose model's 39 points in image pixels; z is depth scaled like x (MediaPipe:
/// smaller is nearer the camera, 0 at the hips' depth). `visibility` is the probability that
/// the point is in view and not occluded, `presence` that it lies inside the crop.
public struct PoseLandmark: Equatable, Codable, Sendable {
    public var name: String
    public var x: Double
    public var y: Double
    public var z: Double
    public var visibility: Double
    public var presence: Double

    public var point: Point { Point(x, y) }
}

/// The pose pipeline's result for one person.
public struct Pose {
    public var detection: PoseDetection
    /// The crop the landmark model saw.
    public var roi: RotatedRect
    /// The landmark model's pose-presence probability (MediaPipe keeps the pose at 0.5 or above).
    public var presence: Double
    /// 33 body points, then 6 auxiliary ones (`PoseLandmarks.names`).
    public var landmarks: [PoseLandmark]
    /// The person mask at the photo's size, 0…1; nil unless asked for.
    public var mask: Mask?

    public var body: ArraySlice<PoseLandmark> { landmarks[0..<PoseLandmarks.bodyCount] }
}

/// pose_landmark_full.tflite's decoding (tensors_to_pose_landmarks_and_segmentation.pbtxt and
/// the inverse projection): 39 × (x, y, z, visibility, presence) in pixels of the 256² crop with
/// sigmoid on the last two, x and y refined from the 64² heatmaps, then projected onto the ROI;
/// the 256² segmentation logits through a sigmoid and warped back onto the photo.
public enum PoseLandmarks {
    public static let inputSize = 256
    public static let count = 39
    public static let bodyCount = 33
    public static let heatmapSize = 64
    /// The graph text sets kernel_size 7, but mediapipe 0.10.21 (whose model files Guise
    /// embeds) refines over a 9×9 window, the option's default: 9 reproduces its landmarks to
    /// 0.03 px on the sample photos, 7 misses weakly located points by up to 4.4 px.
    public static let heatmapKernel = 9
    /// RefineLandmarksFromHeatmapCalculator's min_confidence_to_refine.
    public static let refineThreshold: Float = 0.5
    /// ThresholdingCalculator on the pose flag (mp.solutions.pose's min_tracking_confidence).
    public static let presenceThreshold = 0.5

    /// MediaPipe's names for the 33 body points: "left" and "right" are the person's, so on a
    /// photo of someone facing the camera `left_shoulder` is the one on the image's right.
    /// The model's 6 auxiliary points follow; MediaPipe uses the first two, like the detector's
    /// first two keypoints, to place the next frame's crop (pose_landmarks_to_roi.pbtxt), and
    /// names none of them.
    public static let names = [
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
        "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky",
        "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
        "left_foot_index", "right_foot_index",
        "auxiliary_body_centre", "auxiliary_body_scale", "auxiliary_35", "auxiliary_36", "auxiliary_37", "auxiliary_38",
    ]

    /// The skeleton's edges between body points (MediaPipe's POSE_CONNECTIONS).
    public static let connections: [(Int, Int)] = [
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
        (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
        (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
        (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
        (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
    ]

    /// The network input: the ROI cropped to [1, 256, 256, 3] in 0…1, edges replicated, warped
    /// in 8 bits exactly as MediaPipe does (`Image.rotatedRectCrop8Bit`): the heatmap refinement
    /// moves weakly located points (hidden hips, feet) by pixels on input changes of one level.
    public static func input(_ image: Image, roi: RotatedRect) throws -> Tensor {
        let crop = try image.rotatedRectCrop8Bit(centre: roi.centre, width: roi.width, height: roi.height, rotation: roi.rotation,
                                                 outputWidth: inputSize, outputHeight: inputSize, border: .replicate)
        return NHWC.tensor(from: crop, range: 0...1)
    }

    static func sigmoid(_ v: Float) -> Double { 1 / (1 + exp(-Double(v))) }

    /// `raw` is the [1, 195] landmark output, `heatmap` the [1, 64, 64, 39] one (HWC), both flat.
    public static func decode(raw: [Float], heatmap: [Float], roi: RotatedRect) throws -> [PoseLandmark] {
        let n = heatmapSize
        guard raw.count == 5 * count, heatmap.count == n * n * count else {
            throw BodyError("the pose landmark outputs hold \(raw.count) and \(heatmap.count) values, expected \(5 * count) and \(n * n * count)")
        }
        let s = Float(inputSize)
        return (0..<count).map { i in
            // Normalised to the crop in Float, as TensorsToLandmarksCalculator does, so that the
            // heatmap cell each point falls in is the one MediaPipe picks.
            var u = raw[5 * i] / s, v = raw[5 * i + 1] / s
            if let refined = refine(u, v, channel: i, heatmap: heatmap) { (u, v) = refined }
            let p = roi.imagePoint(cropX: Double(u) * Double(inputSize), cropY: Double(v) * Double(inputSize),
                                   cropWidth: inputSize, cropHeight: inputSize)
            return PoseLandmark(name: names[i], x: p.x, y: p.y, z: Double(raw[5 * i + 2] / s) * roi.width,
                                visibility: sigmoid(raw[5 * i + 3]), presence: sigmoid(raw[5 * i + 4]))
        }
    }

    /// RefineLandmarksFromHeatmapCalculator: the sigmoid-weighted mean cell position in a
    /// kernel × kernel window (cut at the heatmap's edges) around the point's cell, if the
    /// window's peak reaches `refineThreshold`. As there, the cell is found by truncation and the
    /// mean is not shifted by half a cell. Points off the heatmap stay as they are.
    static func refine(_ u: Float, _ v: Float, channel: Int, heatmap: [Float]) -> (Float, Float)? {
        let n = heatmapSize
        guard u.isFinite, v.isFinite, abs(u) < 1e6, abs(v) < 1e6 else { return nil }
        let col = Int(u * Float(n)), row = Int(v * Float(n))
        guard col >= 0, col < n, row >= 0, row < n else { return nil }
        let half = (heatmapKernel - 1) / 2
        var sum: Float = 0, wCol: Float = 0, wRow: Float = 0, peak: Float = 0
        for r in max(0, row - half)..<min(n, row + half + 1) {
            for c in max(0, col - half)..<min(n, col + half + 1) {
                let conf = 1 / (1 + exp(-heatmap[(r * n + c) * count + channel]))
                sum += conf
                peak = max(peak, conf)
                wCol += Float(c) * conf
                wRow += Float(r) * conf
            }
        }
        guard peak >= refineThreshold, sum > 0 else { return nil }
        return (wCol / Float(n) / sum, wRow / Float(n) / sum)
    }

    /// The [1, 256, 256, 1] segmentation logits → the person probability at the photo's size:
    /// the crop's map inverted (WarpAffineCalculator, bilinear), 0 outside the crop.
    public static func mask(logits: [Float], roi: RotatedRect, width: Int, height: Int) throws -> Mask {
        let n = inputSize
        guard logits.count == n * n else { throw BodyError("the pose segmentation output holds \(logits.count) values, expected \(n * n)") }
        let crop = Mask(width: n, height: n, values: logits.map { Float(sigmoid($0)) })
        let back = try roi.cropTransform(width: n, height: n).inverted()
        return try crop.warpedAffine(back, width: width, height: height)
    }
}

/// MediaPipe's pose pipeline for a single photo (pose_landmark_cpu.pbtxt in static-image mode):
/// detector, ROI from its first detection, landmark model, presence gate, decoding.
public final class PoseEstimator {
    public static let detectorFile = "pose_detection.tflite"
    public static let landmarkFile = "pose_landmark_full.tflite"

    let detector: TFLiteNetwork
    let landmarker: TFLiteNetwork
    public var detectorModel = PoseDetectorModel()

    public init(detector: TFLiteNetwork, landmarks: TFLiteNetwork) throws {
        let d = PoseDetectorModel.inputSize, l = PoseLandmarks.inputSize
        guard detector.inputShapes == [[1, d, d, 3]], detector.outputShapes.count == 2 else {
            throw BodyError("\(detector.path): not a pose detection model (inputs \(detector.inputShapes), outputs \(detector.outputShapes))", category: .model)
        }
        guard landmarks.inputShapes == [[1, l, l, 3]], landmarks.outputShapes.count == 5 else {
            throw BodyError("\(landmarks.path): not a pose landmark model (inputs \(landmarks.inputShapes), outputs \(landmarks.outputShapes))", category: .model)
        }
        self.detector = detector
        self.landmarker = landmarks
    }

    public convenience init(store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(detector: TFLiteNetwork(path: store.installedPath(Self.detectorFile)),
                      landmarks: TFLiteNetwork(path: store.installedPath(Self.landmarkFile)))
    }

    /// Outputs told apart by their size, as the file names them by number only.
    static func output(_ outs: [Tensor], count: Int, of net: TFLiteNetwork) throws -> [Float] {
        guard let t = outs.first(where: { $0.count == count }) else {
            throw BodyError("\(net.path): no output of \(count) values among \(outs.map(\.shape))", category: .model)
        }
        return t.values
    }

    /// People in the photo, highest score first.
    public func detect(_ image: Image) throws -> [PoseDetection] {
        let n = PoseDetectorModel.inputSize
        let letterbox = Letterbox(imageWidth: image.width, imageHeight: image.height, size: n)
        // The letterbox as MediaPipe makes it (the face detector's too): padded to a square, in 8 bits.
        let input = try letterbox.input(image, range: -1...1)
        let outs = try Autograd.noGrad { try detector([input]) }
        let anchors = detectorModel.anchors.count
        return try detectorModel.detections(boxes: Self.output(outs, count: anchors * 12, of: detector),
                                            scores: Self.output(outs, count: anchors, of: detector), letterbox: letterbox)
    }

    /// The landmarks (and the mask if `segmentation`) for a detection; nil when the landmark
    /// model says no pose is there (presence below 0.5).
    public func landmarks(_ image: Image, detection: PoseDetection, segmentation: Bool = false) throws -> Pose? {
        let roi = detection.roi
        let n = PoseLandmarks.inputSize, h = PoseLandmarks.heatmapSize
        let outs = try Autograd.noGrad { try landmarker([PoseLandmarks.input(image, roi: roi)]) }
        let presence = Double(try Self.output(outs, count: 1, of: landmarker)[0])
        guard presence >= PoseLandmarks.presenceThreshold else { return nil }
        let points = try PoseLandmarks.decode(raw: Self.output(outs, count: 5 * PoseLandmarks.count, of: landmarker),
                                              heatmap: Self.output(outs, count: h * h * PoseLandmarks.count, of: landmarker), roi: roi)
        let mask = segmentation
            ? try PoseLandmarks.mask(logits: Self.output(outs, count: n * n, of: landmarker), roi: roi, width: image.width, height: image.height)
            : nil
        return Pose(detection: detection, roi: roi, presence: presence, landmarks: points, mask: mask)
    }

    /// The most prominent person, as mp.solutions.pose finds them: nil when there is none.
    public func estimate(_ image: Image, segmentation: Bool = false) throws -> Pose? {
        guard let first = try detect(image).first else { return nil }
        return try landmarks(image, detection: first, segmentation: segmentation)
    }
}
