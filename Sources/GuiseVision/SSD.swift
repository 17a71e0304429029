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

    public init(inputWidth: Int, inputHeight: Int, minScale: Double, maxScale: Double, offsetX: Double = 0.5,
                offsetY: Double = 0.5, strides: [Int], aspectRatios: [Double] = [1.0],
                interpolatedScaleAspectRatio: Double = 1.0, fixedAnchorSize: Bool = true,
                reduceBoxesInLowestLayer: Bool = false) {
        self.inputWidth = inputWidth
        self.inputHeight = inputHeight
        self.minScale = minScale
        self.maxScale = maxScale
        self.offsetX = offsetX
        self.offsetY = offsetY
        self.strides = strides
        self.aspectRatios = aspectRatios
        self.interpolatedScaleAspectRatio = interpolatedScaleAspectRatio
        self.fixedAnchorSize = fixedAnchorSize
        self.reduceBoxesInLowestLayer = reduceBoxesInLowestLayer
    }
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
            throw VisionError("\(what) outputs hold \(regressors.count) and \(classificators.count) values, expected \(n * k) and \(n)")
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
