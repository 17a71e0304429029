import func Foundation.exp
import func Foundation.atan2
import func Foundation.cos
import func Foundation.sin
import GuiseImage
import GuiseVision
import GuiseTensor

/// MediaPipe's face mesh (face_landmark.tflite): 468 points from a 192² crop of the face.
public enum FaceMesh {
    public static let inputSize = 192
    public static let pointCount = 468
    /// face_landmark_cpu.pbtxt's ThresholdingCalculator on the presence score.
    public static let presenceThreshold = 0.5

    /// The crop the mesh network sees, from a detector's box and eye keypoints
    /// (face_detection_front_detection_to_roi.pbtxt: eyes level, square, 1.5× the box).
    public static func roi(for face: Face) throws -> RotatedRect {
        guard let l = face.keypoints[KeypointName.leftEye], let r = face.keypoints[KeypointName.rightEye] else {
            throw FaceError("the face mesh needs a detection with both eye keypoints")
        }
        return RotatedRect.roi(box: face.box, start: l, end: r, scale: 1.5)
    }

    /// The network input: [1, 192, 192, 3] in 0…1, the ROI warped in 8 bits with edges
    /// replicated, exactly as MediaPipe's ImageToTensorCalculator does (`rotatedRectCrop8Bit`).
    public static func input(_ image: Image, roi: RotatedRect) throws -> Tensor {
        let crop = try image.rotatedRectCrop8Bit(centre: roi.centre, width: roi.width, height: roi.height, rotation: roi.rotation,
                                                 outputWidth: inputSize, outputHeight: inputSize, border: .replicate)
        return NHWC.tensor(from: crop, range: 0...1)
    }

    /// The [1, 1404] landmark output (x, y, z in crop pixels) mapped to image pixels.
    public static func landmarks(_ raw: [Float], roi: RotatedRect) throws -> [Point3] {
        guard raw.count == 3 * pointCount else { throw FaceError("the face mesh output holds \(raw.count) values, expected \(3 * pointCount)") }
        return (0..<pointCount).map { i in
            let p = roi.imagePoint(cropX: Double(raw[3 * i]), cropY: Double(raw[3 * i + 1]), cropWidth: inputSize, cropHeight: inputSize)
            return Point3(p.x, p.y, Double(raw[3 * i + 2]) / Double(inputSize) * roi.width)
        }
    }

    /// The face-presence logit as a probability.
    public static func presence(_ logit: Float) -> Double { 1 / (1 + exp(-Double(logit))) }
}

/// The eye contour (71 points) and iris (5 points: centre, then four on its rim) of one eye.
public struct EyeLandmarks: Equatable, Sendable {
    public var contour: [Point3]
    public var iris: [Point3]
    public var irisCentre: Point { iris[0].xy }

    public init(contour: [Point3], iris: [Point3]) {
        self.contour = contour
        self.iris = iris
    }
}

/// MediaPipe's iris model (iris_landmark.tflite) on 64² eye crops.
public enum Iris {
    public static let inputSize = 64
    public static let contourCount = 71
    public static let irisCount = 5

    /// Eye-corner mesh indices: the eye on the image's left (33 outer, 133 inner), which the
    /// network sees as is, and the one on the right (362 inner, 263 outer), which it sees mirrored
    /// (iris_landmark_left_and_right_cpu.pbtxt: left 33/133, right 362/263, IS_RIGHT_EYE flips).
    public static let leftEyeCorners = (33, 133)
    public static let rightEyeCorners = (362, 263)

    /// iris_landmark_landmarks_to_roi.pbtxt: the corners' bounding box, levelled along the
    /// corner-to-corner vector, squared on its long side and scaled 2.3×.
    public static func roi(corner a: Point, corner b: Point) -> RotatedRect {
        let box = Box(x: min(a.x, b.x), y: min(a.y, b.y), width: abs(a.x - b.x), height: abs(a.y - b.y))
        return RotatedRect.roi(box: box, start: a, end: b, scale: 2.3)
    }

    /// Both eyes' crops from a face mesh in image pixels: (image-left eye, image-right eye).
    public static func rois(mesh: [Point3]) throws -> (left: RotatedRect, right: RotatedRect) {
        guard mesh.count >= FaceMesh.pointCount else { throw FaceError("iris crops need the 468-point mesh, got \(mesh.count) points") }
        return (roi(corner: mesh[leftEyeCorners.0].xy, corner: mesh[leftEyeCorners.1].xy),
                roi(corner: mesh[rightEyeCorners.0].xy, corner: mesh[rightEyeCorners.1].xy))
    }

    /// Where MediaPipe's iris graph really crops `roi`: its CPU ImageCroppingCalculator gets the
    /// ROI normalised to the image (as floats) and rounds centre and size back to whole pixels.
    /// The landmarks are still projected onto the unrounded ROI, so the rounding shifts and
    /// scales what the network sees by up to half a pixel; Guise does the same to see the same.
    public struct Crop: Equatable, Sendable {
        public var centreX: Int
        public var centreY: Int
        public var width: Int
        public var height: Int
        public var rotation: Double

        public init(roi: RotatedRect, imageWidth: Int, imageHeight: Int) {
            let w = Float(imageWidth), h = Float(imageHeight)
            func pixels(_ v: Double, _ size: Float) -> Int { Int((Float(v / Double(size)) * size).rounded()) }
            centreX = pixels(roi.centre.x, w)
            centreY = pixels(roi.centre.y, h)
            width = max(1, pixels(roi.width, w))
            height = max(1, pixels(roi.height, h))
            rotation = roi.rotation
        }

        /// Image pixels → pixels of the width × height crop: as OpenCV's boxPoints turns the
        /// rectangle (from a float angle in degrees), its corners land on the centres of the
        /// crop's corner pixels (0 and size − 1), not on their outer edges.
        public var imageToCrop: AffineTransform {
            let angle = Double(Float(Double(Float(rotation) * 180) / Double.pi)) * Double.pi / 180
            let c = cos(angle), s = sin(angle), w = Double(width), h = Double(height)
            // crop = (R(−θ)(p − centre) + size/2) · (size − 1)/size
            let kx = (w - 1) / w, ky = (h - 1) / h, cx = Double(centreX), cy = Double(centreY)
            return AffineTransform([c * kx, s * kx, (w - 1) / 2 - kx * (c * cx + s * cy),
                                    -s * ky, c * ky, (h - 1) / 2 - ky * (-s * cx + c * cy)])
        }

        /// ImageTransformationCalculator's FIT: the crop scaled by min(64/width, 64/height) to
        /// (round(width·s), round(height·s)) and centred, black around.
        public var fitted: (width: Int, height: Int, left: Int, top: Int) {
            let n = Iris.inputSize
            let scale = min(Float(n) / Float(width), Float(n) / Float(height))
            let tw = Int((Float(width) * scale).rounded()), th = Int((Float(height) * scale).rounded())
            return (tw, th, (n - tw) / 2, (n - th) / 2)
        }

        /// OpenCV's resize along one axis as a `total` × `size` matrix (row-major): output
        /// `pad + i` for i < `target` takes source pixels with these weights (INTER_LINEAR with
        /// half-pixel centres when enlarging, INTER_AREA when shrinking, as the calculator
        /// picks), other rows are zero (the black border).
        public static func resizeWeights(size n: Int, target t: Int, pad: Int, total: Int) -> [Float] {
            var m = [Float](repeating: 0, count: total * n)
            let scale = Double(n) / Double(t)
            for i in 0..<t where pad + i < total {
                let row = (pad + i) * n
                if t >= n {
                    var fx = (Double(i) + 0.5) * scale - 0.5
                    var sx = Int(fx.rounded(.down))
                    fx -= Double(sx)
                    if sx < 0 { sx = 0; fx = 0 }
                    if sx >= n - 1 { sx = n - 1; fx = 0 }
                    m[row + sx] += Float(1 - fx)
                    if fx > 0 { m[row + sx + 1] += Float(fx) }
                } else {
                    // Each output pixel averages the source span [i·scale, (i + 1)·scale).
                    let a = Double(i) * scale, b = a + scale, cell = min(scale, Double(n) - a)
                    let s1 = Int(a.rounded(.up)), s2 = Int(b.rounded(.down))
                    if Double(s1) - a > 1e-3, s1 - 1 >= 0 { m[row + s1 - 1] += Float((Double(s1) - a) / cell) }
                    for sx in s1..<min(s2, n) { m[row + sx] += Float(1 / cell) }
                    if b - Double(s2) > 1e-3, s2 < n { m[row + s2] += Float(min(min(b - Double(s2), 1), cell) / cell) }
                }
            }
            return m
        }
    }

    /// The network input [1, 64, 64, 3] in 0…1; the image-right eye is mirrored. As MediaPipe's
    /// iris graph makes it (ImageCroppingCalculator, ImageTransformationCalculator): 8-bit,
    /// whole-pixel `Crop`, nearest-neighbour sampling, resized to 64², edges replicated.
    public static func input(_ image: Image, roi: RotatedRect, mirrored: Bool) throws -> Tensor {
        let c = Crop(roi: roi, imageWidth: image.width, imageHeight: image.height)
        let crop = try image.croppedAndFitted8Bit(centreX: c.centreX, centreY: c.centreY, rectWidth: c.width, rectHeight: c.height,
                                                  rotation: c.rotation, outputWidth: inputSize, outputHeight: inputSize,
                                                  flipped: mirrored, border: .replicate)
        return NHWC.tensor(from: crop, range: 0...1)
    }

    /// The [1, 213] contour and [1, 15] iris outputs (x, y, z in crop pixels) in image pixels.
    /// A mirrored crop's x is unflipped as MediaPipe's TensorsToLandmarksCalculator does (x → 64 − x).
    public static func landmarks(contour: [Float], iris: [Float], roi: RotatedRect, mirrored: Bool) throws -> EyeLandmarks {
        guard contour.count == 3 * contourCount, iris.count == 3 * irisCount else {
            throw FaceError("the iris outputs hold \(contour.count) and \(iris.count) values, expected 213 and 15")
        }
        func decode(_ raw: [Float]) -> [Point3] {
            (0..<(raw.count / 3)).map { i in
                var u = Double(raw[3 * i])
                if mirrored { u = Double(inputSize) - u }
                let p = roi.imagePoint(cropX: u, cropY: Double(raw[3 * i + 1]), cropWidth: inputSize, cropHeight: inputSize)
                return Point3(p.x, p.y, Double(raw[3 * i + 2]) / Double(inputSize) * roi.width)
            }
        }
        return EyeLandmarks(contour: decode(contour), iris: decode(iris))
    }
}
