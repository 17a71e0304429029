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

    /// `mesh`: the source's points (with irises) in its own photo, z from the mesh network
    /// (smaller is nearer); `triangles`: the face's surface triangles, counter-clockwise when the
    /// face is seen from the front. Nil when the mesh cannot be turned to the front.
    init?(mesh: [Point3], triangles: [(Int, Int, Int)]) {
        let n = mesh.count
        guard n >= FaceMesh.pointCount, let frontal = MeshWarp.frontal(mesh, depth: MeshWarp.depths(mesh)) else { return nil }
        // Mirror partners: the nearest point to each point's reflection in the frontal frame,
        // whose x runs along the eye line from the nose bridge.
        mirror = frontal.map { p in
            var best = 0, bestD = Double.infinity
            for (j, q) in frontal.enumerated() {
                let d = (q.x + p.x) * (q.x + p.x) + (q.y - p.y) * (q.y - p.y)
                if d < bestD { bestD = d; best = j }
            }
            return best
        }
        let depth = MeshWarp.depths(mesh)
        // Facing: the area-weighted cosine between each triangle's normal and the view axis,
        // signed so a triangle turned away counts against its points.
        var facing = [Double](repeating: 0, count: n), weight = [Double](repeating: 0, count: n)
        for (a, b, c) in triangles {
            let ux = mesh[b].x - mesh[a].x, uy = mesh[b].y - mesh[a].y, uz = depth[b] - depth[a]
            let vx = mesh[c].x - mesh[a].x, vy = mesh[c].y - mesh[a].y, vz = depth[c] - depth[a]
            let cx = uy * vz - uz * vy, cy = uz * vx - ux * vz, cz = ux * vy - uy * vx
            let area = (cx * cx + cy * cy + cz * cz).squareRoot()
            guard area > 1e-9 else { continue }
            let projected = Delaunay.orientation(mesh[a].xy, mesh[b].xy, mesh[c].xy)
            for i in [a, b, c] { facing[i] += projected; weight[i] += area }
        }
        // Hidden: behind the nearest surface at every pixel round the point by more than a tenth
        // of the eye distance (a far cheek behind the nose).
        let iod = max(hypot(mesh[263].x - mesh[33].x, mesh[263].y - mesh[33].y), 1)
        let x0 = Int(mesh.map(\.x).min()!.rounded(.down)) - 1, y0 = Int(mesh.map(\.y).min()!.rounded(.down)) - 1
        let w = Int(mesh.map(\.x).max()!.rounded(.up)) - x0 + 2, h = Int(mesh.map(\.y).max()!.rounded(.up)) - y0 + 2
        var nearest = [Double](repeating: .infinity, count: max(0, w * h))
        let local = mesh.map { Point($0.x - Double(x0), $0.y - Double(y0)) }
        if w > 0, h > 0, w * h <= 16_000_000 {
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
            var front = -Double.infinity
            for yy in max(0, y - 1)...min(h - 1, max(0, y + 1)) where y + 1 >= 0 && y - 1 < h {
                for xx in max(0, x - 1)...min(w - 1, max(0, x + 1)) where x + 1 >= 0 && x - 1 < w {
                    let d = nearest[yy * w + xx]
                    front = max(front, d.isFinite ? d : .infinity)
                }
            }
            if front.isFinite { v *= 1 - Self.ramp(depth[i] - front, from: tolerance, to: 2 * tolerance) }
            return v
        }
        self.visibility = visibility
        mirrorWeight = Self.mirrorWeights(visibility: visibility, mirror: mirror, triangles: triangles)
    }

    /// Per point, the weight of the mirrored half: how decisively its partner is better seen,
    /// averaged over the point's neighbourhood on the mesh, so that only a broad stretch of face
    /// (a turned-away cheek) takes the other half, never a lone feature part (a nostril's wing
    /// behind the nose tip, whose mirror image lands a dark notch beside the real one).
    let mirrorWeight: [Double]

    static func mirrorWeights(visibility v: [Double], mirror: [Int], triangles: [(Int, Int, Int)]) -> [Double] {
        var w = v.indices.map { ramp(v[mirror[$0]] - v[$0], from: 0.3, to: 0.6) * (1 - ramp(v[$0], from: 0.25, to: 0.5)) }
        var neighbours = [Set<Int>](repeating: [], count: v.count)
        for (a, b, c) in triangles {
            neighbours[a].formUnion([b, c]); neighbours[b].formUnion([a, c]); neighbours[c].formUnion([a, b])
        }
        for _ in 0..<3 {
            w = w.indices.map { i in (w[i] + neighbours[i].reduce(0) { $0 + w[$1] }) / Double(1 + neighbours[i].count) }
        }
        return w.map { ramp($0, from: 0.25, to: 0.5) }
    }

    /// Whether any point would take its mirror image.
    var mirrors: Bool { mirrorWeight.contains { $0 > 0 } }

    static func ramp(_ x: Double, from a: Double, to b: Double) -> Double {
        let t = min(max((x - a) / (b - a), 0), 1)
        return t * t * (3 - 2 * t)
    }
}
