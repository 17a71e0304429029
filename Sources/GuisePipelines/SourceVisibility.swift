import Foundation
import GuiseFace
import GuiseImage
import GuiseVision

/// How well a source photo shows each point of its face, and the point on the other half of
/// the face that mirrors it. A source turned away shows its far cheek foreshortened to a sliver,
/// partly hidden behind the nose, its outline running into hair or background: warping that
/// sliver onto a frontal target stretches it into smears and pastes the background in. Where the
/// mirrored point is decisively better seen, the warp takes the face's other half, flipped.
struct SourceVisibility {
    /// Per mesh point, in [0, 1]: how squarely the surface round it faces the camera (the
    /// cosine of its turn, ramped from 0.05 to 0.25: a cheek seen at 70° is still a fair
    /// picture of it), zero where a nearer part of the face hides it.
    let visibility: [Double]
    /// Per mesh point, its mirror image across the face's midline (itself on the midline).
    let mirror: [Int]
    /// Per point, the weight of the mirrored half: how decisively its partner is better seen,
    /// averaged over the point's neighbourhood on the mesh, so that only a broad stretch of face
    /// (a turned-away cheek) takes the other half, never a lone feature part (a nostril's wing
    /// behind the nose tip, whose mirror image lands a dark notch beside the real one).
    let mirrorWeight: [Double]
    /// Per mesh point, the points it shares a triangle with.
    let neighbours: [Set<Int>]
    /// Per mesh point, whether it lies on the face's midline (within 3 % of the eye distance of
    /// it, seen from the front), where no other half can stand in.
    let midline: [Bool]
    /// Per mesh point, whether one of its triangles is turned away from the camera: the face
    /// folds over there, and the point lies on the face's outline in the photo.
    let onFold: [Bool]

    /// `mesh`: the source's points (with irises) in its own photo, z from the mesh network
    /// (smaller is nearer); `triangles`: the face's surface triangles, counter-clockwise when the
    /// face is seen from the front. Nil when the mesh cannot be turned to the front.
    init?(mesh: [Point3], triangles: [(Int, Int, Int)]) {
        let n = mesh.count
        guard n >= FaceMesh.pointCount, let frontal = MeshWarp.frontal(mesh, depth: MeshWarp.depths(mesh)) else { return nil }
        // Mirror partners: the nearest point to each point's reflection across the frame's
        // x = 0 (its x runs along the eye line from the nose bridge). Reflecting in the plane
        // fitted to the midline below paired worse on the evaluation's turned faces (mean dlib
        // distance of t1_e's swaps 0.59 against 0.54).
        mirror = frontal.map { p in
            var best = 0, bestD = Double.infinity
            for (j, q) in frontal.enumerated() {
                let d = (q.x + p.x) * (q.x + p.x) + (q.y - p.y) * (q.y - p.y)
                if d < bestD { bestD = d; best = j }
            }
            return best
        }
        // The midline: within 3 % of the eye distance of the plane x = a·y + b·z + c fitted
        // through the forehead's top, the nose bridge, the nose tip and the chin (10, 168, 1,
        // 152). For a face seen near profile (its depths estimated) the frame's x = 0 is skewed
        // against it by several percent of the eye distance.
        let plane = Self.midlinePlane([10, 168, 1, 152].map { frontal[$0] })
        let frontalEyes = max(hypot(frontal[263].x - frontal[33].x, frontal[263].y - frontal[33].y), 1e-9)
        midline = frontal.map { abs($0.x - (plane.a * $0.y + plane.b * $0.z + plane.c)) < 0.03 * frontalEyes }
        let depth = MeshWarp.depths(mesh)
        // Facing: the area-weighted cosine between each triangle's normal and the view axis,
        // signed so a triangle turned away counts against its points.
        var facing = [Double](repeating: 0, count: n), weight = [Double](repeating: 0, count: n)
        var fold = [Bool](repeating: false, count: n)
        for (a, b, c) in triangles {
            let ux = mesh[b].x - mesh[a].x, uy = mesh[b].y - mesh[a].y, uz = depth[b] - depth[a]
            let vx = mesh[c].x - mesh[a].x, vy = mesh[c].y - mesh[a].y, vz = depth[c] - depth[a]
            let cx = uy * vz - uz * vy, cy = uz * vx - ux * vz, cz = ux * vy - uy * vx
            let area = (cx * cx + cy * cy + cz * cz).squareRoot()
            guard area > 1e-9 else { continue }
            let projected = Delaunay.orientation(mesh[a].xy, mesh[b].xy, mesh[c].xy)
            for i in [a, b, c] {
                facing[i] += projected; weight[i] += area
                if projected < -0.05 * area { fold[i] = true }
            }
        }
        onFold = fold
        var links = [Set<Int>](repeating: [], count: n)
        for (a, b, c) in triangles {
            links[a].formUnion([b, c]); links[b].formUnion([a, c]); links[c].formUnion([a, b])
        }
        neighbours = links
        // Hidden: behind the nearest surface at every pixel round the point by more than a tenth
        // of the eye distance (a far cheek behind the nose).
        let iod = max(hypot(mesh[263].x - mesh[33].x, mesh[263].y - mesh[33].y), 1)
        let x0 = Int(mesh.map(\.x).min()!.rounded(.down)) - 1, y0 = Int(mesh.map(\.y).min()!.rounded(.down)) - 1
        let w = Int(mesh.map(\.x).max()!.rounded(.up)) - x0 + 2, h = Int(mesh.map(\.y).max()!.rounded(.up)) - y0 + 2
        // No depth buffer (nothing counted hidden) for a face spanning more than 16 M pixels.
        let buffered = w > 0 && h > 0 && w * h <= 16_000_000
        var nearest = [Double](repeating: .infinity, count: buffered ? w * h : 0)
        let local = mesh.map { Point($0.x - Double(x0), $0.y - Double(y0)) }
        if buffered {
            for (a, b, c) in triangles {
                MeshWarp.rasterise(local[a], local[b], local[c], width: w, height: h) { i, wa, wb, wc in
                    nearest[i] = min(nearest[i], wa * depth[a] + wb * depth[b] + wc * depth[c])
                }
            }
        }
        let tolerance = 0.1 * iod
        let visibility = (0..<n).map { i in
            let cosine = weight[i] > 0 ? facing[i] / weight[i] : 0
            var v = Self.ramp(cosine, from: 0.05, to: 0.25)
            // The farthest surface among the pixels round the point: a point on the nose's own
            // silhouette has a pixel beside it where nothing nearer lies.
            let x = Int(local[i].x.rounded()), y = Int(local[i].y.rounded())
            let (xs, ys) = (max(0, x - 1)...max(0, min(w - 1, x + 1)), max(0, y - 1)...max(0, min(h - 1, y + 1)))
            guard nearest.count == w * h, xs.upperBound >= xs.lowerBound, ys.upperBound >= ys.lowerBound else { return v }
            var front = -Double.infinity
            for yy in ys { for xx in xs { front = max(front, nearest[yy * w + xx]) } }
            // An uncovered pixel beside it (infinitely far) leaves the point in view.
            if front.isFinite { v *= 1 - Self.ramp(depth[i] - front, from: tolerance, to: 2 * tolerance) }
            return v
        }
        self.visibility = visibility
        var weights = Self.mirrorWeights(visibility: visibility, mirror: mirror, neighbours: links)
        // The nose takes its other half only when the whole face is turned far (a fifth or more
        // of it mirrored): a face turned a little or looking down shows its far nostril's wing
        // foreshortened but whole, and the near nostril flipped onto it left a dark notch.
        let share = weights.reduce(0, +) / Double(max(1, weights.count))
        let noseWeight = Self.ramp(share, from: 0.15, to: 0.25)
        if noseWeight < 1 {
            let hull = FaceMasks.convexHull(MeshRegions.nose.map { Point(frontal[$0].x, frontal[$0].y) })
            for i in weights.indices where Self.inside(Point(frontal[i].x, frontal[i].y), convex: hull) { weights[i] *= noseWeight }
        }
        mirrorWeight = weights
    }

    /// Whether `p` lies inside the convex polygon `hull` (either winding).
    static func inside(_ p: Point, convex hull: [Point]) -> Bool {
        guard hull.count >= 3 else { return false }
        var sign = 0.0
        for k in hull.indices {
            let a = hull[k], b = hull[(k + 1) % hull.count]
            let o = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
            if o == 0 { continue }
            if sign == 0 { sign = o } else if (o > 0) != (sign > 0) { return false }
        }
        return true
    }

    /// Least squares x = a·y + b·z + c through `points` (a ridge regularisation keeps a and b
    /// small when the points are nearly collinear).
    static func midlinePlane(_ points: [Point3]) -> (a: Double, b: Double, c: Double) {
        let m = Double(points.count)
        let my = points.map(\.y).reduce(0, +) / m, mz = points.map(\.z).reduce(0, +) / m, mx = points.map(\.x).reduce(0, +) / m
        var syy = 0.0, szz = 0.0, syz = 0.0, sxy = 0.0, sxz = 0.0
        for p in points {
            let y = p.y - my, z = p.z - mz, x = p.x - mx
            syy += y * y; szz += z * z; syz += y * z; sxy += x * y; sxz += x * z
        }
        let ridge = 1e-3 * max(syy + szz, 1e-12)
        syy += ridge; szz += ridge
        let det = syy * szz - syz * syz
        guard abs(det) > 1e-12 else { return (0, 0, mx) }
        let a = (sxy * szz - sxz * syz) / det, b = (sxz * syy - sxy * syz) / det
        return (a, b, mx - a * my - b * mz)
    }

    static func mirrorWeights(visibility v: [Double], mirror: [Int], neighbours: [Set<Int>]) -> [Double] {
        var w = v.indices.map { ramp(v[mirror[$0]] - v[$0], from: 0.3, to: 0.6) * (1 - ramp(v[$0], from: 0.25, to: 0.5)) }
        for _ in 0..<3 {
            w = w.indices.map { i in (w[i] + neighbours[i].reduce(0) { $0 + w[$1] }) / Double(1 + neighbours[i].count) }
        }
        return w.map { ramp($0, from: 0.25, to: 0.5) }
    }

    /// `points` (the source's mesh in the photo it is sampled from) with each midline point on
    /// a fold (a profile's nose ridge and tip, which lie on the face's outline in the photo)
    /// moved halfway towards its neighbours that are not on a fold, so it samples the nose's
    /// near side, not the background just past the outline; the mirror cannot stand in on the
    /// midline. Points off the midline stay. Meant for a face turned far enough to be mirrored:
    /// a frontal face folds too, under its nose tip, which is its own.
    func sampledInside(_ points: [Point]) -> [Point] {
        var out = points
        for i in points.indices where i < onFold.count && onFold[i] && midline[i] {
            let inner = neighbours[i].filter { !onFold[$0] && $0 < points.count }
            guard !inner.isEmpty else { continue }
            let c = Point(inner.map { points[$0].x }.reduce(0, +) / Double(inner.count),
                          inner.map { points[$0].y }.reduce(0, +) / Double(inner.count))
            out[i] = Point((points[i].x + c.x) / 2, (points[i].y + c.y) / 2)
        }
        return out
    }

    /// Whether any point would take its mirror image.
    var mirrors: Bool { mirrorWeight.contains { $0 > 0 } }

    static func ramp(_ x: Double, from a: Double, to b: Double) -> Double {
        let t = min(max((x - a) / (b - a), 0), 1)
        return t * t * (3 - 2 * t)
    }
}
