import func Foundation.exp
import func Foundation.atan2
import func Foundation.cos
import func Foundation.sin
import GuiseImage
import GuiseTensor

/// A landmark in image pixels; z is depth in the same pixel scale (MediaPipe: z × ROI width).
public struct Point3: Equatable, Codable, Sendable {
    public var x: Double
    public var y: Double
    public var z: Double
    public init(_ x: Double, _ y: Double, _ z: Double = 0) {
        self.x = x
        self.y = y
        self.z = z
    }
    public var xy: Point { Point(x, y) }
}

/// A rotated rectangle in image pixels (MediaPipe's NormalizedRect, in pixels). `rotation` is
/// in radians, clockwise on screen (y points down), as MediaPipe's.
public struct RotatedRect: Equatable, Sendable {
    public var centre: Point
    public var width: Double
    public var height: Double
    public var rotation: Double

    public init(centre: Point, width: Double, height: Double, rotation: Double) {
        self.centre = centre
        self.width = width
        self.height = height
        self.rotation = rotation
    }

    /// MediaPipe's DetectionsToRectsCalculator + RectTransformationCalculator: the box centre,
    /// turned so the vector from `start` to `end` becomes horizontal (target angle 0), made a
    /// square of the longer side (square_long), then scaled.
    public static func roi(box: Box, start: Point, end: Point, scale: Double) -> RotatedRect {
        let angle = -atan2(-(end.y - start.y), end.x - start.x)
        let side = max(box.width, box.height) * scale
        return RotatedRect(centre: box.centre, width: side, height: side, rotation: normalised(angle))
    }

    /// Wraps an angle into [−π, π) (MediaPipe's NormalizeRadians).
    static func normalised(_ a: Double) -> Double {
        a - 2 * Double.pi * ((a + Double.pi) / (2 * Double.pi)).rounded(.down)
    }

    /// Image pixels → crop pixels for a `cropWidth` × `cropHeight` crop. As MediaPipe's
    /// ImageToTensorCalculator, the rectangle's corners go to the crop's outer corners
    /// (0 and cropWidth), and the crop is the rectangle turned upright.
    public func cropTransform(width cw: Int, height ch: Int) -> AffineTransform {
        let c = cos(rotation), s = sin(rotation)
        let sx = Double(cw) / width, sy = Double(ch) / height
        // crop = S · R(−θ) · (p − centre) + (cw/2, ch/2)
        return AffineTransform([c * sx, s * sx, Double(cw) / 2 - sx * (c * centre.x + s * centre.y),
                                -s * sy, c * sy, Double(ch) / 2 - sy * (-s * centre.x + c * centre.y)])
    }

    /// Crop pixels → image pixels (MediaPipe's LandmarkProjectionCalculator).
    public func imagePoint(cropX u: Double, cropY v: Double, cropWidth cw: Int, cropHeight ch: Int) -> Point {
        let x = (u / Double(cw) - 0.5) * width, y = (v / Double(ch) - 0.5) * height
        let c = cos(rotation), s = sin(rotation)
        return Point(centre.x + c * x - s * y, centre.y + s * x + c * y)
    }

    /// The crop as an NHWC tensor [1, h, w, 3] with values in `range`; bilinear, edges replicated.
    /// `mirrored` flips it left–right after cropping (cv::flip: column i ↔ w − 1 − i).
    public func crop(_ image: Image, width w: Int, height h: Int, range: ClosedRange<Float> = 0...1,
                     mirrored: Bool = false) throws -> Tensor {
        let t = cropTransform(width: w, height: h, mirrored: mirrored)
        let crop = try image.warpedAffine(t, width: w, height: h, interpolation: .linear, border: .replicate)
        return NHWC.tensor(from: crop, range: range)
    }
}

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

    /// The network input: [1, 192, 192, 3] in 0…1.
    public static func input(_ image: Image, roi: RotatedRect) throws -> Tensor {
        try roi.crop(image, width: inputSize, height: inputSize, range: 0...1)
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

    /// The network input [1, 64, 64, 3] in 0…1; the image-right eye is mirrored.
    public static func input(_ image: Image, roi: RotatedRect, mirrored: Bool) throws -> Tensor {
        try roi.crop(image, width: inputSize, height: inputSize, range: 0...1, mirrored: mirrored)
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
