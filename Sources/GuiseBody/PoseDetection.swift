import func Foundation.atan2
import GuiseImage
import GuiseTensor
import GuiseVision

/// A person found by MediaPipe's pose detector, in image pixels. The detector boxes the face;
/// the body comes from its four keypoints (pose_detection_cpu.pbtxt): the hip centre and a
/// point whose offset from it gives the full body's size and rotation, then the same pair for
/// the upper body (shoulder centre and its scale point).
public struct PoseDetection: Equatable, Sendable {
    public var score: Double
    public var faceBox: Box
    public var hipCentre: Point
    public var bodyScalePoint: Point
    public var shoulderCentre: Point
    public var upperBodyScalePoint: Point

    /// The landmark model's crop (pose_detection_to_roi.pbtxt): centred on the hip centre, a
    /// square of twice the hip-to-scale-point distance, turned so that vector points up
    /// (AlignmentPointsRectsCalculator, target 90°), then grown 1.25× (RectTransformationCalculator).
    public var roi: RotatedRect {
        PoseROI.aligned(centre: hipCentre, scalePoint: bodyScalePoint, scale: PoseROI.detectionScale)
    }
}

public enum PoseROI {
    /// pose_detection_to_roi.pbtxt's scale_x = scale_y.
    public static let detectionScale = 1.25

    /// MediaPipe's AlignmentPointsRectsCalculator with target angle 90°, then square_long and
    /// `scale`: the rectangle centred at `centre`, side 2·|scalePoint − centre|·scale, rotated
    /// so the centre-to-scale-point vector becomes vertical, pointing up in the crop.
    public static func aligned(centre: Point, scalePoint: Point, scale: Double) -> RotatedRect {
        let dx = scalePoint.x - centre.x, dy = scalePoint.y - centre.y
        let side = 2 * (dx * dx + dy * dy).squareRoot() * scale
        let angle = Double.pi / 2 - atan2(-dy, dx)
        return RotatedRect(centre: centre, width: side, height: side, rotation: RotatedRect.normalised(angle))
    }
}

/// pose_detection.tflite's decoding (pose_detection_cpu.pbtxt): 224² letterboxed input in
/// [−1, 1], 2254 SSD anchors (5 layers, strides 8, 16, 32, 32, 32, scales 0.1484375–0.75, fixed
/// size), 12 coordinates per anchor (box, then 4 keypoints), sigmoid scores clipped at ±100,
/// weighted NMS at IoU 0.3. The graph text's score threshold is 0.2, but mp.solutions.pose
/// overrides it with min_detection_confidence, 0.5 by default; so does Guise.
public struct PoseDetectorModel: Sendable {
    public static let inputSize = 224
    public static let keypointCount = 4
    public static let anchorOptions = SSDAnchorOptions(inputWidth: 224, inputHeight: 224, minScale: 0.1484375, maxScale: 0.75,
                                                       strides: [8, 16, 32, 32, 32])

    public var minScore = 0.5
    public var suppressionThreshold = 0.3
    public let anchors: [Anchor]

    public init(minScore: Double = 0.5) {
        self.minScore = minScore
        anchors = SSDAnchors.generate(Self.anchorOptions)
    }

    var decoder: SSDDecoder {
        SSDDecoder(anchors: anchors, coordinateScale: Double(Self.inputSize), keypointCount: Self.keypointCount, minScore: minScore)
    }

    /// Detections before NMS, normalised to the letterboxed input. `boxes` is the [1, 2254, 12]
    /// output, `scores` the [1, 2254, 1] logits, both flat.
    public func decode(boxes: [Float], scores: [Float]) throws -> [Detection] {
        try decoder.decode(regressors: boxes, classificators: scores, what: "pose detector")
    }

    /// Decoding, NMS, and the map back to image pixels; highest score first (MediaPipe's pose
    /// pipeline takes the first).
    public func detections(boxes: [Float], scores: [Float], letterbox: Letterbox) throws -> [PoseDetection] {
        let kept = WeightedNMS.apply(try decode(boxes: boxes, scores: scores), threshold: suppressionThreshold)
        return kept.map { d in
            let tl = letterbox.imagePoint(Point(d.xmin, d.ymin))
            let k = d.keypoints.map(letterbox.imagePoint)
            return PoseDetection(score: d.score,
                                 faceBox: Box(x: tl.x, y: tl.y, width: d.width * letterbox.side, height: d.height * letterbox.side),
                                 hipCentre: k[0], bodyScalePoint: k[1], shoulderCentre: k[2], upperBodyScalePoint: k[3])
        }
    }
}
