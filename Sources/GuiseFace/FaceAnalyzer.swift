import GuiseFormats
import GuiseImage
import GuiseVision
import GuiseNetworks
import GuiseTensor

/// Everything the mesh and iris networks say about one face, in image pixels.
public struct FaceLandmarks: Sendable {
    /// The crop the mesh network saw.
    public var roi: RotatedRect
    /// 468 points.
    public var mesh: [Point3]
    /// The mesh network's face-presence probability (MediaPipe keeps the face above 0.5).
    public var presence: Double
    /// The eye on the image's left and the one on its right.
    public var leftEye: EyeLandmarks
    public var rightEye: EyeLandmarks

    /// Per eye (image-left, image-right): `Gaze.features`, (horizontal, vertical).
    public func gazePerEye() throws -> [Point] {
        let all = Gaze.meshWithIrises(mesh, left: leftEye, right: rightEye).map(\.xy)
        return try Gaze.features(all).map { Point($0.horizontal, $0.vertical) }
    }

    /// The two eyes' features averaged: where the face looks, in eye widths (x) and heights (y).
    public func gaze() throws -> Point {
        let e = try gazePerEye()
        return Point((e[0].x + e[1].x) / 2, (e[0].y + e[1].y) / 2)
    }

    /// Alignment's five named points, with the iris centres as the eyes.
    public func fivePoints() throws -> [String: Point] {
        try MeshPoints.fivePoints(mesh, irisCentres: (leftEye.irisCentre, rightEye.irisCentre))
    }

    public func ibug68() throws -> [Point] { try MeshPoints.ibug68(mesh) }

    /// dlib's 5-point shape, the input of its face chip.
    public func dlib5() throws -> [Point] { try MeshPoints.dlib5(mesh) }
}

/// FaceMesh and iris on a detected face (MediaPipe's face_landmark_front + iris pipelines).
public final class FaceAnalyzer {
    public static let meshFile = "face_landmark.tflite"
    public static let irisFile = "iris_landmark.tflite"

    let mesh: TFLiteNetwork
    let iris: TFLiteNetwork

    public init(mesh: TFLiteNetwork, iris: TFLiteNetwork) throws {
        let m = FaceMesh.inputSize, i = Iris.inputSize
        guard mesh.inputShapes == [[1, m, m, 3]] else { throw FaceError("\(mesh.path): not a face mesh model (input \(mesh.inputShapes))", category: .model) }
        guard iris.inputShapes == [[1, i, i, 3]] else { throw FaceError("\(iris.path): not an iris model (input \(iris.inputShapes))", category: .model) }
        self.mesh = mesh
        self.iris = iris
    }

    public convenience init(store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(mesh: TFLiteNetwork(path: store.installedPath(Self.meshFile)),
                      iris: TFLiteNetwork(path: store.installedPath(Self.irisFile)))
    }

    /// Outputs picked by their size, since the files name them differently across versions.
    static func output(_ outs: [Tensor], count: Int, of net: TFLiteNetwork) throws -> [Float] {
        guard let t = outs.first(where: { $0.count == count }) else {
            throw FaceError("\(net.path): no output of \(count) values among \(outs.map(\.shape))", category: .model)
        }
        return t.values
    }

    /// Mesh, then iris on both eyes, for a face with eye keypoints (BlazeFace's).
    public func landmarks(_ image: Image, face: Face) throws -> FaceLandmarks {
        let roi = try FaceMesh.roi(for: face)
        let meshOut = try Autograd.noGrad { try mesh([FaceMesh.input(image, roi: roi)]) }
        let points = try FaceMesh.landmarks(Self.output(meshOut, count: 3 * FaceMesh.pointCount, of: mesh), roi: roi)
        let presence = FaceMesh.presence(try Self.output(meshOut, count: 1, of: mesh)[0])
        let eyes = try self.eyes(image, mesh: points)
        return FaceLandmarks(roi: roi, mesh: points, presence: presence, leftEye: eyes.left, rightEye: eyes.right)
    }

    /// Iris and eye contour of both eyes, cropped where a 468-point mesh puts them.
    public func eyes(_ image: Image, mesh points: [Point3]) throws -> (left: EyeLandmarks, right: EyeLandmarks) {
        let rois = try Iris.rois(mesh: points)
        func eye(_ r: RotatedRect, mirrored: Bool) throws -> EyeLandmarks {
            let outs = try Autograd.noGrad { try iris([Iris.input(image, roi: r, mirrored: mirrored)]) }
            return try Iris.landmarks(contour: Self.output(outs, count: 3 * Iris.contourCount, of: iris),
                                      iris: Self.output(outs, count: 3 * Iris.irisCount, of: iris), roi: r, mirrored: mirrored)
        }
        return (try eye(rois.left, mirrored: false), try eye(rois.right, mirrored: true))
    }

    /// The structure expert: the 468 mesh points [468, 3] in image pixels as a differentiable
    /// function of `image` [1, 3, H, W] in 0…1, the crop kept where `at` put it (as for gaze).
    public func meshPoints(_ image: Tensor, at lm: FaceLandmarks) throws -> Tensor {
        let m = FaceMesh.inputSize
        let raw = try mesh([TensorCrops.crop(image, roi: lm.roi, width: m, height: m)])
        guard let out = raw.first(where: { $0.count == 3 * FaceMesh.pointCount }) else {
            throw FaceError("\(mesh.path): no output of \(3 * FaceMesh.pointCount) values")
        }
        return try TensorCrops.landmarks(out, roi: lm.roi, cropSize: m)
    }

    /// The gaze expert: `Gaze.features` [2, 2] (image-left eye, then right; horizontal,
    /// vertical) as a differentiable function of `image` [1, 3, H, W] in 0…1. The crops stay
    /// where `at` put them (a guidance step moves pixels, not the face), so gradients flow
    /// through the crops' sampling, both networks and the decoders, not through the crop placement.
    public func gazeFeatures(_ image: Tensor, at lm: FaceLandmarks) throws -> Tensor {
        let m = FaceMesh.inputSize, e = Iris.inputSize
        let meshRaw = try mesh([TensorCrops.crop(image, roi: lm.roi, width: m, height: m)])
        guard let meshOut = meshRaw.first(where: { $0.count == 3 * FaceMesh.pointCount }) else {
            throw FaceError("\(mesh.path): no output of \(3 * FaceMesh.pointCount) values", category: .model)
        }
        var points = [try TensorCrops.landmarks(meshOut, roi: lm.roi, cropSize: m)]
        let rois = try Iris.rois(mesh: lm.mesh)
        for (roi, mirrored) in [(rois.left, false), (rois.right, true)] {
            let outs = try iris([TensorCrops.eyeCrop(image, roi: roi, mirrored: mirrored)])
            guard let irisOut = outs.first(where: { $0.count == 3 * Iris.irisCount }) else {
                throw FaceError("\(iris.path): no output of \(3 * Iris.irisCount) values", category: .model)
            }
            points.append(try TensorCrops.landmarks(irisOut, roi: roi, cropSize: e, mirrored: mirrored))
        }
        return try Gaze.features(Tensor.concat(points, dim: 0))
    }
}

/// dlib's face recognition on a face's 5 points: chip, then the 128-d descriptor.
public final class FaceIdentity {
    public static let file = "dlib_face_recognition_resnet_model_v1.dat"
    /// dlib's threshold: descriptors closer than this are the same person.
    public static let samePersonThreshold = 0.6

    public let encoder: DlibFaceEncoder

    public init(encoder: DlibFaceEncoder) { self.encoder = encoder }

    public convenience init(store: ModelStore? = nil) throws {
        let store = try store ?? ModelStore.locate()
        try self.init(encoder: DlibFaceEncoder(path: store.installedPath(Self.file)))
    }

    /// The chip dlib would cut for `dlib5` points (MeshPoints.dlib5 order).
    public func chip(_ image: Image, dlib5: [Point]) throws -> Image {
        try DlibChip.details(points: dlib5, size: encoder.chipSize, padding: 0.25).extract(from: image)
    }

    public func descriptor(_ image: Image, dlib5: [Point]) throws -> [Float] {
        let x = try DlibChip.tensor([chip(image, dlib5: dlib5)])
        return try Autograd.noGrad { try encoder(x) }.values
    }

    /// The identity expert: the descriptor [1, 128] as a differentiable function of `image`
    /// [1, 3, H, W] in 0…1, the chip sampled bilinearly where dlib's would be. dlib first
    /// shrinks faces whose chip rectangle is over twice the chip's size with pyramid_down; this
    /// does not, so on such large faces it sees a sharper (slightly aliased) chip than dlib.
    public func descriptor(_ image: Tensor, dlib5: [Point]) throws -> Tensor {
        let s = encoder.chipSize
        let chip = try DlibChip.details(points: dlib5, size: s, padding: 0.25)
        let x = try TensorCrops.warp(image, chip.imageToChip(), width: s, height: s, range: 0...255, replicate: false)
        return try encoder(x.permuted(0, 3, 1, 2).contiguous())
    }

    public static func distance(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
    }
}
