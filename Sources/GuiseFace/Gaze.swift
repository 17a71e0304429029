import GuiseImage
import GuiseVision
import GuiseTensor

/// Where the points of one eye sit in a landmark list.
public struct EyeIndices: Equatable, Sendable {
    /// The corners on the image's left and right; the eye's axis runs from `cornerLeft` to `cornerRight`.
    public var cornerLeft: Int
    public var cornerRight: Int
    public var upperLid: Int
    public var lowerLid: Int
    public var irisCentre: Int

    public init(cornerLeft: Int, cornerRight: Int, upperLid: Int, lowerLid: Int, irisCentre: Int) {
        self.cornerLeft = cornerLeft
        self.cornerRight = cornerRight
        self.upperLid = upperLid
        self.lowerLid = lowerLid
        self.irisCentre = irisCentre
    }

    var all: [Int] { [cornerLeft, cornerRight, upperLid, lowerLid, irisCentre] }
}

/// Gaze features: per eye, where the iris centre sits within the eye.
/// - horizontal: its position along the corner-to-corner axis from the corners' midpoint, in
///   eye widths (the corners are at −0.5 and +0.5; positive towards the image's right);
/// - vertical: its offset across that axis from the lids' midpoint, in eye heights (lid to
///   lid distance), positive downwards on an upright face.
/// Both are invariant to the face's position, size and in-plane rotation.
public enum Gaze {
    /// In the 478-point layout (mesh + iris, as MediaPipe's refined face mesh: 468 is the
    /// image-left eye's iris centre, 473 the image-right eye's), the image-left eye then the right.
    /// Lids: 159/145 and 386/374 are the middle of the upper and lower lid contours.
    public static let meshEyes = [
        EyeIndices(cornerLeft: 33, cornerRight: 133, upperLid: 159, lowerLid: 145, irisCentre: 468),
        EyeIndices(cornerLeft: 362, cornerRight: 263, upperLid: 386, lowerLid: 374, irisCentre: 473),
    ]

    /// The 478-point list `meshEyes` indexes: the mesh, then each eye's 5 iris points.
    public static func meshWithIrises(_ mesh: [Point3], left: EyeLandmarks, right: EyeLandmarks) -> [Point3] {
        mesh + left.iris + right.iris
    }

    /// Features [eyes.count, 2] (horizontal, vertical) of points [N, C ≥ 2] (x, y first). Built
    /// from differentiable tensor ops, so gradients flow back to the points (and through them
    /// to whatever network produced them).
    public static func features(_ points: Tensor, eyes: [EyeIndices] = meshEyes) throws -> Tensor {
        guard points.rank == 2, points.shape[1] >= 2 else { throw FaceError("gaze features need points [N, 2+], got \(points.shape)") }
        for e in eyes where e.all.contains(where: { $0 < 0 || $0 >= points.shape[0] }) {
            throw FaceError("eye indices \(e.all) fall outside \(points.shape[0]) points")
        }
        let xy = points.slice(dim: 1, start: 0, end: 2)
        func row(_ i: Int) -> Tensor { xy.slice(dim: 0, start: i, end: i + 1) }
        func dot(_ a: Tensor, _ b: Tensor) -> Tensor { (a * b).sum(dims: [1], keepDims: true) }
        var rows: [Tensor] = []
        for e in eyes {
            let l = row(e.cornerLeft), r = row(e.cornerRight)
            let axis = r - l
            let width2 = dot(axis, axis)
            let centre = (l + r) * 0.5
            let iris = row(e.irisCentre)
            let horizontal = dot(iris - centre, axis) / width2
            // The axis turned 90° clockwise on screen: "down" for a level eye.
            let normal = Tensor.concat([axis.slice(dim: 1, start: 1, end: 2) * -1, axis.slice(dim: 1, start: 0, end: 1)], dim: 1)
            let lids = (row(e.upperLid) + row(e.lowerLid)) * 0.5
            let lidGap = row(e.lowerLid) - row(e.upperLid)
            // |lidGap| · |axis|, so the projection on the unnormalised normal comes out in eye heights.
            let scale = (dot(lidGap, lidGap) * width2).sqrt()
            let vertical = dot(iris - lids, normal) / scale
            rows.append(Tensor.concat([horizontal, vertical], dim: 1))
        }
        return Tensor.concat(rows, dim: 0)
    }

    /// The same features from plain points, per eye (horizontal, vertical).
    public static func features(_ points: [Point], eyes: [EyeIndices] = meshEyes) throws -> [(horizontal: Double, vertical: Double)] {
        try eyes.map { e in
            guard !e.all.contains(where: { $0 < 0 || $0 >= points.count }) else {
                throw FaceError("eye indices \(e.all) fall outside \(points.count) points")
            }
            let l = points[e.cornerLeft], r = points[e.cornerRight], i = points[e.irisCentre]
            let up = points[e.upperLid], lo = points[e.lowerLid]
            let ax = r.x - l.x, ay = r.y - l.y
            let width2 = ax * ax + ay * ay
            let h = ((i.x - (l.x + r.x) / 2) * ax + (i.y - (l.y + r.y) / 2) * ay) / width2
            let gx = lo.x - up.x, gy = lo.y - up.y
            let v = ((i.x - (up.x + lo.x) / 2) * -ay + (i.y - (up.y + lo.y) / 2) * ax) / ((gx * gx + gy * gy) * width2).squareRoot()
            return (h, v)
        }
    }
}
