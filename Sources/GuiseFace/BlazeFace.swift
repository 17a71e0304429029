import func Foundation.exp
import GuiseImage
import GuiseTensor
import GuiseVision

/// BlazeFace's decoding (MediaPipe face_detection*.pbtxt: TensorsToDetectionsCalculator with
/// 16 coordinates, reverse_output_order, 6 keypoints, sigmoid scores clipped at ±100; then
/// weighted NMS at IoU 0.3).
public struct BlazeFaceModel: Sendable {
    public var inputSize: Int
    public var anchorOptions: SSDAnchorOptions
    /// x_scale = y_scale = w_scale = h_scale in MediaPipe's options.
    public var coordinateScale: Double
    public var minScore: Double
    public var scoreClip = 100.0
    public var suppressionThreshold = 0.3
    public let anchors: [Anchor]

    init(inputSize: Int, anchorOptions: SSDAnchorOptions, minScore: Double) {
        self.inputSize = inputSize
        self.anchorOptions = anchorOptions
        self.coordinateScale = Double(inputSize)
        self.minScore = minScore
        self.anchors = SSDAnchors.generate(anchorOptions)
    }

    /// face_detection_short_range.tflite: 128², 896 anchors, min score 0.5.
    public static let shortRange = BlazeFaceModel(
        inputSize: 128,
        anchorOptions: SSDAnchorOptions(inputWidth: 128, inputHeight: 128, minScale: 0.1484375, maxScale: 0.75,
                                        strides: [8, 16, 16, 16]),
        minScore: 0.5)

    /// face_detection_full_range_sparse.tflite: 192², 2304 anchors (one per 4-px cell), min score 0.6.
    public static let fullRange = BlazeFaceModel(
        inputSize: 192,
        anchorOptions: SSDAnchorOptions(inputWidth: 192, inputHeight: 192, minScale: 0.1484375, maxScale: 0.75,
                                        strides: [4], interpolatedScaleAspectRatio: 0),
        minScore: 0.6)

    /// Boxes and keypoints above the score threshold, in normalised input coordinates, before NMS.
    /// `regressors` is the [1, N, 16] output, `classificators` the [1, N, 1] logits, both flat.
    public func decode(regressors: [Float], classificators: [Float]) throws -> [Detection] {
        let decoder = SSDDecoder(anchors: anchors, coordinateScale: coordinateScale, keypointCount: 6,
                                 minScore: minScore, scoreClip: scoreClip)
        return try decoder.decode(regressors: regressors, classificators: classificators, what: "BlazeFace")
    }

    /// Decoding, NMS and the map back to image pixels, as `Face`s sorted largest first.
    public func faces(regressors: [Float], classificators: [Float], letterbox: Letterbox) throws -> [Face] {
        let kept = WeightedNMS.apply(try decode(regressors: regressors, classificators: classificators), threshold: suppressionThreshold)
        return FaceOrder.largest.sorted(kept.map { letterbox.face(from: $0) })
    }
}

/// BlazeFace's six keypoints in the order the network gives them. Sides are the image's:
/// keypoint 0 is the eye on the image's left (the person's right eye), 4 the ear tragion there.
public enum BlazeFaceKeypoints {
    public static let order = [KeypointName.leftEye, KeypointName.rightEye, KeypointName.nose,
                               KeypointName.mouthCentre, KeypointName.leftEar, KeypointName.rightEar]
}

extension Letterbox {
    /// A normalised detection as a face in image pixels, with BlazeFace's keypoint names.
    public func face(from d: Detection) -> Face {
        let tl = imagePoint(Point(d.xmin, d.ymin))
        var kp: [String: Point] = [:]
        for (name, p) in zip(BlazeFaceKeypoints.order, d.keypoints) { kp[name] = imagePoint(p) }
        return Face(box: Box(x: tl.x, y: tl.y, width: d.width * side, height: d.height * side), score: d.score, keypoints: kp)
    }
}
