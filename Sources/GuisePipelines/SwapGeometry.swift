import Foundation
import GuiseDiffusion
import GuiseFace
import GuiseImage
import GuiseVision

/// The regions a swap may replace (FaceFusion's region mask; DiffFace's parsing classes skin,
/// brows, eyes, nose, lips).
public enum SwapRegion: String, CaseIterable, Codable, Sendable {
    case skin, brows, eyes, nose, lips

    public static let all = Set(SwapRegion.allCases)
}

/// The geometric half of a swap, in the pixels of a work window: where the source's features
/// go (the target's mesh, its inner proportions bent towards the source's), the source's face
/// rendered there, the target's lighting and colour on it, and the soft mask it is pasted under.
enum SwapGeometry {
    /// Mesh groups whose points move together when the face's proportions follow the source:
    /// each keeps the target's own shape (its expression: an open mouth, a blink, a raised brow)
    /// and only its position and size follow the source.
    static let featureGroups: [[Int]] = [
        // Each eye with its iris (points 468–472 and 473–477 of the 478-point layout).
        MeshRegions.imageLeftEye + Array(468..<473), MeshRegions.imageRightEye + Array(473..<478),
        MeshRegions.imageLeftBrow, MeshRegions.imageRightBrow,
        MeshRegions.lipsOuter + MeshRegions.lipsInner,
        MeshRegions.nose,
    ]

    /// 2-D similarity (least squares) taking `from` onto `to`; also its RMS residual.
    static func similarity(_ from: [Point], _ to: [Point]) throws -> (GuiseImage.AffineTransform, Double) {
        let t = try GuiseImage.AffineTransform.similarity(from: from, to: to)
        let r = zip(from, to).map { p, q -> Double in let a = t.apply(p); return (a.x - q.x) * (a.x - q.x) + (a.y - q.y) * (a.y - q.y) }
        return (t, (r.reduce(0, +) / Double(max(1, r.count))).squareRoot())
    }

    /// The warp of a source face onto `destination` (the target's mesh, bent): the triangles of
    /// the face's surface, from both meshes (with irises) seen from the front, and the target's
    /// depths at the destination points, so that where a turned target's nose hides its far
    /// cheek the nose is drawn. A Delaunay triangulation of the destination, with no depths,
    /// when the meshes cannot be turned to the front.
    /// The irises (points past the 468) are in no triangle: each eye's content moves with its
    /// lids. Pinned to the target's iris, a source iris half under its lid (a smile's narrower
    /// eye) folded the triangles between iris and lid over and drew dark blocks above the iris.
    static func faceWarp(target: [Point3], source: [Point3], destination: [Point]) -> (warp: MeshWarp, depth: [Double]?) {
        guard target.count == destination.count, source.count == destination.count,
              let warp = MeshWarp(surface: [target, source], leavingOut: Set(FaceMesh.pointCount..<destination.count)) else {
            return (MeshWarp(destination: destination), nil)
        }
        return (warp, MeshWarp.depths(target))
    }

    /// How open a face's eyes are: per eye the lids' gap over the corners' distance, on the iris
    /// model's eyelid contour (which follows lids more closely than the face mesh, whose lids
    /// barely close on a squint) and in 3-D, so a face turned away does not foreshorten its far
    /// eye into a wide-open one; the mean of the two eyes. About 0.3 to 0.4 for eyes open at
    /// rest, under 0.1 for eyes shut. Nil without the iris model's contours.
    static func eyeOpenness(_ face: FaceLandmarks) -> Double? {
        guard face.leftEye.contour.count >= 16, face.rightEye.contour.count >= 16 else { return nil }
        // The contour's first 16 points run as the mesh's eye outline: 0 and 8 are the corners
        // (33/133, 263/362), 4 and 12 the middle of the lower and upper lid (145/159, 374/386).
        func openness(_ c: [Point3]) -> Double {
            func d(_ a: Int, _ b: Int) -> Double {
                let p = c[a], q = c[b]
                return ((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y) + (p.z - q.z) * (p.z - q.z)).squareRoot()
            }
            return d(12, 4) / max(d(0, 8), 1e-6)
        }
        return (openness(face.leftEye.contour) + openness(face.rightEye.contour)) / 2
    }

    /// The target keeps its own eyes when one face's openness is under `nearlyShutEyes` (lids
    /// lowered over a downward look, a blink, a laugh) and under `narrowerEyes` of the other's:
    /// two open pairs of different shapes (a smile's narrower eyes) swap as usual, since the eyes
    /// carry much of the identity.
    static let narrowerEyes = 0.7
    static let nearlyShutEyes = 0.2

    /// Inter-ocular distance (outer eye corners 33 and 263).
    static func interOcular(_ mesh: [Point]) -> Double {
        let a = mesh[33], b = mesh[263]
        return max(1e-6, ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)).squareRoot())
    }

    /// The head's turn about the vertical (yaw), in degrees: how far the line between the face
    /// outline's two sides at the cheekbones (mesh points 234 and 454) leaves the image plane,
    /// by the mesh's depth. 0 is frontal; the sign tells which way.
    static func yaw(_ mesh: [Point3]) -> Double {
        let a = mesh[234], b = mesh[454]
        let across = ((b.x - a.x) * (b.x - a.x) + (b.y - a.y) * (b.y - a.y)).squareRoot()
        return atan2(b.z - a.z, across) * 180 / .pi
    }

    /// The target's mesh with its feature groups moved `amount` (0 = target, 1 = source) of the
    /// way to where the source's face, fitted onto the target's by a similarity, has them; the
    /// face outline stays the target's and the rest follows a thin-plate spline.
    static func morphedMesh(target: [Point], source: [Point], amount: Double) throws -> [Point] {
        guard amount > 0 else { return target }
        let (fit, _) = try similarity(Array(source.prefix(FaceMesh.pointCount)), Array(target.prefix(FaceMesh.pointCount)))
        let src = source.map(fit.apply)
        var controls: [Point] = [], destinations: [Point] = []
        var fixedIndex = Set<Int>()
        for i in MeshRegions.faceOval { controls.append(target[i]); destinations.append(target[i]); fixedIndex.insert(i) }
        var moved = target
        for group in featureGroups {
            let unique = Array(Set(group)).sorted()
            func centre(_ p: [Point]) -> Point {
                Point(unique.map { p[$0].x }.reduce(0, +) / Double(unique.count), unique.map { p[$0].y }.reduce(0, +) / Double(unique.count))
            }
            func spread(_ p: [Point], _ c: Point) -> Double {
                (unique.map { (p[$0].x - c.x) * (p[$0].x - c.x) + (p[$0].y - c.y) * (p[$0].y - c.y) }.reduce(0, +) / Double(unique.count)).squareRoot()
            }
            let ct = centre(target), cs = centre(src)
            let scale = 1 + amount * (spread(src, cs) / max(spread(target, ct), 1e-6) - 1)
            let shift = Point(amount * (cs.x - ct.x), amount * (cs.y - ct.y))
            for i in unique {
                moved[i] = Point(ct.x + shift.x + (target[i].x - ct.x) * scale, ct.y + shift.y + (target[i].y - ct.y) * scale)
                if !fixedIndex.contains(i) {
                    controls.append(target[i])
                    destinations.append(moved[i])
                    fixedIndex.insert(i)
                }
            }
        }
        let tps = try ThinPlateSpline(from: controls, to: destinations, regularisation: 1e-6)
        return target.indices.map { fixedIndex.contains($0) ? moved[$0] : tps.apply(target[$0]) }
    }

    /// How much more a triangle of the face is enlarged from source to destination than the
    /// face's triangles are in the median, per mesh point (the most of the triangles round it),
    /// rendered over the destination by `field`.
    static func stretchedSkin(triangles: [(Int, Int, Int)], source: [Point], destination: [Point],
                              field: ([Float]) -> [Float]) -> [Float] {
        func area(_ m: [Point], _ t: (Int, Int, Int)) -> Double {
            let a = m[t.0], b = m[t.1], c = m[t.2]
            return abs((b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y)) / 2
        }
        let ratios = triangles.map { t -> Double in area(destination, t) / max(area(source, t), 1e-6) }
        let sorted = ratios.sorted()
        let median = sorted.isEmpty ? 1 : max(sorted[sorted.count / 2], 1e-9)
        var perPoint = [Float](repeating: 0, count: destination.count)
        for (t, r) in zip(triangles, ratios) {
            let v = Float(r / median)
            for i in [t.0, t.1, t.2] { perPoint[i] = max(perPoint[i], v) }
        }
        return field(perPoint)
    }

    /// Beyond this `stretchedSkin`, the source's skin is too thin a sliver to show.
    static let overStretched: Float = 6

    /// A polygon of mesh points, rasterised hard-edged at the window's size.
    static func region(_ indices: [Int], _ mesh: [Point], width: Int, height: Int) throws -> Mask {
        try FaceMasks.polygons([indices.map { mesh[$0] }], width: width, height: height)
    }

    /// Normalised Gaussian low-pass inside a mask: blur(x·m) / blur(m), per channel, so
    /// what lies outside the mask (hair, background) does not bleed into the face's average.
    static func maskedLowPass(_ image: Image, _ mask: Mask, sigma: Double) throws -> Image {
        let n = image.pixelCount
        var weighted = image
        for c in 0..<3 { for i in 0..<n { weighted.rgb[c * n + i] *= mask.values[i] } }
        let num = try weighted.blurred(sigma: sigma)
        let den = try mask.blurred(sigma: sigma)
        var out = num
        for i in 0..<n {
            let d = den.values[i]
            for c in 0..<3 { out.rgb[c * n + i] = d > 1e-4 ? num.rgb[c * n + i] / d : 0 }
        }
        return out
    }

    /// The source face in the target's light. Luma is multiplied by the ratio of the target's
    /// masked low-pass to the source's (shading and exposure follow the target; σ a tenth
    /// of the face). Colour is handled as chromaticity, chroma over luma, so it keeps its
    /// saturation when the luma is scaled: a darker target does not make the source's brows and
    /// shadows glow orange, a brighter one does not wash its skin out to grey. Chromaticity is
    /// turned and scaled about grey so that much broader low-passes of the two faces' agree
    /// (skin tone and colour cast follow the target without painting its features' colours
    /// on). The source's finer detail, which carries identity, stays; on `skin`, where its
    /// colour is mostly the source photo's light, the tone is matched at the luma's scale, the
    /// colour detail damped, and shadows a little finer than the ratio's scale softened to the
    /// target's contrast there (`shadingGain`).
    static func relight(_ face: Image, like target: Image, mask: Mask, faceWidth: Double, skin: Mask? = nil) throws -> Image {
        let n = face.pixelCount
        func ycc(_ im: Image) -> Image {
            var o = im
            for i in 0..<n {
                let r = im.rgb[i], g = im.rgb[n + i], b = im.rgb[2 * n + i]
                let y = 0.299 * r + 0.587 * g + 0.114 * b
                o.rgb[i] = y
                o.rgb[n + i] = b - y
                o.rgb[2 * n + i] = r - y
            }
            return o
        }
        // Below this luma chromaticity is chroma over the floor: near-black pixels carry no
        // reliable hue to scale.
        let lumaFloor: Float = 0.05
        // The share of the source skin's colour variation (about its local tone) kept.
        let skinColourDetail: Float = 0.4
        let f = ycc(face), t = ycc(target)
        let sigmaLuma = max(2, 0.1 * faceWidth), sigmaChroma = max(4, 0.3 * faceWidth)
        // Light is measured on skin alone where `skin` is given: dark brows, eye sockets and lips
        // in the low-pass would make the ratio paint the target's features, a dark band across
        // the eyes, onto the source.
        var lit = mask
        if let skin { lit.values = zip(mask.values, skin.values).map { $0 * $1 } }
        let ltL = try maskedLowPass(t, lit, sigma: sigmaLuma), lfL = try maskedLowPass(f, lit, sigma: sigmaLuma)
        let ltC = try maskedLowPass(t, lit, sigma: sigmaChroma), lfC = try maskedLowPass(f, lit, sigma: sigmaChroma)
        let tone = skin == nil ? nil : SkinTone(t, weight: lit.values, lumaFloor: lumaFloor)
        let shading = try skin.map { _ in try shadingGain(f, like: t, lit: lit, broad: (lfL, ltL), faceWidth: faceWidth) }
        var out = face
        for i in 0..<n {
            let ratio = min(max(ltL.rgb[i] / max(lfL.rgb[i], 1e-3), 0.2), 5)
            // The source's mid-scale shadows on skin, softened where the target's light is softer.
            var fl = f.rgb[i]
            if let skin, let shading {
                fl -= skin.values[i] * (1 - shading.gain[i]) * shading.band[i]
            }
            // A soft knee above 0.85, so a highlight on a darker source face brightened to a light
            // target's level rolls off instead of clipping to a white patch.
            var y = fl * ratio
            if y > 0.85 { y = 0.85 + 0.15 * Float(tanh(Double((y - 0.85) / 0.15))) }
            // The similarity of the chromaticity plane (turn and scale about grey) that takes the
            // source's skin tone to the target's, what it leaves over added: a highlight or an
            // eye's white stays neutral and lips keep their hue relative to the skin. Shifting
            // every pixel by the difference of the two skin tones turned a warmer source's
            // highlights blue-grey on a paler target. A grey source (no tone to turn) is shifted.
            let sy = max(lfC.rgb[i], lumaFloor), ty = max(ltC.rgb[i], lumaFloor)
            let sb = lfC.rgb[n + i] / sy, sr = lfC.rgb[2 * n + i] / sy
            let tb = ltC.rgb[n + i] / ty, tr = ltC.rgb[2 * n + i] / ty
            let sLen = (sb * sb + sr * sr).squareRoot(), tLen = (tb * tb + tr * tr).squareRoot()
            let toned = min(1, sLen / 0.08) * min(1, tLen / 0.08)
            let scale = 1 + toned * (min(max(tLen / max(sLen, 1e-4), 0.25), 1.25) - 1)
            let turn = toned * (atan2(tr, tb) - atan2(sr, sb))
            let (cs, sn) = (scale * cos(turn), scale * sin(turn))
            func map(_ b: Float, _ r: Float) -> (Float, Float) { (cs * b - sn * r, sn * b + cs * r) }
            let (mb, mr) = map(sb, sr)
            let fy = max(f.rgb[i], lumaFloor)
            let (fb, fr) = map(f.rgb[n + i] / fy, f.rgb[2 * n + i] / fy)
            var cb = fb + tb - mb
            var cr = fr + tr - mr
            if let skin, skin.values[i] > 0 {
                // On skin the tone follows the target's at the luma's scale, and only part of the
                // source's finer colour variation stays: a washed-out photo's skin is grey where
                // it is lit and orange in its shadows, and at the broad scale alone those patches
                // came through as war paint round the eyes and nose. Freckles and blush keep
                // some of their colour; their shape is in the luma.
                let s = skin.values[i]
                let sly = max(lfL.rgb[i], lumaFloor), tly = max(ltL.rgb[i], lumaFloor)
                let (lb, lr) = map(lfL.rgb[n + i] / sly, lfL.rgb[2 * n + i] / sly)
                // Where the new luma falls below the target's local level (the source's stubble,
                // its deeper eye sockets, a crease) the colour moves as the target's own skin
                // colour moves with its luma: on a pale, overexposed face the shadows are warm,
                // and the local tone alone would leave them grey. Brighter than the local level
                // (the source photo's own highlights) the local tone stays: given the target's
                // clipped, near-white colour there they stood out as white blotches.
                let (db, dr) = tone.map { tone in
                    let (b1, r1) = tone.chromaticity(at: min(y, ltL.rgb[i])), (b0, r0) = tone.chromaticity(at: ltL.rgb[i])
                    return (b1 - b0, r1 - r0)
                } ?? (Float(0), Float(0))
                let skinB = ltL.rgb[n + i] / tly + skinColourDetail * (fb - lb) + db
                let skinR = ltL.rgb[2 * n + i] / tly + skinColourDetail * (fr - lr) + dr
                cb += s * (skinB - cb)
                cr += s * (skinR - cr)
                // Skin left much paler than the target's (the source's sheen, or a patch its
                // camera washed out) would read as grey, blue-grey beside warm skin: its colour is
                // raised towards 0.6 of the target's saturation there, the more the paler it is.
                // Eyes and teeth lie outside `skin`.
                let need = 0.6 * tLen
                let have = (cb * cb + cr * cr).squareRoot()
                if need > 1e-4, have < need {
                    let k = skin.values[i] * (1 - have / need)
                    cb += k * (need * tb / max(tLen, 1e-4) - cb)
                    cr += k * (need * tr / max(tLen, 1e-4) - cr)
                }
            }
            let r = y * (1 + cr), b = y * (1 + cb)
            let g = (y - 0.299 * r - 0.114 * b) / 0.587
            out.rgb[i] = min(max(r, 0), 1)
            out.rgb[n + i] = min(max(g, 0), 1)
            out.rgb[2 * n + i] = min(max(b, 0), 1)
        }
        return out
    }

    /// The least `shadingGain` leaves of the source's shading: the shadows are part of the
    /// face's shape, and removed outright it looked flat and lost the source's likeness.
    static let minShadingGain: Float = 0.4

    /// Normalised Gaussian low-pass of one plane inside a mask.
    static func maskedLowPass(plane: [Float], _ mask: Mask, sigma: Double) throws -> [Float] {
        let num = try Mask(width: mask.width, height: mask.height, values: zip(plane, mask.values).map { $0 * $1 }).blurred(sigma: sigma)
        let den = try mask.blurred(sigma: sigma)
        return zip(num.values, den.values).map { $1 > 1e-4 ? $0 / $1 : 0 }
    }

    /// The source skin's shading between a fortieth and a tenth of the face (`band`: cast
    /// shadows, deep eye sockets, a hard side light's fall-off across a cheek) and, per pixel,
    /// the factor on it (`gain`, at most 1) that brings its local contrast, relative to the
    /// broad light, down to the target skin's at the same scale. The broad ratio in `relight`
    /// evens out light only at a tenth of the face; a harshly lit source kept its shadows on a
    /// softly lit target, a dirty half face. Never raised: a flat source is not given the
    /// target's shadows, which would land on the source's features, not the target's.
    static func shadingGain(_ f: Image, like t: Image, lit: Mask, broad: (source: Image, target: Image), faceWidth: Double) throws
        -> (band: [Float], gain: [Float]) {
        let n = f.pixelCount
        // The band's fine edge: finer than a fortieth of the face is texture (pores, stubble,
        // wrinkles), which carries identity and is left alone. Its contrast is compared over
        // neighbourhoods of 0.15 face widths.
        let sigmaBand = max(1, 0.025 * faceWidth), sigmaEnergy = max(3, 0.15 * faceWidth)
        let yf = Array(f.rgb[0..<n]), yt = Array(t.rgb[0..<n])
        let mf = try maskedLowPass(plane: yf, lit, sigma: sigmaBand), mt = try maskedLowPass(plane: yt, lit, sigma: sigmaBand)
        var band = [Float](repeating: 0, count: n), rf = band, rt = band
        for i in 0..<n {
            band[i] = mf[i] - broad.source.rgb[i]
            let r = band[i] / max(broad.source.rgb[i], 0.05), q = (mt[i] - broad.target.rgb[i]) / max(broad.target.rgb[i], 0.05)
            rf[i] = r * r; rt[i] = q * q
        }
        let ef = try maskedLowPass(plane: rf, lit, sigma: sigmaEnergy), et = try maskedLowPass(plane: rt, lit, sigma: sigmaEnergy)
        let gain = (0..<n).map { i -> Float in
            let a = ef[i].squareRoot(), b = et[i].squareRoot()
            return a > 1e-4 ? min(1, max(minShadingGain, b / a)) : 1
        }
        return (band, gain)
    }

    /// A face's skin chromaticity (blue and red difference over luma, as `relight` works)
    /// as a function of luma: means over luma bins of the weighted pixels, joined linearly
    /// and held level past the ends. Skin rarely keeps one chromaticity from light to shadow:
    /// clipped highlights go white and shadows turn warmer and deeper.
    struct SkinTone {
        /// Bin centres (luma) and the mean chromaticity there, for bins with enough weight.
        var luma: [Float] = [], blue: [Float] = [], red: [Float] = []

        static let bins = 20

        /// `image` in the luma / blue-difference / red-difference planes `relight` makes.
        init(_ image: Image, weight: [Float], lumaFloor: Float) {
            let n = image.pixelCount, k = SkinTone.bins
            var w = [Double](repeating: 0, count: k), sb = w, sr = w
            for i in 0..<n where weight[i] > 0 {
                let y = image.rgb[i]
                guard y.isFinite else { continue }
                let bin = min(k - 1, max(0, Int(y * Float(k))))
                let wy = Double(weight[i]), yy = Double(max(y, lumaFloor))
                w[bin] += wy
                sb[bin] += wy * Double(image.rgb[n + i]) / yy
                sr[bin] += wy * Double(image.rgb[2 * n + i]) / yy
            }
            // A bin needs a share of the skin: a few stray pixels (a nostril's rim, a catch
            // light) say nothing of how the skin's colour goes.
            let total = w.reduce(0, +)
            for b in 0..<k where w[b] > max(8, 0.01 * total) {
                luma.append((Float(b) + 0.5) / Float(k))
                blue.append(Float(sb[b] / w[b]))
                red.append(Float(sr[b] / w[b]))
            }
        }

        /// The chromaticity at luma `y`; (0, 0) when no bin was filled.
        func chromaticity(at y: Float) -> (Float, Float) {
            guard let first = luma.first, let last = luma.last else { return (0, 0) }
            if y <= first { return (blue[0], red[0]) }
            if y >= last { return (blue[luma.count - 1], red[luma.count - 1]) }
            var j = 1
            while luma[j] < y { j += 1 }
            let a = (y - luma[j - 1]) / (luma[j] - luma[j - 1])
            return (blue[j - 1] + a * (blue[j] - blue[j - 1]), red[j - 1] + a * (red[j] - red[j - 1]))
        }
    }

    /// The most `sharpened` raises detail: the factor on it, less 1.
    static let maxSharpening: Float = 1

    /// `image` with its luma's detail at scale `sigma` (luma less its Gaussian low-pass) raised
    /// towards `target`'s over `region`, never above it and at most doubled; `amount` is the
    /// factor added to the detail (0: unchanged). A source face enlarged onto a sharper photo
    /// has its own pixels' detail, magnified, too weak: at that scale it is brought up where
    /// the source has it, and the matched grain makes up the finest scale.
    static func sharpened(_ image: Image, like target: Image, region: Region, sigma: Double) throws -> (image: Image, amount: Float) {
        let n = image.pixelCount
        let luma = image.grey(), lumaT = target.grey()
        let low = try Image(grey: luma, width: image.width, height: image.height).blurred(sigma: sigma).grey()
        let lowT = try Image(grey: lumaT, width: target.width, height: target.height).blurred(sigma: sigma).grey()
        var detail = 0.0, detailT = 0.0
        for i in 0..<n where region.bits[i] {
            detail += Double(abs(luma[i] - low[i]))
            detailT += Double(abs(lumaT[i] - lowT[i]))
        }
        guard detail > 0 else { return (image, 0) }
        let k = min(max(Float(detailT / detail) - 1, 0), maxSharpening)
        guard k > 0 else { return (image, 0) }
        var out = image
        for i in 0..<n {
            let d = k * (luma[i] - low[i])
            for c in 0..<3 { out.rgb[c * n + i] = min(max(image.rgb[c * n + i] + d, 0), 1) }
        }
        return (out, k)
    }

    /// The fine-detail strength of `image`'s luma over `region`: the robust spread (1.4826 ×
    /// median absolute value) of its high-pass at σ 1.5 px, so edges and features count little.
    static func grainStrength(_ image: Image, region: Region) throws -> Float? {
        let luma = image.grey()
        let low = try Image(grey: luma, width: image.width, height: image.height).blurred(sigma: 1.5).grey()
        var residuals: [Float] = []
        for i in 0..<luma.count where region.bits[i] { residuals.append(abs(luma[i] - low[i])) }
        guard residuals.count >= 64 else { return nil }
        residuals.sort()
        return 1.4826 * residuals[residuals.count / 2]
    }

    /// `face` with luminance grain added on `skin` towards `target`'s fine detail on the same
    /// pixels (from the difference of their variances, as independent noise adds): a source face
    /// enlarged onto a sharper photo is otherwise smoother than the skin around it and reads as
    /// pasted on. The grain is noise softened to a pixel or so (pores and
    /// sensor grain at the photo's own scale), its edge faded over a few pixels; nothing is
    /// added where the source is already as detailed. Deterministic for a seed.
    static func matchedGrain(_ face: Image, like target: Image, skin: Region, seed: UInt64) throws -> Image {
        guard let want = try grainStrength(target, region: skin), let have = try grainStrength(face, region: skin),
              want > have * 1.05 else { return face }
        // Part of the difference, and at most 1 % of full scale: a wrinkled or JPEG-blocky
        // target's detail is not grain, and matched in full it speckled the face.
        let amplitude = min(0.7 * (want * want - have * have).squareRoot(), 0.01)
        let w = face.width, h = face.height, n = w * h
        let grain = try unitGrain(width: w, height: h, seed: 0x6EA1_0000 &+ seed, sigma: 0.7)
        // The median absolute high-pass of softened noise is below its RMS: scaled so the grain's
        // own measure comes out at `amplitude`.
        let all = Region(width: w, height: h, bits: [Bool](repeating: true, count: n))
        let unit = try grainStrength(Image(grey: grain, width: w, height: h), region: all) ?? 1
        let k = amplitude / max(unit, 1e-6)
        let weight = try skin.mask.blurred(sigma: 1.5)
        var out = face
        for i in 0..<n where weight.values[i] > 0 {
            let g = k * grain[i] * weight.values[i]
            for c in 0..<3 { out.rgb[c * n + i] = min(max(out.rgb[c * n + i] + g, 0), 1) }
        }
        return out
    }

    /// Seeded white noise softened by a Gaussian of `sigma` px, scaled to unit RMS: grain at
    /// about a pixel's scale for skin that would otherwise look painted on.
    static func unitGrain(width: Int, height: Int, seed: UInt64, sigma: Double) throws -> [Float] {
        let n = width * height
        let white = try SeededNoise(seed: seed).next([n]).values
        let soft = try Image(grey: white, width: width, height: height).blurred(sigma: sigma).grey()
        let spread = max((soft.reduce(0) { $0 + $1 * $1 } / Float(n)).squareRoot(), 1e-6)
        return soft.map { $0 / spread }
    }

    /// Where `image` looks like the skin sampled under `sample` (cheeks and nose): a Gaussian in
    /// chroma (Mahalanobis distance below √6) with luma not far below the sample's. Hair, hats
    /// and background fail it; used to keep the target's fringe and the source's out of the
    /// forehead, where the mesh's outline reaches the hairline.
    /// `minLuma` is the fraction of the sample's mean luma a pixel must reach; `maxTexture`, if
    /// given, bounds the local gradient energy (hair is strands, skin is smooth) as a multiple of
    /// the sample's median. With `highlights`, skin washed out by light also passes: brighter
    /// than the sample, smooth, its chroma on the line from grey to the skin's own tone (a shiny
    /// or overexposed forehead, which the chroma test calls grey and which, left out, showed as
    /// a grey blot inside the pasted face). Grey hair is as pale but strands are not smooth.
    static func skinLike(_ image: Image, sample: Mask, minLuma: Float = 0.6, maxTexture: Float? = nil,
                         highlights: Bool = false) throws -> [Bool] {
        let n = image.pixelCount
        var texture: [Float]?
        if maxTexture != nil || highlights {
            // Gradient energy of luma, averaged over a few pixels.
            let w = image.width, h = image.height
            let luma = image.grey()
            var g = [Float](repeating: 0, count: n)
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x
                    let dx = luma[y * w + min(x + 1, w - 1)] - luma[y * w + max(x - 1, 0)]
                    let dy = luma[min(y + 1, h - 1) * w + x] - luma[max(y - 1, 0) * w + x]
                    g[i] = dx * dx + dy * dy
                }
            }
            texture = try Mask(width: w, height: h, values: g).blurred(sigma: 1.5).values
        }
        var pts: [(Float, Float, Float)] = []
        for i in 0..<n where sample.values[i] > 0.5 {
            let r = image.rgb[i], g = image.rgb[n + i], b = image.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            pts.append((y, b - y, r - y))
        }
        guard pts.count >= 16 else { return [Bool](repeating: true, count: n) }
        let m = Float(pts.count)
        let my = pts.map(\.0).reduce(0, +) / m, mb = pts.map(\.1).reduce(0, +) / m, mr = pts.map(\.2).reduce(0, +) / m
        var sbb: Float = 0, srr: Float = 0, sbr: Float = 0
        for p in pts { sbb += (p.1 - mb) * (p.1 - mb); srr += (p.2 - mr) * (p.2 - mr); sbr += (p.1 - mb) * (p.2 - mr) }
        // A floor on the spread: a flat-lit face would otherwise reject its own forehead.
        sbb = sbb / m + 2e-4; srr = srr / m + 2e-4; sbr /= m
        let det = sbb * srr - sbr * sbr
        var textureLimit = Float.infinity, smoothLimit = Float.infinity
        if let texture {
            let sampled = (0..<n).filter { sample.values[$0] > 0.5 }.map { texture[$0] }.sorted()
            let typical = max(sampled[sampled.count / 2], 1e-5)
            if let maxTexture { textureLimit = maxTexture * typical }
            smoothLimit = 2 * typical
        }
        let tone2 = mb * mb + mr * mr
        var out = [Bool](repeating: false, count: n)
        for i in 0..<n {
            if let texture, texture[i] > textureLimit { continue }
            let r = image.rgb[i], g = image.rgb[n + i], b = image.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            let db = b - y - mb, dr = r - y - mr
            let d2 = (srr * db * db - 2 * sbr * db * dr + sbb * dr * dr) / det
            if d2 < 6 && y > minLuma * my {
                out[i] = true
            } else if highlights, y > my, tone2 > 1e-4, let texture, texture[i] <= smoothLimit {
                // Chroma (b − y, r − y) as t × the skin's tone plus an offset across it.
                let cb = b - y, cr = r - y
                let t = (cb * mb + cr * mr) / tone2
                let ob = cb - t * mb, or = cr - t * mr
                out[i] = t > -0.1 && t < 1.2 && (ob * ob + or * or) < 0.1 * tone2 + 1e-4
            }
        }
        return out
    }

    /// What lies over the source's inner face (a fringe, strands of hair falling across a
    /// cheek) in the warped source: skin pixels between the features that are much darker than
    /// the face's own skin, or off its colour and darker or redder. The skin model is sampled from
    /// the cheeks (`SkinModel`, as clothes sample the face), with the median luma, so a strand
    /// across the sample does not shift it. Eyes, brows, lips, nose, the band that glasses cover
    /// and everything below the nose's base are never tested. Thin dark lines (wrinkles, folds, a
    /// shadow's edge) and specks (freckles) are opened away and small blobs dropped; what remains
    /// is grown a little and softened. Also the share of the tested skin found occluded.
    static func sourceOcclusion(_ image: Image, mesh: [Point], sample: Mask, faceWidth: Double) throws -> (mask: Mask, share: Double) {
        let w = image.width, h = image.height, n = w * h
        let m3 = mesh.map { Point3($0.x, $0.y, 0) }
        func px(_ f: Double) -> Int { max(1, Int((f * faceWidth).rounded())) }
        var inner = Region(try FaceMasks.mask(.face, mesh: m3, width: w, height: h).eroded(radius: px(0.015)))
        inner = inner && !Region(try FaceMasks.mask(.eyes, mesh: m3, width: w, height: h).dilated(radius: px(0.09)))
        inner = inner && !Region(try FaceMasks.mask(.brows, mesh: m3, width: w, height: h).dilated(radius: px(0.04)))
        inner = inner && !Region(try FaceMasks.mask(.lips, mesh: m3, width: w, height: h).dilated(radius: px(0.02)))
        inner = inner && !Region(try FaceMasks.mask(.nose, mesh: m3, width: w, height: h).dilated(radius: px(0.01)))
        // Hair falls from above: below the nose's base lie a beard, a moustache and the folds
        // round the mouth, which are the source's own face.
        let le = mesh[33], re = mesh[263]
        let ex = re.x - le.x, ey = re.y - le.y, el = max((ex * ex + ey * ey).squareRoot(), 1e-6)
        let up = Point(ey / el, -ex / el)
        let base = mesh[2], eyes = Point((le.x + re.x) / 2, (le.y + re.y) / 2)
        let browIdx = MeshRegions.imageLeftBrow + MeshRegions.imageRightBrow
        let brow = Point(browIdx.map { mesh[$0].x }.reduce(0, +) / Double(browIdx.count),
                         browIdx.map { mesh[$0].y }.reduce(0, +) / Double(browIdx.count))
        func height(_ x: Int, _ y: Int, above p: Point) -> Double { (Double(x) - p.x) * up.x + (Double(y) - p.y) * up.y }
        // Glasses lie in the band from under the eyes to just over the brows, their frames
        // reaching out to the temples: that band is never tested either.
        for y in 0..<h {
            for x in 0..<w where height(x, y, above: base) < 0
                || (height(x, y, above: eyes) > -0.3 * el && height(x, y, above: brow) < 0.15 * el) {
                inner.bits[y * w + x] = false
            }
        }
        let none = (Mask(width: w, height: h, fill: 0), 0.0)
        let tested = inner.area
        guard tested > 0, let skin = SkinModel(image, sample: Region(sample) && inner) else { return none }
        let median = skin.medianLuma
        var hit = Region(width: w, height: h)
        for i in 0..<n where inner.bits[i] {
            // A forehead is evenly lit, so a fringe's thinner, lighter strands are caught there
            // by a stricter floor; on the cheeks only what is much darker than skin.
            let floor: Float = height(i % w, i / w, above: brow) > 0.15 * el ? 0.72 : 0.5
            let r = image.rgb[i], g = image.rgb[n + i], b = image.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            let db = b - y - skin.mean.0, dr = r - y - skin.mean.1
            let d2 = skin.inverse.0 * db * db + 2 * skin.inverse.1 * db * dr + skin.inverse.2 * dr * dr
            // Off the skin's colour and darker, or redder (auburn strands); a highlight is
            // off it too, but paler.
            hit.bits[i] = y < floor * median || (d2 >= 9 && (y < 0.9 * median || dr > 0))
        }
        hit = try hit.eroded(px(0.012)).dilated(px(0.012))
        hit = hit.withoutComponents(smallerThan: Int(0.004 * faceWidth * faceWidth))
        let occluded = hit.area
        guard occluded > 0 else { return none }
        var mask = try hit.dilated(px(0.025)).mask
        mask = try mask.blurred(sigma: 0.008 * faceWidth)
        return (mask, Double(occluded) / Double(tested))
    }
}
