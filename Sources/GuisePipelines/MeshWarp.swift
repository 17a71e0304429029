import func Foundation.hypot
import GuiseFace
import GuiseImage
import GuiseVision

/// Delaunay triangulation of a point set (Bowyer–Watson). The face mesh has 468 points, so
/// the plain O(n²) algorithm costs well under a millisecond and needs no spatial index.
public enum Delaunay {
    /// Triangles as index triples into `points`, each counter-clockwise in a y-down frame as
    /// seen on screen (positive signed area in the maths convention of `orientation`).
    /// Duplicate points are triangulated once (the later copies are left out).
    public static func triangulate(_ points: [Point]) -> [(Int, Int, Int)] {
        guard points.count >= 3 else { return [] }
        let xs = points.map(\.x), ys = points.map(\.y)
        let minX = xs.min()!, maxX = xs.max()!, minY = ys.min()!, maxY = ys.max()!
        let span = max(maxX - minX, maxY - minY, 1)
        let cx = (minX + maxX) / 2, cy = (minY + maxY) / 2
        // A super-triangle far enough out that its vertices never lie in a real triangle's circumcircle.
        var p = points
        p.append(Point(cx - 40 * span, cy - 30 * span))
        p.append(Point(cx + 40 * span, cy - 30 * span))
        p.append(Point(cx, cy + 40 * span))
        let n = points.count

        struct Tri {
            var a: Int, b: Int, c: Int
            var ccx: Double, ccy: Double, r2: Double
        }
        func make(_ a: Int, _ b: Int, _ c: Int) -> Tri? {
            // Order counter-clockwise so every stored triangle has the same orientation.
            var (a, b, c) = (a, b, c)
            if orientation(p[a], p[b], p[c]) < 0 { swap(&b, &c) }
            let ax = p[a].x, ay = p[a].y, bx = p[b].x, by = p[b].y, qx = p[c].x, qy = p[c].y
            let d = 2 * (ax * (by - qy) + bx * (qy - ay) + qx * (ay - by))
            guard abs(d) > 1e-12 else { return nil }
            let a2 = ax * ax + ay * ay, b2 = bx * bx + by * by, c2 = qx * qx + qy * qy
            let ux = (a2 * (by - qy) + b2 * (qy - ay) + c2 * (ay - by)) / d
            let uy = (a2 * (qx - bx) + b2 * (ax - qx) + c2 * (bx - ax)) / d
            return Tri(a: a, b: b, c: c, ccx: ux, ccy: uy, r2: (ax - ux) * (ax - ux) + (ay - uy) * (ay - uy))
        }
        var tris = [make(n, n + 1, n + 2)!]
        var seen = Set<[Double]>()
        for i in 0..<n {
            guard seen.insert([p[i].x, p[i].y]).inserted else { continue }
            let q = p[i]
            var bad: [Int] = []
            for (k, t) in tris.enumerated() {
                let dx = q.x - t.ccx, dy = q.y - t.ccy
                if dx * dx + dy * dy < t.r2 * (1 + 1e-12) { bad.append(k) }
            }
            // The cavity's boundary: edges of bad triangles that only one bad triangle has.
            var edgeCount: [Int: (Int, Int, Int)] = [:]
            for k in bad {
                let t = tris[k]
                for (u, v) in [(t.a, t.b), (t.b, t.c), (t.c, t.a)] {
                    let key = min(u, v) * (n + 3) + max(u, v)
                    edgeCount[key] = (u, v, (edgeCount[key]?.2 ?? 0) + 1)
                }
            }
            for k in bad.sorted(by: >) { tris.remove(at: k) }
            for (_, e) in edgeCount.sorted(by: { $0.key < $1.key }) where e.2 == 1 {
                if let t = make(e.0, e.1, i) { tris.append(t) }
            }
        }
        return tris.filter { $0.a < n && $0.b < n && $0.c < n }.map { ($0.a, $0.b, $0.c) }
    }

    /// Twice the signed area of (a, b, c): positive when counter-clockwise in x-right, y-up terms.
    @inline(__always)
    public static func orientation(_ a: Point, _ b: Point, _ c: Point) -> Double {
        (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
    }
}

/// A piecewise-affine warp: each triangle of the destination points takes its pixels from the
/// matching triangle of the source points, so every landmark lands exactly on its destination.
public struct MeshWarp {
    public let triangles: [(Int, Int, Int)]

    /// Triangles of the destination points (a Delaunay triangulation, so they never overlap).
    public init(destination: [Point]) {
        triangles = Delaunay.triangulate(destination)
    }

    public init(triangles: [(Int, Int, Int)]) {
        self.triangles = triangles
    }

    /// Triangles of the face's own surface: a Delaunay triangulation of the meshes seen from the
    /// front (each turned to face the camera, scaled to one eye distance, then averaged), every
    /// triangle counter-clockwise there. Triangulating a turned face's points as they lie in the
    /// photo would join points that are far apart on the face wherever the far cheek hides behind
    /// the nose (cheek to nose ridge to lip corner); the same triangle in another photo then covers
    /// a different stretch of face, often turned over, and the warp draws mirrored slivers of nose
    /// and lip there. Triangles of the surface fold with the face instead, and `render` with
    /// depths draws the nearer layer. Nil when no mesh can be turned to the front. Points in
    /// `leavingOut` are in no triangle.
    public init?(surface meshes: [[Point3]], leavingOut: Set<Int> = []) {
        guard let count = meshes.map(\.count).min(), count >= FaceMesh.pointCount else { return nil }
        var sum = [Point](repeating: Point(0, 0), count: count)
        var used = 0
        for m in meshes {
            guard let f = Self.frontal(Array(m.prefix(count)), depth: Self.depths(Array(m.prefix(count)))) else { continue }
            let iod = max(hypot(f[263].x - f[33].x, f[263].y - f[33].y), 1e-9)
            for i in 0..<count { sum[i] = Point(sum[i].x + f[i].x / iod, sum[i].y + f[i].y / iod) }
            used += 1
        }
        guard used > 0 else { return nil }
        // Delaunay leaves out the later copy of a repeated point; on an averaged mesh none repeat.
        let keep = (0..<count).filter { !leavingOut.contains($0) }
        let tri = Delaunay.triangulate(keep.map { Point(sum[$0].x / Double(used), sum[$0].y / Double(used)) })
        triangles = tri.map { (keep[$0.0], keep[$0.1], keep[$0.2]) }
    }

    /// The points turned to face the camera: x along the eye line (image-left eye's outer corner
    /// 33 to the other's 263), y from forehead (10) to chin (152), z away from the camera, all
    /// relative to the nose bridge (168); `depth` overrides the points' own z. Nil when the
    /// points are degenerate.
    public static func frontal(_ points: [Point3], depth: [Double]? = nil) -> [Point3]? {
        guard points.count >= 468 else { return nil }
        let m = depth.map { d in points.enumerated().map { Point3($1.x, $1.y, d[$0]) } } ?? points
        func sub(_ a: Point3, _ b: Point3) -> (Double, Double, Double) { (a.x - b.x, a.y - b.y, a.z - b.z) }
        func norm(_ v: (Double, Double, Double)) -> (Double, Double, Double)? {
            let l = (v.0 * v.0 + v.1 * v.1 + v.2 * v.2).squareRoot()
            return l > 1e-9 ? (v.0 / l, v.1 / l, v.2 / l) : nil
        }
        func dot(_ a: (Double, Double, Double), _ b: (Double, Double, Double)) -> Double { a.0 * b.0 + a.1 * b.1 + a.2 * b.2 }
        guard let ex = norm(sub(m[263], m[33])) else { return nil }
        let down = sub(m[152], m[10])
        let d = dot(down, ex)
        guard let ey = norm((down.0 - d * ex.0, down.1 - d * ex.1, down.2 - d * ex.2)) else { return nil }
        let ez = (ex.1 * ey.2 - ex.2 * ey.1, ex.2 * ey.0 - ex.0 * ey.2, ex.0 * ey.1 - ex.1 * ey.0)
        let o = m[168]
        return m.map { p in let v = sub(p, o); return Point3(dot(v, ex), dot(v, ey), dot(v, ez)) }
    }

    /// Each point's depth (smaller is nearer the camera): the mesh's own z, and for points past
    /// the 468 (the irises, whose z the iris network gives in its own frame) the z of the nearest
    /// mesh point in the image.
    public static func depths(_ points: [Point3]) -> [Double] {
        let n = min(points.count, FaceMesh.pointCount)
        return points.enumerated().map { i, p in
            guard i >= n else { return p.z }
            var best = 0, bestD = Double.infinity
            for j in 0..<n {
                let d = (points[j].x - p.x) * (points[j].x - p.x) + (points[j].y - p.y) * (points[j].y - p.y)
                if d < bestD { bestD = d; best = j }
            }
            return points[best].z
        }
    }

    /// Renders `source` onto a `width` × `height` canvas: pixel centres inside a destination
    /// triangle sample the source bilinearly (edges replicated) at the affinely mapped point.
    /// Returns the canvas (black outside the triangles) and a coverage mask (1 inside).
    public func render(_ source: Image, from src: [Point], to dst: [Point], depth: [Double]? = nil,
                       width: Int, height: Int) -> (image: Image, coverage: Mask) {
        render(source, triangles: triangles.map { (src[$0.0], src[$0.1], src[$0.2]) }, to: dst, depth: depth, width: width, height: height)
    }

    /// A value per destination point, interpolated across each triangle (the nearest layer where
    /// `depth` is given, as `render` draws it); 0 outside the triangles.
    public func renderField(_ values: [Float], to dst: [Point], depth: [Double]? = nil, width: Int, height: Int) -> [Float] {
        precondition(values.count >= dst.count, "one value per destination point")
        var out = [Float](repeating: 0, count: width * height)
        var nearest = [Double](repeating: .infinity, count: width * height)
        for (ia, ib, ic) in triangles {
            Self.rasterise(dst[ia], dst[ib], dst[ic], width: width, height: height) { i, wa, wb, wc in
                let d = depth.map { wa * $0[ia] + wb * $0[ib] + wc * $0[ic] } ?? 0
                guard depth == nil ? nearest[i] == .infinity : d < nearest[i] else { return }
                nearest[i] = d
                out[i] = Float(wa) * values[ia] + Float(wb) * values[ib] + Float(wc) * values[ic]
            }
        }
        return out
    }

    /// Calls `body(pixel index, wa, wb, wc)` for every pixel centre of a `width` × `height` grid
    /// inside triangle (a, b, c), with its barycentric weights; a tiny tolerance keeps pixels on
    /// an edge, so neighbouring triangles leave no crack from rounding.
    @inline(__always)
    static func rasterise(_ a: Point, _ b: Point, _ c: Point, width: Int, height: Int,
                          _ body: (Int, Double, Double, Double) -> Void) {
        let area = Delaunay.orientation(a, b, c)
        guard abs(area) > 1e-9, a.x.isFinite, b.x.isFinite, c.x.isFinite, a.y.isFinite, b.y.isFinite, c.y.isFinite else { return }
        let x0 = max(0, Int((min(a.x, b.x, c.x)).rounded(.down))), x1 = min(width - 1, Int((max(a.x, b.x, c.x)).rounded(.up)))
        let y0 = max(0, Int((min(a.y, b.y, c.y)).rounded(.down))), y1 = min(height - 1, Int((max(a.y, b.y, c.y)).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return }
        let eps = -1e-7
        for y in y0...y1 {
            for x in x0...x1 {
                let q = Point(Double(x), Double(y))
                let wa = Delaunay.orientation(b, c, q) / area
                let wb = Delaunay.orientation(c, a, q) / area
                let wc = 1 - wa - wb
                guard wa >= eps, wb >= eps, wc >= eps else { continue }
                body(y * width + x, wa, wb, wc)
            }
        }
    }

    /// `render` with the source triangle of each destination triangle given explicitly. With
    /// `depth` (per destination point, smaller is nearer) a pixel that several triangles cover
    /// shows the nearest, as where a turned face's nose hides its far cheek; without it, the
    /// first triangle drawn.
    public func render(_ source: Image, triangles sourceTriangles: [(Point, Point, Point)], to dst: [Point],
                       depth: [Double]? = nil, width: Int, height: Int) -> (image: Image, coverage: Mask) {
        precondition(sourceTriangles.count == triangles.count, "one source triangle per destination triangle")
        precondition(depth == nil || depth!.count >= dst.count, "one depth per destination point")
        let n = width * height
        var rgb = [Float](repeating: 0, count: 3 * n)
        var cover = [Float](repeating: 0, count: n)
        var nearest = [Double](repeating: .infinity, count: depth == nil ? 0 : n)
        let sw = source.width, sh = source.height, sn = source.pixelCount
        source.rgb.withUnsafeBufferPointer { s in
            for (t, (ia, ib, ic)) in triangles.enumerated() {
                let (sa, sb, sc) = sourceTriangles[t]
                Self.rasterise(dst[ia], dst[ib], dst[ic], width: width, height: height) { i, wa, wb, wc in
                    if let depth {
                        let d = wa * depth[ia] + wb * depth[ib] + wc * depth[ic]
                        guard d < nearest[i] else { return }
                        nearest[i] = d
                    } else if cover[i] > 0 {
                        return
                    }
                    let sx = wa * sa.x + wb * sb.x + wc * sc.x
                    let sy = wa * sa.y + wb * sb.y + wc * sc.y
                    // Bilinear, edge-replicated.
                    let fx = min(max(sx, 0), Double(sw - 1)), fy = min(max(sy, 0), Double(sh - 1))
                    let ix = min(Int(fx), sw - 2 < 0 ? 0 : sw - 2), iy = min(Int(fy), sh - 2 < 0 ? 0 : sh - 2)
                    let tx = Float(fx - Double(ix)), ty = Float(fy - Double(iy))
                    let ix1 = min(ix + 1, sw - 1), iy1 = min(iy + 1, sh - 1)
                    for ch in 0..<3 {
                        let o = ch * sn
                        let v00 = s[o + iy * sw + ix], v01 = s[o + iy * sw + ix1]
                        let v10 = s[o + iy1 * sw + ix], v11 = s[o + iy1 * sw + ix1]
                        let top = v00 + (v01 - v00) * tx, bottom = v10 + (v11 - v10) * tx
                        rgb[ch * n + i] = top + (bottom - top) * ty
                    }
                    cover[i] = 1
                }
            }
        }
        return (Image(width: width, height: height, rgb: rgb), Mask(width: width, height: height, values: cover))
    }
}
