import Foundation
import GuiseFace
import GuiseImage
import GuiseVision

/// The target's lower face outline (the widths of cheeks and jaw) moved towards the source's
/// proportions, by a smooth displacement of the target photo itself. The inner features (eyes, brows, nose,
/// mouth) are held still, so the target's expression stays where it was, and the outline above
/// the eyes (temples, forehead, hairline) stays too. Outside the face the displacement fades to
/// nothing over a band: where the face narrows, the background, neck or hair next to it is
/// stretched in over the old cheek; where it widens, they are pushed out. Beyond the band the
/// photo is untouched.
///
/// A face's silhouette is part of who it is (a wide jaw, full cheeks), and the inner-face mask
/// keeps the target's; this runs before the source is warped in, so the warp and the mask
/// follow the new outline.
struct FaceOutline {
    /// Mesh points held still: eye corners and lids, brows, the nose and the lips.
    static let held = [33, 133, 159, 145, 362, 263, 386, 374,
                       70, 105, 107, 336, 334, 300,
                       168, 6, 197, 195, 5, 4, 1, 2, 98, 327,
                       61, 291, 0, 17, 13, 14, 37, 267, 84, 314]
    /// Points that fix where a face is and how it is turned, for comparing two faces' outlines:
    /// the eye corners and the line of the nose (rigid, whatever the expression).
    static let anchors = [33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1]
    /// The furthest an outline point moves, as a fraction of the face width.
    static let maxShift = 0.04
    /// The band outside the face (old outline and new together) over which the displacement
    /// fades out, as a fraction of the face width. With `maxShift` it keeps every change within
    /// 12 % of the face width of the target's outline.
    static let band = 0.08

    /// Where the outline points (`MeshRegions.faceOval`, in order) are moved to.
    let old: [Point]
    let new: [Point]
    let forward: ThinPlateSpline
    let backward: ThinPlateSpline
    let bandWidth: Double

    /// The outline of `target` (mesh points in the pixels the result is drawn in) moved
    /// `strength` of the way towards `source`'s (any pixels: the source face is fitted onto the
    /// target's by a 3-D similarity on the eyes and nose, so its outline is compared in the
    /// target's pose and scale). nil when nothing would move.
    init?(target: [Point3], source: [Point3], strength: Double, faceWidth: Double) throws {
        guard strength > 0, target.count >= FaceMesh.pointCount, source.count >= FaceMesh.pointCount, faceWidth > 0 else { return nil }
        let moved = FaceOutline.targets(target: target, source: source, strength: strength, faceWidth: faceWidth)
        old = MeshRegions.faceOval.map { target[$0].xy }
        new = moved
        guard zip(old, new).contains(where: { hypot($0.x - $1.x, $0.y - $1.y) > 0.01 }) else { return nil }
        let heldPoints = FaceOutline.held.map { target[$0].xy }
        forward = try ThinPlateSpline(from: old + heldPoints, to: new + heldPoints, regularisation: 1e-6)
        backward = try ThinPlateSpline(from: new + heldPoints, to: old + heldPoints, regularisation: 1e-6)
        bandWidth = FaceOutline.band * faceWidth
    }

    /// Where each outline point goes (in `MeshRegions.faceOval` order).
    static func targets(target: [Point3], source: [Point3], strength: Double, faceWidth: Double) -> [Point] {
        let fit = similarity3(anchors.map { source[$0] }, anchors.map { target[$0] })
        let oval = MeshRegions.faceOval
        let n = oval.count
        let t = oval.map { target[$0].xy }
        let s = oval.map { fit(source[$0]).xy }
        // The face's own frame: down is perpendicular to the eye line, towards the chin.
        let le = target[33].xy, re = target[263].xy
        let el = max(hypot(re.x - le.x, re.y - le.y), 1e-6)
        var down = Point(-(re.y - le.y) / el, (re.x - le.x) / el)
        let eyes = Point((le.x + re.x) / 2, (le.y + re.y) / 2)
        func depth(_ p: Point) -> Double { (p.x - eyes.x) * down.x + (p.y - eyes.y) * down.y }
        if depth(target[152].xy) < 0 { down = Point(-down.x, -down.y) }
        let across = Point((re.x - le.x) / el, (re.y - le.y) / el)
        var d = [Point](repeating: Point(0, 0), count: n)
        for i in 0..<n {
            let h = depth(t[i])
            var v = Point(s[i].x - t[i].x, s[i].y - t[i].y)
            // Only the lower face: nothing at the eyes' level and above (temples, hairline),
            // all of it from half an eye distance below them.
            let u = min(max(h / (0.5 * el), 0), 1)
            let w = u * u * (3 - 2 * u)
            v = Point(v.x * w, v.y * w)
            // Only sideways, along the eye line: the face's widths (cheeks, jaw) follow the
            // source; its length does not, since a chin moved up or down reads as the head
            // tilted and changes where the target's head looks. And only where the outline runs
            // up and down (weight: the square of its normal's sideways part), so the points under
            // the chin do not slide along it.
            let a = t[(i + n - 1) % n], b = t[(i + 1) % n]
            let tl = max(hypot(b.x - a.x, b.y - a.y), 1e-9)
            let normalSide = (b.y - a.y) / tl * across.x - (b.x - a.x) / tl * across.y
            let side = (v.x * across.x + v.y * across.y) * normalSide * normalSide
            d[i] = Point(side * across.x, side * across.y)
        }
        // Mesh noise along the outline would put bumps in it.
        for _ in 0..<2 {
            d = (0..<n).map { i in
                let a = d[(i + n - 1) % n], b = d[i], c = d[(i + 1) % n]
                return Point((a.x + 2 * b.x + c.x) / 4, (a.y + 2 * b.y + c.y) / 4)
            }
        }
        let cap = maxShift * faceWidth
        return (0..<n).map { i in
            var v = Point(strength * d[i].x, strength * d[i].y)
            let l = hypot(v.x, v.y)
            if l > cap { v = Point(v.x * cap / l, v.y * cap / l) }
            return Point(t[i].x + v.x, t[i].y + v.y)
        }
    }

    /// 1 inside the old or new outline, fading (smoothstep) to 0 at `bandWidth` outside both.
    func weight(_ p: Point, inside: Bool) -> Double {
        if inside { return 1 }
        let dist = min(FaceOutline.distance(p, to: old), FaceOutline.distance(p, to: new))
        guard dist < bandWidth else { return 0 }
        let u = dist / bandWidth
        return 1 - u * u * (3 - 2 * u)
    }

    /// Where a point of the target photo goes.
    func apply(_ p: Point) -> Point {
        let inside = FaceOutline.contains(old, p) || FaceOutline.contains(new, p)
        let w = weight(p, inside: inside)
        guard w > 0 else { return p }
        let q = forward.apply(p)
        return Point(p.x + w * (q.x - p.x), p.y + w * (q.y - p.y))
    }

    /// The image displaced (backward: each pixel samples where it came from, bilinearly), and a
    /// mask of 1 on every pixel that may differ. Pixels outside the mask are the input's bits.
    func reshape(_ image: Image) throws -> (Image, Mask) {
        let w = image.width, h = image.height, n = w * h
        let inside = try FaceMasks.polygons([old], width: w, height: h).values
        let insideNew = try FaceMasks.polygons([new], width: w, height: h).values
        var out = image
        var changed = [Float](repeating: 0, count: n)
        let xs = (old + new).map(\.x), ys = (old + new).map(\.y)
        let x0 = max(0, Int((xs.min()! - bandWidth).rounded(.down))), x1 = min(w - 1, Int((xs.max()! + bandWidth).rounded(.up)))
        let y0 = max(0, Int((ys.min()! - bandWidth).rounded(.down))), y1 = min(h - 1, Int((ys.max()! + bandWidth).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return (out, Mask(width: w, height: h, values: changed)) }
        // The spline on a coarse grid, bilinearly between: it is smooth at that scale.
        let step = 4
        let gw = (x1 - x0) / step + 2, gh = (y1 - y0) / step + 2
        var gx = [Double](repeating: 0, count: gw * gh), gy = gx
        for j in 0..<gh {
            for i in 0..<gw {
                let p = Point(Double(x0 + i * step), Double(y0 + j * step))
                let q = backward.apply(p)
                gx[j * gw + i] = q.x - p.x
                gy[j * gw + i] = q.y - p.y
            }
        }
        for y in y0...y1 {
            for x in x0...x1 {
                let k = y * w + x
                let p = Point(Double(x), Double(y))
                let wt = weight(p, inside: inside[k] > 0.5 || insideNew[k] > 0.5)
                guard wt > 0 else { continue }
                let fx = Double(x - x0) / Double(step), fy = Double(y - y0) / Double(step)
                let i = min(Int(fx), gw - 2), j = min(Int(fy), gh - 2)
                let ax = fx - Double(i), ay = fy - Double(j)
                func lerp(_ g: [Double]) -> Double {
                    let a = g[j * gw + i] * (1 - ax) + g[j * gw + i + 1] * ax
                    let b = g[(j + 1) * gw + i] * (1 - ax) + g[(j + 1) * gw + i + 1] * ax
                    return a * (1 - ay) + b * ay
                }
                let dx = wt * lerp(gx), dy = wt * lerp(gy)
                guard abs(dx) > 1e-3 || abs(dy) > 1e-3 else { continue }
                changed[k] = 1
                let sx = min(max(Double(x) + dx, 0), Double(w - 1)), sy = min(max(Double(y) + dy, 0), Double(h - 1))
                let ix = min(Int(sx), w - 2 < 0 ? 0 : w - 2), iy = min(Int(sy), h - 2 < 0 ? 0 : h - 2)
                let bx = Float(sx - Double(ix)), by = Float(sy - Double(iy))
                let ix1 = min(ix + 1, w - 1), iy1 = min(iy + 1, h - 1)
                for c in 0..<3 {
                    let base = c * n
                    let p00 = image.rgb[base + iy * w + ix], p01 = image.rgb[base + iy * w + ix1]
                    let p10 = image.rgb[base + iy1 * w + ix], p11 = image.rgb[base + iy1 * w + ix1]
                    let top = p00 + (p01 - p00) * bx, bottom = p10 + (p11 - p10) * bx
                    out.rgb[base + k] = top + (bottom - top) * by
                }
            }
        }
        return (out, Mask(width: w, height: h, values: changed))
    }

    /// Distance from `p` to a closed polygon's edges.
    static func distance(_ p: Point, to polygon: [Point]) -> Double {
        var best = Double.infinity
        for i in polygon.indices {
            let a = polygon[i], b = polygon[(i + 1) % polygon.count]
            let ex = b.x - a.x, ey = b.y - a.y
            let l2 = ex * ex + ey * ey
            let t = l2 > 0 ? min(max(((p.x - a.x) * ex + (p.y - a.y) * ey) / l2, 0), 1) : 0
            let dx = a.x + t * ex - p.x, dy = a.y + t * ey - p.y
            best = min(best, dx * dx + dy * dy)
        }
        return best.squareRoot()
    }

    /// Even–odd test of `p` against a closed polygon.
    static func contains(_ polygon: [Point], _ p: Point) -> Bool {
        var inside = false
        var j = polygon.count - 1
        for i in polygon.indices {
            let a = polygon[i], b = polygon[j]
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
            j = i
        }
        return inside
    }

    /// The 3-D similarity (rotation, one scale, translation) taking `a` onto `b` in the least
    /// squares sense: Horn's closed form, the rotation as the quaternion that is the leading
    /// eigenvector of a symmetric 4×4 matrix of the centred points' cross-covariances.
    static func similarity3(_ a: [Point3], _ b: [Point3]) -> (Point3) -> Point3 {
        let m = Double(a.count)
        let ca = Point3(a.map(\.x).reduce(0, +) / m, a.map(\.y).reduce(0, +) / m, a.map(\.z).reduce(0, +) / m)
        let cb = Point3(b.map(\.x).reduce(0, +) / m, b.map(\.y).reduce(0, +) / m, b.map(\.z).reduce(0, +) / m)
        var s = [[Double]](repeating: [0, 0, 0], count: 3)
        var na = 0.0, nb = 0.0
        for (p, q) in zip(a, b) {
            let u = [p.x - ca.x, p.y - ca.y, p.z - ca.z], v = [q.x - cb.x, q.y - cb.y, q.z - cb.z]
            for r in 0..<3 { for c in 0..<3 { s[r][c] += u[r] * v[c] } }
            na += u[0] * u[0] + u[1] * u[1] + u[2] * u[2]
            nb += v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
        }
        let (xx, xy, xz, yx, yy, yz, zx, zy, zz) = (s[0][0], s[0][1], s[0][2], s[1][0], s[1][1], s[1][2], s[2][0], s[2][1], s[2][2])
        var nm: [[Double]] = [
            [xx + yy + zz, yz - zy, zx - xz, xy - yx],
            [yz - zy, xx - yy - zz, xy + yx, zx + xz],
            [zx - xz, xy + yx, -xx + yy - zz, yz + zy],
            [xy - yx, zx + xz, yz + zy, -xx - yy + zz],
        ]
        // Shifted so every eigenvalue is positive; repeated squaring then leaves about
        // λ·v·vᵀ of the largest, whose longest column is along its eigenvector v.
        let shift = nm.flatMap { $0 }.map(abs).reduce(0, +) + 1e-12
        for i in 0..<4 { nm[i][i] += shift }
        for _ in 0..<40 {
            var sq = [[Double]](repeating: [0, 0, 0, 0], count: 4)
            for i in 0..<4 { for j in 0..<4 { for k in 0..<4 { sq[i][j] += nm[i][k] * nm[k][j] } } }
            let top = sq.flatMap { $0 }.map(abs).max() ?? 1
            nm = sq.map { $0.map { $0 / top } }
        }
        var q = [1.0, 0, 0, 0], best = 0.0
        for j in 0..<4 {
            let col = (0..<4).map { nm[$0][j] }
            let l = col.map { $0 * $0 }.reduce(0, +).squareRoot()
            if l > best { best = l; q = col.map { $0 / l } }
        }
        let (q0, q1, q2, q3) = (q[0], q[1], q[2], q[3])
        let rot = [
            [q0 * q0 + q1 * q1 - q2 * q2 - q3 * q3, 2 * (q1 * q2 - q0 * q3), 2 * (q1 * q3 + q0 * q2)],
            [2 * (q1 * q2 + q0 * q3), q0 * q0 - q1 * q1 + q2 * q2 - q3 * q3, 2 * (q2 * q3 - q0 * q1)],
            [2 * (q1 * q3 - q0 * q2), 2 * (q2 * q3 + q0 * q1), q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3],
        ]
        let scale = na > 0 ? (nb / na).squareRoot() : 1
        return { p in
            let u = [p.x - ca.x, p.y - ca.y, p.z - ca.z]
            func row(_ r: Int) -> Double { scale * (rot[r][0] * u[0] + rot[r][1] * u[1] + rot[r][2] * u[2]) }
            return Point3(cb.x + row(0), cb.y + row(1), cb.z + row(2))
        }
    }
}
