import func Foundation.exp
import GuiseImage
import GuiseTensor

/// MediaPipe's SsdAnchorsCalculator options (ssd_anchors_calculator.proto).
public struct SSDAnchorOptions: Sendable {
    public var inputWidth: Int
    public var inputHeight: Int
    public var minScale: Double
    public var maxScale: Double
    public var offsetX = 0.5
    public var offsetY = 0.5
    public var strides: [Int]
    public var aspectRatios: [Double] = [1.0]
    public var interpolatedScaleAspectRatio = 1.0
    public var fixedAnchorSize = true
    public var reduceBoxesInLowestLayer = false
}

/// An anchor in normalised [0, 1] input coordinates.
public struct Anchor: Equatable, Sendable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double
}

/// A detection in normalised coordinates of the network input (or, after `mapped`, in pixels).
public struct Detection: Equatable, Sendable {
    public var xmin: Double
    public var ymin: Double
    public var width: Double
    public var height: Double
    public var keypoints: [Point]
    public var score: Double
}

public enum SSDAnchors {
    /// The anchors exactly as MediaPipe's SsdAnchorsCalculator lists them: layers sharing a
    /// stride are merged into one feature map; cells row by row, anchors within a cell last.
    public static func generate(_ o: SSDAnchorOptions) -> [Anchor] {
        func scale(_ i: Int) -> Double {
            o.strides.count == 1 ? (o.minScale + o.maxScale) / 2
                : o.minScale + (o.maxScale - o.minScale) * Double(i) / Double(o.strides.count - 1)
        }
        var anchors: [Anchor] = []
        var layer = 0
        while layer < o.strides.count {
            var sizes: [(w: Double, h: Double)] = []
            var last = layer
            while last < o.strides.count && o.strides[last] == o.strides[layer] {
                let s = scale(last)
                if last == 0 && o.reduceBoxesInLowestLayer {
                    for (ratio, sc) in [(1.0, 0.1), (2.0, s), (0.5, s)] { sizes.append((sc * ratio.squareRoot(), sc / ratio.squareRoot())) }
                } else {
                    for ratio in o.aspectRatios { sizes.append((s * ratio.squareRoot(), s / ratio.squareRoot())) }
                    if o.interpolatedScaleAspectRatio > 0 {
                        let next = last == o.strides.count - 1 ? 1.0 : scale(last + 1)
                        let si = (s * next).squareRoot(), r = o.interpolatedScaleAspectRatio.squareRoot()
                        sizes.append((si * r, si / r))
                    }
                }
                last += 1
            }
            let stride = Double(o.strides[layer])
            let rows = Int((Double(o.inputHeight) / stride).rounded(.up)), cols = Int((Double(o.inputWidth) / stride).rounded(.up))
            for y in 0..<rows {
                for x in 0..<cols {
                    for size in sizes {
                        anchors.append(Anchor(x: (Double(x) + o.offsetX) / Double(cols), y: (Double(y) + o.offsetY) / Double(rows),
                                              width: o.fixedAnchorSize ? 1 : size.w, height: o.fixedAnchorSize ? 1 : size.h))
                    }
                }
            }
            layer = last
        }
        return anchors
    }
}

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

/// MediaPipe's TensorsToDetectionsCalculator for one class, reverse_output_order, fixed-size
/// anchors and x/y/w/h scales all equal: per anchor, box centre and size, then keypoint x, y
/// pairs, each an offset in input pixels; scores are sigmoid(logit clipped at ±scoreClip).
public struct SSDDecoder: Sendable {
    public var anchors: [Anchor]
    public var coordinateScale: Double
    public var keypointCount: Int
    public var minScore: Double
    public var scoreClip: Double

    public init(anchors: [Anchor], coordinateScale: Double, keypointCount: Int, minScore: Double, scoreClip: Double = 100) {
        self.anchors = anchors
        self.coordinateScale = coordinateScale
        self.keypointCount = keypointCount
        self.minScore = minScore
        self.scoreClip = scoreClip
    }

    public var coordinateCount: Int { 4 + 2 * keypointCount }

    /// `regressors` [N · coordinateCount] and `classificators` [N] logits, flat → detections
    /// above `minScore` in normalised input coordinates, before NMS. `what` names the model in errors.
    public func decode(regressors: [Float], classificators: [Float], what: String) throws -> [Detection] {
        let n = anchors.count, k = coordinateCount
        guard regressors.count == n * k, classificators.count == n else {
            throw FaceError("\(what) outputs hold \(regressors.count) and \(classificators.count) values, expected \(n * k) and \(n)")
        }
        var out: [Detection] = []
        let s = coordinateScale
        for i in 0..<n {
            let logit = min(max(Double(classificators[i]), -scoreClip), scoreClip)
            let score = 1 / (1 + exp(-logit))
            guard score >= minScore else { continue }
            let a = anchors[i], r = regressors[(k * i)..<(k * i + k)].map(Double.init)
            let cx = r[0] / s * a.width + a.x, cy = r[1] / s * a.height + a.y
            let w = r[2] / s * a.width, h = r[3] / s * a.height
            // As MediaPipe: drop boxes of negative or NaN size (b/171391719); also non-finite centres.
            guard w >= 0, h >= 0, cx.isFinite, cy.isFinite else { continue }
            let keypoints = (0..<keypointCount).map { j in Point(r[4 + 2 * j] / s * a.width + a.x, r[5 + 2 * j] / s * a.height + a.y) }
            out.append(Detection(xmin: cx - w / 2, ymin: cy - h / 2, width: w, height: h, keypoints: keypoints, score: score))
        }
        return out
    }
}

public enum WeightedNMS {
    /// MediaPipe's WEIGHTED non-max suppression with IoU overlap: the best remaining detection
    /// absorbs every detection overlapping it by more than `threshold` (itself included); its
    /// box and keypoints become their score-weighted mean, its score stays its own.
    public static func apply(_ detections: [Detection], threshold: Double) -> [Detection] {
        var remaining = detections.indices.sorted { detections[$0].score > detections[$1].score }
        var out: [Detection] = []
        while let top = remaining.first {
            let best = detections[top]
            var absorbed: [Int] = [], rest: [Int] = []
            for i in remaining {
                if iou(detections[i], best) > threshold { absorbed.append(i) } else { rest.append(i) }
            }
            var merged = best
            var total = 0.0, x0 = 0.0, y0 = 0.0, x1 = 0.0, y1 = 0.0
            var kps = [Point](repeating: Point(0, 0), count: best.keypoints.count)
            for i in absorbed {
                let d = detections[i], w = d.score
                total += w
                x0 += d.xmin * w; y0 += d.ymin * w
                x1 += (d.xmin + d.width) * w; y1 += (d.ymin + d.height) * w
                for k in kps.indices where k < d.keypoints.count {
                    kps[k].x += d.keypoints[k].x * w
                    kps[k].y += d.keypoints[k].y * w
                }
            }
            if total > 0 {
                merged.xmin = x0 / total; merged.ymin = y0 / total
                merged.width = (x1 - x0) / total; merged.height = (y1 - y0) / total
                merged.keypoints = kps.map { Point($0.x / total, $0.y / total) }
            }
            out.append(merged)
            remaining = rest
        }
        return out
    }

    public static func iou(_ a: Detection, _ b: Detection) -> Double {
        let w = min(a.xmin + a.width, b.xmin + b.width) - max(a.xmin, b.xmin)
        let h = min(a.ymin + a.height, b.ymin + b.height) - max(a.ymin, b.ymin)
        guard w > 0, h > 0 else { return 0 }
        let inter = w * h, union = a.width * a.height + b.width * b.height - inter
        return union > 0 ? inter / union : 0
    }
}

/// The square a detector sees: MediaPipe's ImageToTensorCalculator with keep_aspect_ratio
/// pads the whole image, centred, to a square of its longer side, then scales it to the
/// tensor. As there, the square's outer corners map to the tensor's outer corners (0 and
/// `size`), and padding is black (−1 in a [−1, 1] tensor: BORDER_ZERO before normalising).
public struct Letterbox: Equatable, Sendable {
    public var imageWidth: Int
    public var imageHeight: Int
    public var size: Int

    public init(imageWidth: Int, imageHeight: Int, size: Int) {
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        self.size = size
    }

    /// The padded square's side and top-left corner in image pixels.
    public var side: Double { Double(max(imageWidth, imageHeight)) }
    public var origin: Point { Point((Double(imageWidth) - side) / 2, (Double(imageHeight) - side) / 2) }

    /// Image pixels → tensor pixels.
    public var transform: AffineTransform {
        let s = Double(size) / side, o = origin
        return AffineTransform([s, 0, -o.x * s, 0, s, -o.y * s])
    }

    /// A normalised tensor coordinate (0…1 across the tensor) → image pixels.
    public func imagePoint(_ p: Point) -> Point {
        Point(origin.x + p.x * side, origin.y + p.y * side)
    }

    /// A normalised detection as a face in image pixels, with BlazeFace's keypoint names.
    public func face(from d: Detection) -> Face {
        let tl = imagePoint(Point(d.xmin, d.ymin))
        var kp: [String: Point] = [:]
        for (name, p) in zip(BlazeFaceKeypoints.order, d.keypoints) { kp[name] = imagePoint(p) }
        return Face(box: Box(x: tl.x, y: tl.y, width: d.width * side, height: d.height * side), score: d.score, keypoints: kp)
    }

    /// The network input [1, size, size, 3] (NHWC) with values in `range` (BlazeFace: −1…1),
    /// made as MediaPipe's CPU converter makes it: the padded square warped in 8 bits
    /// (cv::warpPerspective, INTER_LINEAR, `rotatedRectCrop8Bit`). A float warp of the same
    /// square moves full-range detections on small faces by a fifth of a pixel.
    public func input(_ image: Image, range: ClosedRange<Float> = -1...1) throws -> Tensor {
        guard image.width == imageWidth, image.height == imageHeight else {
            throw FaceError("the image is \(image.width)x\(image.height), the letterbox was made for \(imageWidth)x\(imageHeight)")
        }
        let square = try image.rotatedRectCrop8Bit(centre: Point(Double(imageWidth) / 2, Double(imageHeight) / 2),
                                                   width: side, height: side, rotation: 0,
                                                   outputWidth: size, outputHeight: size, border: .constant(0))
        return NHWC.tensor(from: square, range: range)
    }
}

/// BlazeFace's six keypoints in the order the network gives them. Sides are the image's:
/// keypoint 0 is the eye on the image's left (the person's right eye), 4 the ear tragion there.
public enum BlazeFaceKeypoints {
    public static let order = [KeypointName.leftEye, KeypointName.rightEye, KeypointName.nose,
                               KeypointName.mouthCentre, KeypointName.leftEar, KeypointName.rightEar]
}

/// Conversions between planar `Image`s and the NHWC tensors TFLite networks take.
public enum NHWC {
    /// [1, H, W, 3] with 0…1 pixel values mapped linearly onto `range`.
    public static func tensor(from image: Image, range: ClosedRange<Float>) -> Tensor {
        let n = image.pixelCount, a = range.upperBound - range.lowerBound, b = range.lowerBound
        var v = [Float](repeating: 0, count: 3 * n)
        image.rgb.withUnsafeBufferPointer { p in
            for i in 0..<n { for c in 0..<3 { v[3 * i + c] = p[c * n + i] * a + b } }
        }
        return Tensor(shape: [1, image.height, image.width, 3], values: v)
    }
}
