import CVBridge
import GuiseImage
import GuiseVision

/// Face regions rasterised from the 468-point mesh.
public enum FaceRegion: String, CaseIterable, Sendable {
    /// Everything inside the face oval (forehead to chin, cheek to cheek).
    case face
    /// The oval minus eyes, brows, lips and inner mouth.
    case skin
    case brows
    case eyes
    case nose
    /// The lips with the mouth opening between them.
    case lips
    /// The opening between the inner lip edges.
    case mouth
}

/// Mesh index polygons, traced from MediaPipe's face_mesh_connections.py: each region's
/// connection pairs form two chains (upper and lower edge) that join into one closed outline.
public enum MeshRegions {
    /// FACEMESH_FACE_OVAL, clockwise from the forehead's top (10).
    public static let faceOval = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                                  152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
    /// FACEMESH_RIGHT_EYE (MediaPipe's "right" is the person's: the eye on the image's left).
    public static let imageLeftEye = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
    /// FACEMESH_LEFT_EYE, the eye on the image's right.
    public static let imageRightEye = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
    /// FACEMESH_RIGHT_EYEBROW: upper edge 70…107, then the lower edge 55…46 back.
    public static let imageLeftBrow = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
    /// FACEMESH_LEFT_EYEBROW: upper edge 300…336, then the lower edge 285…276 back.
    public static let imageRightBrow = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
    /// FACEMESH_LIPS outer edge: lower lip 61→291, then the upper lip back.
    public static let lipsOuter = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
    /// FACEMESH_LIPS inner edge: 78→308 along the lower lip, back along the upper.
    public static let lipsInner = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191]
    /// FACEMESH_NOSE's points (bridge 168…2 and the loop round the alae); the region is their convex hull.
    public static let nose = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64]
}

public enum FaceMasks {
    /// The region's mask at `width` × `height`, with mesh points in image pixels scaled by
    /// `scale` (mask pixels per image pixel, e.g. 0.5 for a half-size mask). Hard 0/1 edges, or,
    /// with `feather` > 0 (in mask pixels), blurred with σ = feather / 2.
    public static func mask(_ region: FaceRegion, mesh: [Point3], width: Int, height: Int, scale: Double = 1,
                            feather: Double = 0) throws -> Mask {
        guard mesh.count >= FaceMesh.pointCount else { throw FaceError("face masks need the 468-point mesh, got \(mesh.count) points") }
        guard width > 0, height > 0 else { throw FaceError("a mask needs a positive size, got \(width)x\(height)") }
        // Pixel centres sit at integers (OpenCV's convention), so a pixel's outer edge is at −0.5:
        // scaling maps edges to edges. fillPoly covers the pixels whose centres fall inside and
        // also every pixel its outline touches, so a hard region is grown by up to half a pixel;
        // parts cut from the skin are grown alike, so the skin never overlaps them.
        let pts = mesh.map { Point(($0.x + 0.5) * scale - 0.5, ($0.y + 0.5) * scale - 0.5) }
        func poly(_ idx: [Int]) -> [Point] { idx.map { pts[$0] } }
        var plane = [Float](repeating: 0, count: width * height)
        func fill(_ polys: [[Point]], _ value: Float) throws {
            let xy = polys.flatMap { $0.flatMap { [$0.x, $0.y] } }
            let counts = polys.map { Int32($0.count) }
            guard cvb_fill_polygons(&plane, Int32(width), Int32(height), xy, counts, Int32(polys.count), value) == 0 else {
                throw FaceError(String(cString: cvb_last_error()))
            }
        }
        let eyes = [poly(MeshRegions.imageLeftEye), poly(MeshRegions.imageRightEye)]
        let brows = [poly(MeshRegions.imageLeftBrow), poly(MeshRegions.imageRightBrow)]
        switch region {
        case .face: try fill([poly(MeshRegions.faceOval)], 1)
        case .skin:
            try fill([poly(MeshRegions.faceOval)], 1)
            try fill(eyes + brows + [poly(MeshRegions.lipsOuter)], 0)
        case .brows: try fill(brows, 1)
        case .eyes: try fill(eyes, 1)
        case .nose: try fill([convexHull(poly(MeshRegions.nose))], 1)
        case .lips: try fill([poly(MeshRegions.lipsOuter)], 1)
        case .mouth: try fill([poly(MeshRegions.lipsInner)], 1)
        }
        let m = Mask(width: width, height: height, values: plane)
        return feather > 0 ? try m.blurred(sigma: feather / 2) : m
    }

    /// Closed polygons (image pixels) filled hard-edged at `width` × `height`, with the same
    /// pixel convention as the mesh regions (centres at integers, outline pixels included).
    public static func polygons(_ polygons: [[Point]], width: Int, height: Int) throws -> Mask {
        guard width > 0, height > 0 else { throw FaceError("a mask needs a positive size, got \(width)x\(height)") }
        var plane = [Float](repeating: 0, count: width * height)
        let xy = polygons.flatMap { $0.flatMap { [$0.x, $0.y] } }
        let counts = polygons.map { Int32($0.count) }
        guard cvb_fill_polygons(&plane, Int32(width), Int32(height), xy, counts, Int32(polygons.count), 1) == 0 else {
            throw FaceError(String(cString: cvb_last_error()))
        }
        return Mask(width: width, height: height, values: plane)
    }

    /// Andrew's monotone chain; counter-clockwise on screen, no repeated end point.
    public static func convexHull(_ points: [Point]) -> [Point] {
        let p = points.sorted { $0.x != $1.x ? $0.x < $1.x : $0.y < $1.y }
        guard p.count > 2 else { return p }
        func cross(_ o: Point, _ a: Point, _ b: Point) -> Double { (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x) }
        var lower: [Point] = [], upper: [Point] = []
        for q in p {
            while lower.count >= 2 && cross(lower[lower.count - 2], lower[lower.count - 1], q) <= 0 { lower.removeLast() }
            lower.append(q)
        }
        for q in p.reversed() {
            while upper.count >= 2 && cross(upper[upper.count - 2], upper[upper.count - 1], q) <= 0 { upper.removeLast() }
            upper.append(q)
        }
        return Array(lower.dropLast() + upper.dropLast())
    }
}

/// Point sets derived from the mesh for tools that expect other layouts.
public enum MeshPoints {
    /// The iBUG 300-W 68-point layout (0-based: jaw 0–16, brows 17–26, nose 27–35, eyes 36–47,
    /// outer lips 48–59, inner lips 60–67) approximated by the nearest mesh vertices. This is the
    /// mapping circulated with MediaPipe-to-dlib converters; each entry was checked by drawing
    /// both on astronaut.png next to dlib's own 5-point corners (see the tests). The mesh has
    /// no vertex exactly on the 68-point jaw contour's ends, so 0/16 sit at the temples' lower edge.
    public static let ibug68 = [
        162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  // jaw
        71, 63, 105, 66, 107,  // brow on the image's left
        336, 296, 334, 293, 301,  // brow on the image's right
        168, 197, 5, 4,  // nose bridge
        75, 97, 2, 326, 305,  // nostrils
        33, 160, 158, 133, 153, 144,  // eye on the image's left
        362, 385, 387, 263, 373, 380,  // eye on the image's right
        61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  // outer lips
        78, 82, 13, 312, 308, 317, 14, 87,  // inner lips
    ]

    public static func ibug68(_ mesh: [Point3]) throws -> [Point] {
        guard mesh.count >= FaceMesh.pointCount else { throw FaceError("68 points need the 468-point mesh, got \(mesh.count)") }
        return ibug68.map { mesh[$0].xy }
    }

    /// Five named keypoints for `FaceAligner`: eye centres (the mean of each eye's contour, or
    /// the iris centres when given), the nose tip (1) and the mouth corners (61, 291).
    public static func fivePoints(_ mesh: [Point3], irisCentres: (left: Point, right: Point)? = nil) throws -> [String: Point] {
        guard mesh.count >= FaceMesh.pointCount else { throw FaceError("5 points need the 468-point mesh, got \(mesh.count)") }
        func mean(_ idx: [Int]) -> Point {
            Point(idx.map { mesh[$0].x }.reduce(0, +) / Double(idx.count), idx.map { mesh[$0].y }.reduce(0, +) / Double(idx.count))
        }
        return [
            KeypointName.leftEye: irisCentres?.left ?? mean(MeshRegions.imageLeftEye),
            KeypointName.rightEye: irisCentres?.right ?? mean(MeshRegions.imageRightEye),
            KeypointName.nose: mesh[1].xy,
            KeypointName.mouthLeft: mesh[61].xy,
            KeypointName.mouthRight: mesh[291].xy,
        ]
    }

    /// dlib's 5-point shape (shape_predictor_5_face_landmarks) in its part order: the image-right
    /// eye's outer (263) and inner (362) corners, the image-left eye's outer (33) and inner (133)
    /// corners, and the base of the nose between the nostrils (2, the 68-point layout's 33).
    public static let dlib5 = [263, 362, 33, 133, 2]

    public static func dlib5(_ mesh: [Point3]) throws -> [Point] {
        guard mesh.count >= FaceMesh.pointCount else { throw FaceError("5 points need the 468-point mesh, got \(mesh.count)") }
        return dlib5.map { mesh[$0].xy }
    }
}
