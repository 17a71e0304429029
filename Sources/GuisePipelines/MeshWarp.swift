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

    /// Renders `source` onto a `width` × `height` canvas: pixel centres inside a destination
    /// triangle sample the source bilinearly (edges replicated) at the affinely mapped point.
    /// Returns the canvas (black outside the triangles) and a coverage mask (1 inside).
    public func render(_ source: Image, from src: [Point], to dst: [Point], width: Int, height: Int) -> (image: Image, coverage: Mask) {
        render(source, triangles: triangles.map { (src[$0.0], src[$0.1], src[$0.2]) }, to: dst, width: width, height: height)
    }

    /// Per destination triangle, the source triangle it samples: its own vertices where the
    /// source shows that part of the face, or — where the source is turned away and the part is
    /// folded or squeezed to a sliver (its area under `minVisibility` of what the destination's
    /// would be at the source's scale) — the mirror-image triangle from the other half of the face,
    /// if that one is better seen. `mirror` pairs mesh points (−1: none); `scale` is source pixels
    /// per destination pixel.
    public func sourceTriangles(src: [Point], dst: [Point], mirror: [Int]?, scale: Double,
                                minVisibility: Double = 0.35) -> (triangles: [(Point, Point, Point)], mirrored: Int) {
        var out: [(Point, Point, Point)] = []
        var mirrored = 0
        let k = max(scale * scale, 1e-12)
        for (a, b, c) in triangles {
            let da = Delaunay.orientation(dst[a], dst[b], dst[c])
            let own = (src[a], src[b], src[c])
            guard let mirror, abs(da) > 1e-9, a < mirror.count, b < mirror.count, c < mirror.count else { out.append(own); continue }
            let visible = Delaunay.orientation(src[a], src[b], src[c]) / (da * k)
            let ma = mirror[a], mb = mirror[b], mc = mirror[c]
            guard visible < minVisibility, ma >= 0, mb >= 0, mc >= 0 else { out.append(own); continue }
            // A mirror image reverses the winding, so a well-seen mirror triangle has the opposite sign.
            let other = -Delaunay.orientation(src[ma], src[mb], src[mc]) / (da * k)
            // Only a decisive gain: where both halves are foreshortened alike (a nodding head)
            // flipping between them would patch the face with the other side's light and hair.
            if other > max(2 * visible, 2 * minVisibility) {
                out.append((src[ma], src[mb], src[mc]))
                mirrored += 1
            } else {
                out.append(own)
            }
        }
        return (out, mirrored)
    }

    /// `render` with the source triangle of each destination triangle given explicitly.
    public func render(_ source: Image, triangles sourceTriangles: [(Point, Point, Point)], to dst: [Point],
                       width: Int, height: Int) -> (image: Image, coverage: Mask) {
        precondition(sourceTriangles.count == triangles.count, "one source triangle per destination triangle")
        let n = width * height
        var rgb = [Float](repeating: 0, count: 3 * n)
        var cover = [Float](repeating: 0, count: n)
        let sw = source.width, sh = source.height, sn = source.pixelCount
        source.rgb.withUnsafeBufferPointer { s in
            for (t, (ia, ib, ic)) in triangles.enumerated() {
                let a = dst[ia], b = dst[ib], c = dst[ic]
                let area = Delaunay.orientation(a, b, c)
                guard abs(area) > 1e-9 else { continue }
                let (sa, sb, sc) = sourceTriangles[t]
                let x0 = max(0, Int((min(a.x, b.x, c.x)).rounded(.down))), x1 = min(width - 1, Int((max(a.x, b.x, c.x)).rounded(.up)))
                let y0 = max(0, Int((min(a.y, b.y, c.y)).rounded(.down))), y1 = min(height - 1, Int((max(a.y, b.y, c.y)).rounded(.up)))
                guard x0 <= x1, y0 <= y1 else { continue }
                // A pixel on an edge shared by two triangles belongs to the one whose barycentric
                // weights are all ≥ 0 first; a tiny tolerance closes cracks from rounding.
                let eps = -1e-7
                for y in y0...y1 {
                    let py = Double(y)
                    for x in x0...x1 {
                        let px = Double(x)
                        let q = Point(px, py)
                        let wa = Delaunay.orientation(b, c, q) / area
                        let wb = Delaunay.orientation(c, a, q) / area
                        let wc = 1 - wa - wb
                        guard wa >= eps, wb >= eps, wc >= eps else { continue }
                        let i = y * width + x
                        if cover[i] > 0 { continue }
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
        }
        return (Image(width: width, height: height, rgb: rgb), Mask(width: width, height: height, values: cover))
    }
}

/// Left–right symmetry of the face mesh, found from one face's own 3-D points: the mesh is
/// turned to face the camera (eye line along x, brow-to-chin along y), mirrored in x, and each
/// point paired with its nearest neighbour. MediaPipe's mesh is a deformed copy of a symmetric
/// canonical face, so on a near-frontal face this recovers its symmetric pairs; points on the
/// midline pair with themselves.
public enum MeshSymmetry {
    /// mirror[i] for the 468 mesh points (−1 where no consistent partner was found); nil when
    /// the points are degenerate.
    public static func pairs(_ mesh: [Point3]) -> [Int]? {
        guard mesh.count >= 468 else { return nil }
        let m = Array(mesh.prefix(468))
        func sub(_ a: Point3, _ b: Point3) -> (Double, Double, Double) { (a.x - b.x, a.y - b.y, a.z - b.z) }
        func norm(_ v: (Double, Double, Double)) -> (Double, Double, Double)? {
            let l = (v.0 * v.0 + v.1 * v.1 + v.2 * v.2).squareRoot()
            return l > 1e-9 ? (v.0 / l, v.1 / l, v.2 / l) : nil
        }
        func dot(_ a: (Double, Double, Double), _ b: (Double, Double, Double)) -> Double { a.0 * b.0 + a.1 * b.1 + a.2 * b.2 }
        // x: image-left eye's outer corner (33) to the image-right one's (263); y: forehead (10) to chin (152).
        guard let ex = norm(sub(m[263], m[33])) else { return nil }
        let down = sub(m[152], m[10])
        let d = dot(down, ex)
        guard let ey = norm((down.0 - d * ex.0, down.1 - d * ex.1, down.2 - d * ex.2)) else { return nil }
        let ez = (ex.1 * ey.2 - ex.2 * ey.1, ex.2 * ey.0 - ex.0 * ey.2, ex.0 * ey.1 - ex.1 * ey.0)
        // The midline: the mean x of the points, frontal coordinates relative to the nose bridge.
        let o = m[168]
        let f = m.map { p -> (Double, Double, Double) in let v = sub(p, o); return (dot(v, ex), dot(v, ey), dot(v, ez)) }
        let mid = f.map(\.0).reduce(0, +) / Double(f.count)
        let span = f.map { abs($0.0 - mid) }.max() ?? 0
        guard span > 1e-6 else { return nil }
        var mirror = [Int](repeating: 0, count: 468)
        for i in 0..<468 {
            let q = (2 * mid - f[i].0, f[i].1, f[i].2)
            var best = i, bestD = Double.infinity
            for j in 0..<468 {
                let dx = f[j].0 - q.0, dy = f[j].1 - q.1, dz = f[j].2 - q.2
                let dd = dx * dx + dy * dy + 0.25 * dz * dz
                if dd < bestD { bestD = dd; best = j }
            }
            mirror[i] = best
        }
        // Keep only pairs that agree both ways; the rest (and the irises beyond 468) are left
        // unpaired, and a triangle touching one is never mirrored.
        return (0..<468).map { mirror[mirror[$0]] == $0 ? mirror[$0] : -1 }
    }
}
