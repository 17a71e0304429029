import Foundation
import GuiseFace
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseVision

/// `--expression-from`: a face's mouth, eyes or brows take the shape they have in a reference
/// photo. The prior draws no features of its own, so the photo is first warped, piecewise
/// affinely over the face mesh, to put the chosen part's points where the reference's are (its
/// face fitted onto this one by a similarity); the surrounding skin follows with a displacement
/// that fades smoothly to nothing within a ring around the part, so beyond it the photo is
/// untouched. Where the reference's mouth is open wider than this one's, the reference's mouth
/// opening goes in, relit. The warped photo is the re-rendering's start, and guidance on x̂0
/// holds the moved mesh points at their places.
public enum EditExpression {
    /// The parts that move.
    public enum Part: String, CaseIterable, Sendable {
        case mouth, eyes, brows

        /// Mesh point groups that move together (each eye and brow on its own).
        var groups: [[Int]] {
            switch self {
            case .mouth: return [MeshRegions.lipsOuter + MeshRegions.lipsInner]
            case .eyes: return [MeshRegions.imageLeftEye, MeshRegions.imageRightEye]
            case .brows: return [MeshRegions.imageLeftBrow, MeshRegions.imageRightBrow]
            }
        }

        public var points: [Int] { groups.flatMap { $0 } }

        /// How far (in eye distances) from the part the fixed ring of mesh points lies.
        var reach: Double {
            switch self {
            case .mouth: return 0.45
            case .eyes: return 0.25
            case .brows: return 0.3
            }
        }

        /// The part an edit region names (nil: one without a part of its own).
        public init?(region: EditRegion) {
            switch region {
            case .lips, .mouth: self = .mouth
            case .eyes: self = .eyes
            case .brows: self = .brows
            default: return nil
            }
        }
    }

    /// The expression energy's default weight: it multiplies the moved points' mean squared
    /// distance from their places, in eye distances.
    public static let defaultWeight = 2000.0

    /// The largest move of any point, as a fraction of the face's width (cheek to cheek): a
    /// reference with a far different face or pose cannot tear this one.
    public static let maxShift = 0.15

    /// Points the similarity fit uses: the ones expressions move least (nose, eye corners,
    /// forehead and temples).
    static let stable: [Int] = MeshRegions.nose + [33, 133, 362, 263] + [10, 338, 297, 332, 109, 67, 103, 127, 356, 234, 454]

    /// What `plan` decides: where the mesh points go, and how much of the wanted move was kept.
    public struct Plan {
        /// The photo's 468 mesh points and where the warp takes them (the part's points move;
        /// the skin between them and the fixed ring follows the triangles, not its mesh points).
        public var source: [Point]
        public var destination: [Point]
        /// The moved part's points.
        public var moving: [Int]
        /// The fraction of the reference's shape the warp reaches (1: all of it; less where the
        /// displacement was capped or shrunk so that no triangle folds).
        public var amount: Double
        /// What the cap alone allowed (amount < capped: folding shrank it further).
        public var capped: Double
        /// The destination Delaunay triangles the warp renders (every one with a moved corner),
        /// and fixed points added on a circle round each moved group, which bound the warp.
        public var triangles: [(Int, Int, Int)]
        public var frame: [Point]

        /// The scale (pixels, Gaussian σ) above which the re-rendering keeps the start's colour
        /// and light (`EditOptions.startToneSigma`): a twelfth of the face's width.
        public var toneSigma: Double { max(4, EditExpression.faceWidth(source) / 12) }
    }

    /// The guidance (with the warped start), the window rectangle the face mesh needs, the mask
    /// of everything the start changes (grown by 3 % of the face width and feathered, so the
    /// re-rendering blends the moved part into its surroundings), and the plan.
    public static func make(image: Image, landmarks lm: FaceLandmarks, reference: Image, referenceLandmarks ref: FaceLandmarks,
                            parts: [Part], analyzer: FaceAnalyzer, weight: Double = defaultWeight) throws
        -> (guidance: EditGuidance, context: [Int], mask: Mask, plan: Plan) {
        let p = try plan(landmarks: lm, reference: ref, parts: parts)
        let (start, changed) = try warpedStart(image, plan: p, reference: reference, referenceLandmarks: ref)
        let w = image.width, h = image.height
        let faceWidth = self.faceWidth(p.source)
        var hard = Mask(width: w, height: h, values: changed.values.map { $0 > 0 ? 1 : 0 })
        hard = try hard.dilated(radius: max(2, Int((0.03 * faceWidth).rounded())))
        let mask = try EditMasks.refine(hard, feather: max(2, 0.02 * faceWidth))

        let count = FaceMesh.pointCount
        let goal = Tensor(shape: [count, 2], values: p.destination.flatMap { [Float($0.x), Float($0.y)] })
        let movingSet = Set(p.moving)
        let chosen = Tensor(shape: [count, 1], values: (0..<count).map { movingSet.contains($0) ? 1 : 0 })
        let iod = Float(interOcular(p.source))
        let scale = Float(weight) / (iod * iod * Float(max(1, movingSet.count)))
        let guidance = EditGuidance(name: "expression", start: { photo in
            guard photo.width == w, photo.height == h else { throw EditError("the expression start was made for a \(w)x\(h) photo", category: .internal) }
            return start
        }) { x0, origin in
            try loss(x0.scaled(0.5, plus: 0.5), landmarks: lm, origin: origin, goal: goal, chosen: chosen, analyzer: analyzer).scaled(scale)
        }
        return (guidance, EditGuides.meshContext(lm), mask, p)
    }

    /// Σ over the moved points of their squared distance (pixels²) from their places, the mesh
    /// read by the face mesh network from `image` [1, 3, h, w] in 0…1 whose top-left corner is at
    /// `origin` in the photo; the crop stays where `lm` put it.
    public static func loss(_ image: Tensor, landmarks lm: FaceLandmarks, origin: (x: Int, y: Int), goal: Tensor, chosen: Tensor,
                            analyzer: FaceAnalyzer) throws -> Tensor {
        var shifted = lm
        shifted.roi.centre = Point(lm.roi.centre.x - Double(origin.x), lm.roi.centre.y - Double(origin.y))
        shifted.mesh = lm.mesh.map { Point3($0.x - Double(origin.x), $0.y - Double(origin.y), $0.z) }
        let pts = try analyzer.meshPoints(image, at: shifted).slice(dim: 1, start: 0, end: 2)
        let offset = Tensor(shape: [1, 2], values: [Float(origin.x), Float(origin.y)])
        let d = (pts - (goal - offset)) * chosen
        return (d * d).sum()
    }

    /// Where the warp takes the mesh. The reference's face is fitted onto this one by a
    /// similarity on `stable`; each group of the parts then takes the fitted reference's shape,
    /// placed at this face's anchor (the mouth at its upper lip's top, each eye at its corners'
    /// midpoint; brows where the reference has them, since their height is their expression).
    /// Other mesh points within the part's reach move with it, fading to zero; the whole
    /// displacement is capped at `maxShift` of the face width and then scaled down (by
    /// bisection) until no destination triangle takes its pixels from a folded source triangle.
    public static func plan(landmarks lm: FaceLandmarks, reference ref: FaceLandmarks, parts: [Part]) throws -> Plan {
        guard !parts.isEmpty else { throw EditError("--expression-from needs a part to move: mouth, eyes or brows") }
        let count = FaceMesh.pointCount
        guard lm.mesh.count >= count, ref.mesh.count >= count else { throw EditError("the face mesh has too few points", category: .internal) }
        let mesh = lm.mesh.prefix(count).map(\.xy)
        let fitted = try fit3D(Array(ref.mesh.prefix(count)), onto: Array(lm.mesh.prefix(count)), using: stable)
        var shift = [Point](repeating: Point(0, 0), count: count)
        var moving: [Int] = []
        for part in parts {
            if part == .mouth {
                let m = mouthShift(mesh: mesh, fitted: fitted)
                for (i, d) in m { shift[i] = d; moving.append(i) }
                continue
            }
            for group in part.groups {
                let unique = Array(Set(group)).sorted()
                // Each eye stays where its corners' midpoint is; brows go where the reference has
                // them, since their height is their expression.
                var offset = Point(0, 0)
                if part == .eyes {
                    let a = group[0], b = group[8]
                    offset = Point((mesh[a].x + mesh[b].x - fitted[a].x - fitted[b].x) / 2, (mesh[a].y + mesh[b].y - fitted[a].y - fitted[b].y) / 2)
                }
                for i in unique {
                    shift[i] = Point(fitted[i].x + offset.x - mesh[i].x, fitted[i].y + offset.y - mesh[i].y)
                    moving.append(i)
                }
            }
        }
        moving = Array(Set(moving)).sorted()
        let movingSet = Set(moving)
        let iod = interOcular(mesh)
        let reach = parts.map(\.reach).max()! * iod
        // The skin around the part is no vertex of the warp: between the part and a ring of
        // fixed mesh points (those at least the part's reach from it, and the features next to
        // it: the nose beside the mouth, the brows beside the eyes and the eyes beside the
        // brows) it stretches or squeezes evenly over large triangles. Small triangles moved by
        // differing amounts would draw any edge crossing them (a lip's edge where the mesh's
        // outline misses it by a pixel or two) as a saw-tooth.
        var keepFixed = Set<Int>()
        for part in parts {
            switch part {
            case .mouth: keepFixed.formUnion(MeshRegions.nose)
            case .eyes: keepFixed.formUnion(MeshRegions.imageLeftBrow + MeshRegions.imageRightBrow + MeshRegions.nose)
            case .brows: keepFixed.formUnion(MeshRegions.imageLeftEye + MeshRegions.imageRightEye)
            }
        }
        var vertices = moving
        for j in 0..<count where !movingSet.contains(j) {
            var nearest = Double.infinity
            for i in moving {
                let dx = mesh[j].x - mesh[i].x, dy = mesh[j].y - mesh[i].y
                nearest = min(nearest, dx * dx + dy * dy)
            }
            if nearest.squareRoot() >= reach || keepFixed.contains(j) { vertices.append(j) }
        }
        // Fixed points on a circle round each moving group, at the reach beyond its farthest
        // point (those nearer than the reach to a moving point of another group left out), so no
        // triangle with a moving corner reaches farther, where the face's mesh ends (past the
        // jaw or a turned cheek) included.
        var frame: [Point] = []
        for part in parts {
            for group in part.groups {
                let cx = group.map { mesh[$0].x }.reduce(0, +) / Double(group.count)
                let cy = group.map { mesh[$0].y }.reduce(0, +) / Double(group.count)
                let radius = group.map { hypot(mesh[$0].x - cx, mesh[$0].y - cy) }.max()! + reach
                for k in 0..<32 {
                    let a = 2 * Double.pi * Double(k) / 32
                    let q = Point(cx + radius * cos(a), cy + radius * sin(a))
                    if moving.allSatisfy({ hypot(mesh[$0].x - q.x, mesh[$0].y - q.y) >= reach }) { frame.append(q) }
                }
            }
        }
        let source = mesh + frame
        let largest = shift.map { ($0.x * $0.x + $0.y * $0.y).squareRoot() }.max() ?? 0
        let cap = maxShift * faceWidth(mesh)
        vertices += count..<(count + frame.count)
        let sourceVertices = vertices.map { source[$0] }
        func destination(_ s: Double) -> [Point] {
            (0..<count).map { Point(mesh[$0].x + s * shift[$0].x, mesh[$0].y + s * shift[$0].y) } + frame
        }
        func folded(_ s: Double) -> Bool {
            let d = destination(s)
            return !folds(source: sourceVertices, destination: vertices.map { d[$0] }).isEmpty
        }
        let capped = largest > cap ? cap / largest : 1
        var amount = capped
        if folded(amount) {
            var lo = 0.0, hi = amount
            for _ in 0..<14 {
                let mid = (lo + hi) / 2
                if folded(mid) { hi = mid } else { lo = mid }
            }
            amount = lo
        }
        let dst = destination(amount)
        let triangles = Delaunay.triangulate(vertices.map { dst[$0] })
            .map { (vertices[$0.0], vertices[$0.1], vertices[$0.2]) }
            .filter { movingSet.contains($0.0) || movingSet.contains($0.1) || movingSet.contains($0.2) }
        return Plan(source: mesh, destination: Array(dst.prefix(count)), moving: moving, amount: amount, capped: capped, triangles: triangles, frame: frame)
    }

    /// Destination triangles (Delaunay of `destination`, counter-clockwise) whose source
    /// triangle is turned over: such a triangle would show its pixels mirrored, doubling a
    /// feature. Only triangles at least a pixel thick (least altitude) on both sides count: a
    /// source squeezed to a sliver, as the lips of a closed mouth are, is a stretch, and a
    /// destination sliver (a mouth that closes) shows nothing.
    public static func folds(source: [Point], destination: [Point]) -> [(Int, Int, Int)] {
        func thickness(_ a: Point, _ b: Point, _ c: Point) -> Double {
            let area = abs(Delaunay.orientation(a, b, c))
            func len(_ p: Point, _ q: Point) -> Double { ((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y)).squareRoot() }
            return area / max(len(a, b), len(b, c), len(c, a), 1e-9)
        }
        return Delaunay.triangulate(destination).filter { t in
            let s = Delaunay.orientation(source[t.0], source[t.1], source[t.2])
            return s < 0 && thickness(source[t.0], source[t.1], source[t.2]) >= 1
                && thickness(destination[t.0], destination[t.1], destination[t.2]) >= 1
        }
    }

    /// The photo with the plan's warp inside the triangles it moves, faded into the untouched
    /// photo where pixels move less than a pixel; where the mouth opens wider than it was, the
    /// reference's mouth opening, relit to this photo. Also the mask of the pixels it changes.
    public static func warpedStart(_ image: Image, plan p: Plan, reference: Image, referenceLandmarks ref: FaceLandmarks) throws -> (Image, Mask) {
        let w = image.width, h = image.height, n = w * h
        let src = p.source + p.frame, dst = p.destination + p.frame
        let warp = MeshWarp(triangles: p.triangles)
        let rendered = warp.render(image, from: src, to: dst, width: w, height: h)
        // Where each pixel comes from: a coordinate ramp, warped like the photo (bilinear
        // sampling of a ramp is exact), gives the displacement per pixel.
        var ramp = Image(width: w, height: h, red: 0, green: 0, blue: 0)
        for y in 0..<h { for x in 0..<w { ramp.rgb[y * w + x] = Float(x); ramp.rgb[n + y * w + x] = Float(y) } }
        let from = warp.render(ramp, from: src, to: dst, width: w, height: h).image
        var alpha = Mask(width: w, height: h, fill: 0)
        for i in 0..<n where rendered.coverage.values[i] > 0 {
            let dx = from.rgb[i] - Float(i % w), dy = from.rgb[n + i] - Float(i / w)
            // A tenth of a pixel is no move: the change stays within the skin that follows the part.
            alpha.values[i] = min(1, max(0, ((dx * dx + dy * dy).squareRoot() - 0.1) / 0.9))
        }
        var out = image
        for i in 0..<n where alpha.values[i] > 0 {
            let a = alpha.values[i]
            for c in 0..<3 { out.rgb[c * n + i] += a * (rendered.image.rgb[c * n + i] - out.rgb[c * n + i]) }
        }
        var changed = alpha

        // The mouth opening: bring in the reference's where the warp opens the mouth.
        let inner = MeshRegions.lipsInner
        let before = abs(polygonArea(inner.map { p.source[$0] })), after = abs(polygonArea(inner.map { p.destination[$0] }))
        let fw = faceWidth(p.source)
        if Set(p.moving).isSuperset(of: inner), after > 1.5 * before + 0.002 * fw * fw {
            let refMesh = ref.mesh.prefix(FaceMesh.pointCount).map(\.xy)
            let tris = Delaunay.triangulate(inner.map { p.destination[$0] }).map { (inner[$0.0], inner[$0.1], inner[$0.2]) }
            let theirs = MeshWarp(triangles: tris).render(reference, from: refMesh, to: p.destination, width: w, height: h).image
            let relit = try relightMouth(theirs, like: image, reference: reference, mesh: p.source, destination: p.destination, referenceMesh: refMesh)
            var opening = try SwapGeometry.region(inner, p.destination, width: w, height: h)
            opening = try opening.eroded(radius: 1)
            let soft = try opening.blurred(sigma: max(0.7, 0.006 * fw))
            for i in 0..<n where soft.values[i] > 1.0 / 512 {
                let a = min(1, soft.values[i])
                for c in 0..<3 { out.rgb[c * n + i] += a * (relit.rgb[c * n + i] - out.rgb[c * n + i]) }
                changed.values[i] = max(changed.values[i], a)
            }
        }
        return (out, changed)
    }

    /// The reference's mouth opening (already warped into place) in this photo's light: luma
    /// scaled and chroma shifted by how the skin round the mouth differs between the two photos,
    /// so teeth keep their own colour relative to the face.
    static func relightMouth(_ warped: Image, like image: Image, reference: Image, mesh: [Point], destination: [Point], referenceMesh: [Point]) throws -> Image {
        func ringStats(_ im: Image, _ pts: [Point]) throws -> (Float, Float, Float) {
            let lips = try SwapGeometry.region(MeshRegions.lipsOuter, pts, width: im.width, height: im.height)
            let grown = try lips.dilated(radius: max(2, Int((0.12 * interOcular(pts)).rounded())))
            let n = im.pixelCount
            var y = 0.0, cb = 0.0, cr = 0.0, k = 0.0
            for i in 0..<n where grown.values[i] > 0 && lips.values[i] == 0 {
                let r = Double(im.rgb[i]), g = Double(im.rgb[n + i]), b = Double(im.rgb[2 * n + i])
                let l = 0.299 * r + 0.587 * g + 0.114 * b
                y += l; cb += b - l; cr += r - l; k += 1
            }
            guard k > 0 else { return (0.5, 0, 0) }
            return (Float(y / k), Float(cb / k), Float(cr / k))
        }
        let mine = try ringStats(image, mesh), theirs = try ringStats(reference, referenceMesh)
        let gain = min(max(mine.0 / max(theirs.0, 1e-3), 0.5), 1.6)
        let n = warped.pixelCount
        var out = warped
        for i in 0..<n {
            let r = warped.rgb[i], g = warped.rgb[n + i], b = warped.rgb[2 * n + i]
            let l = 0.299 * r + 0.587 * g + 0.114 * b
            // A soft knee above 0.8, so teeth brightened to a lighter face's level roll off
            // instead of clipping to a flat white.
            var y = l * gain
            if y > 0.8 { y = 0.8 + 0.2 * Float(tanh(Double((y - 0.8) / 0.2))) }
            let cb = (b - l) + mine.1 - theirs.1, cr = (r - l) + mine.2 - theirs.2
            let rr = y + cr, bb = y + cb, gg = (y - 0.299 * rr - 0.114 * bb) / 0.587
            out.rgb[i] = min(max(rr, 0), 1); out.rgb[n + i] = min(max(gg, 0), 1); out.rgb[2 * n + i] = min(max(bb, 0), 1)
        }
        return out
    }

    /// Inter-ocular distance (outer eye corners 33 and 263).
    static func interOcular(_ mesh: [Point]) -> Double { SwapGeometry.interOcular(mesh) }

    /// Cheek to cheek (mesh points 234 and 454).
    static func faceWidth(_ mesh: [Point]) -> Double {
        let a = mesh[234], b = mesh[454]
        return max(1e-6, ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)).squareRoot())
    }

    /// The mouth's move: the opening (the inner lip edge) takes the fitted reference's shape,
    /// placed at this mouth's upper lip (point 13); each lip keeps this face's own thickness (an
    /// outer edge point stays where it was relative to its inner one), since a lip stretched to
    /// another person's thickness draws its edge as a saw-tooth; the points between the edges
    /// follow their own lip's edges (Shepard's average of them).
    static func mouthShift(mesh: [Point], fitted: [Point]) -> [Int: Point] {
        let inner = MeshRegions.lipsInner, outer = MeshRegions.lipsOuter
        let anchor = 13
        let offset = Point(mesh[anchor].x - fitted[anchor].x, mesh[anchor].y - fitted[anchor].y)
        var out: [Int: Point] = [:]
        var goal = mesh
        for k in inner.indices {
            let i = inner[k], o = outer[k]
            goal[i] = Point(fitted[i].x + offset.x, fitted[i].y + offset.y)
            goal[o] = Point(goal[i].x + mesh[o].x - mesh[i].x, goal[i].y + mesh[o].y - mesh[i].y)
            out[i] = Point(goal[i].x - mesh[i].x, goal[i].y - mesh[i].y)
            out[o] = Point(goal[o].x - mesh[o].x, goal[o].y - mesh[o].y)
        }
        // Which lip a point between the edges belongs to: the side of the opening's mid-line
        // (upper and lower inner edges averaged) it lies on, along the face's upward direction.
        let up = Point(mesh[10].x - mesh[152].x, mesh[10].y - mesh[152].y)
        let mid = (0...10).map { k -> Point in
            let a = inner[k], b = inner[(20 - k) % 20]
            return Point((mesh[a].x + mesh[b].x) / 2, (mesh[a].y + mesh[b].y) / 2)
        }
        let lower = Set((0...10).flatMap { [inner[$0], outer[$0]] }), upper = Set(([0] + Array(10..<20)).flatMap { [inner[$0], outer[$0]] })
        let outline = outer.map { mesh[$0] }
        let edges = Set(inner + outer)
        for j in mesh.indices where !edges.contains(j) && inside(mesh[j], outline) {
            let near = mid.min { a, b in
                (a.x - mesh[j].x) * (a.x - mesh[j].x) + (a.y - mesh[j].y) * (a.y - mesh[j].y)
                    < (b.x - mesh[j].x) * (b.x - mesh[j].x) + (b.y - mesh[j].y) * (b.y - mesh[j].y)
            }!
            let side = (mesh[j].x - near.x) * up.x + (mesh[j].y - near.y) * up.y > 0 ? upper : lower
            var num = Point(0, 0), den = 0.0
            for i in side {
                let r2 = max(1e-6, (mesh[j].x - mesh[i].x) * (mesh[j].x - mesh[i].x) + (mesh[j].y - mesh[i].y) * (mesh[j].y - mesh[i].y))
                num = Point(num.x + out[i]!.x / r2, num.y + out[i]!.y / r2)
                den += 1 / r2
            }
            out[j] = Point(num.x / den, num.y / den)
        }
        return out
    }

    /// `points` (3-D mesh points) turned, scaled and moved by the similarity that best takes
    /// their `using` points onto `target`'s (least squares, Horn's quaternion method), then
    /// seen from the front (x, y): a reference turned another way than the photo still gives
    /// its mouth's shape, not its foreshortening.
    static func fit3D(_ points: [Point3], onto target: [Point3], using idx: [Int]) throws -> [Point] {
        func mean(_ p: [Point3]) -> (Double, Double, Double) {
            let k = Double(idx.count)
            return (idx.map { p[$0].x }.reduce(0, +) / k, idx.map { p[$0].y }.reduce(0, +) / k, idx.map { p[$0].z }.reduce(0, +) / k)
        }
        let ma = mean(points), mb = mean(target)
        var m = [[Double]](repeating: [0, 0, 0], count: 3)
        var normA = 0.0
        for i in idx {
            let a = [points[i].x - ma.0, points[i].y - ma.1, points[i].z - ma.2]
            let b = [target[i].x - mb.0, target[i].y - mb.1, target[i].z - mb.2]
            for r in 0..<3 { for c in 0..<3 { m[r][c] += a[r] * b[c] } }
            normA += a[0] * a[0] + a[1] * a[1] + a[2] * a[2]
        }
        guard normA > 1e-9 else { throw EditError("the reference's face mesh is degenerate") }
        let (sxx, sxy, sxz, syx, syy, syz, szx, szy, szz) = (m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2])
        let n: [[Double]] = [
            [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
            [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
            [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
            [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
        ]
        // The eigenvector of the largest eigenvalue, by power iteration on N shifted to be
        // positive definite (every eigenvalue of N is bounded by its Frobenius norm).
        let shift = n.flatMap { $0 }.map { $0 * $0 }.reduce(0, +).squareRoot()
        var q = [1.0, 0.0, 0.0, 0.0]
        for _ in 0..<2000 {
            var next = [0.0, 0.0, 0.0, 0.0]
            for r in 0..<4 { for c in 0..<4 { next[r] += (n[r][c] + (r == c ? shift : 0)) * q[c] } }
            let len = next.map { $0 * $0 }.reduce(0, +).squareRoot()
            guard len > 1e-300 else { break }
            q = next.map { $0 / len }
        }
        let (w, x, y, z) = (q[0], q[1], q[2], q[3])
        let rot = [[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
                   [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
                   [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]]
        var dot = 0.0
        for i in idx {
            let a = [points[i].x - ma.0, points[i].y - ma.1, points[i].z - ma.2]
            let b = [target[i].x - mb.0, target[i].y - mb.1, target[i].z - mb.2]
            for r in 0..<3 { dot += b[r] * (rot[r][0] * a[0] + rot[r][1] * a[1] + rot[r][2] * a[2]) }
        }
        let scale = dot / normA
        guard scale.isFinite, scale > 0 else { throw EditError("the reference's face does not fit this one") }
        return points.map { p in
            let a = [p.x - ma.0, p.y - ma.1, p.z - ma.2]
            return Point(mb.0 + scale * (rot[0][0] * a[0] + rot[0][1] * a[1] + rot[0][2] * a[2]),
                         mb.1 + scale * (rot[1][0] * a[0] + rot[1][1] * a[1] + rot[1][2] * a[2]))
        }
    }

    /// Whether `p` lies inside the polygon (even–odd rule).
    static func inside(_ p: Point, _ polygon: [Point]) -> Bool {
        var odd = false
        var j = polygon.count - 1
        for i in polygon.indices {
            let a = polygon[i], b = polygon[j]
            if (a.y > p.y) != (b.y > p.y), p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x { odd.toggle() }
            j = i
        }
        return odd
    }

    /// Shoelace area, signed.
    static func polygonArea(_ p: [Point]) -> Double {
        var s = 0.0
        for i in p.indices { let a = p[i], b = p[(i + 1) % p.count]; s += a.x * b.y - b.x * a.y }
        return s / 2
    }

    /// `make` for face `faceIndex` of `image` and the largest face of `reference`, the models
    /// from `models`, or else `store`. A reference without a face is a one-line error.
    public static func forFace(image: Image, reference: Image, parts: [Part], faceIndex: Int = 0, label: String = "the photo",
                               referenceLabel: String = "the reference photo", weight: Double = defaultWeight,
                               store: ModelStore? = nil, models: ModelCache? = nil, note: (String) -> Void = { _ in }) throws
        -> (guidance: EditGuidance, context: [Int], mask: Mask, plan: Plan) {
        let models = models ?? ModelCache(store: store)
        let lm = try EditMasks.landmarks(image, faceIndex: faceIndex, label: label, models: models, note: note)
        let ref = try EditMasks.landmarks(reference, faceIndex: 0, label: referenceLabel, models: models, note: note)
        return try make(image: image, landmarks: lm, reference: reference, referenceLandmarks: ref, parts: parts,
                        analyzer: try models.faceAnalyzer(), weight: weight)
    }
}
