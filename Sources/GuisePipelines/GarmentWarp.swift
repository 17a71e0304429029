import Foundation
import GuiseBody
import GuiseImage

/// Where each pixel of the person photo finds its garment pixel: a thin-plate spline through
/// the torso's landmarks (neck, shoulders, hips, and knees for long garments), and for each
/// limb whose bone both photos show, the similarity taking the person's bone onto the garment's,
/// so a sleeve follows an arm that is raised in one photo and hanging in the other without
/// bending the torso between them.
struct GarmentWarp {
    struct Pair {
        var name: String
        var person: Point
        var garment: Point
    }

    /// Person pixel → garment pixel for the torso.
    let torso: ThinPlateSpline
    /// Per limb (`BodyFrame.limbs` order), person → garment, or nil where the torso spline carries it.
    let limbs: [GuiseImage.AffineTransform?]
    let pairs: [Pair]

    /// RMS distance, in garment pixels, between the spline's image of each person landmark and
    /// the garment landmark it should reach.
    var residual: Double {
        let d = pairs.map { p -> Double in let q = torso.apply(p.person); return (q.x - p.garment.x) * (q.x - p.garment.x) + (q.y - p.garment.y) * (q.y - p.garment.y) }
        return (d.reduce(0, +) / Double(max(1, d.count))).squareRoot()
    }

    /// The torso's control pairs for `kind`. For a product photo, `neckline` is the neckline's
    /// middle (paired with the point as far above the person's shoulders, in units of the body's
    /// scale, as it is above the garment's), and
    /// `outline` pairs the garment's sides with the clothed body's in place of the hips.
    static func torsoPairs(person: BodyFrame, garment: BodyFrame, kind: GarmentKind, neckline: Point?,
                           outline: (person: [String: Point], garment: [String: Point])?) -> [Pair] {
        typealias J = BodyFrame.Joint
        var out: [Pair] = []
        func joint(_ j: J) { out.append(Pair(name: PoseLandmarks.names[j.rawValue], person: person[j], garment: garment[j])) }
        switch kind {
        case .upper, .dress:
            if let neckline {
                // Where the neckline sits relative to the shoulders is the garment's own cut (a
                // shirt's collar high, a vest's low): carried over in the body's frame.
                // d = side·across + rise·up (the axes need not be square to each other), in scales.
                let d = sub(neckline, garment.shoulderCentre), a = garment.across, u = garment.up
                let det = a.x * u.y - a.y * u.x
                let side0 = abs(det) > 1e-9 ? (d.x * u.y - d.y * u.x) / det : 0
                let rise0 = abs(det) > 1e-9 ? (a.x * d.y - a.y * d.x) / det : 0
                let rise = min(max(rise0 / garment.scale, -0.6), 0.4), side = min(max(side0 / garment.scale, -0.2), 0.2)
                let target = add(add(person.shoulderCentre, scaled(person.up, rise * person.scale)), scaled(person.across, side * person.scale))
                out.append(Pair(name: "neckline", person: target, garment: neckline))
            } else {
                out.append(Pair(name: "neck", person: person.neck, garment: garment.neck))
            }
            for j in [J.leftShoulder, .rightShoulder] { joint(j) }
            if let outline {
                for (name, p) in outline.person.sorted(by: { $0.key < $1.key }) {
                    if let g = outline.garment[name] { out.append(Pair(name: name, person: p, garment: g)) }
                }
            }
            // Where the person's hips are out of the photo, the garment's hem goes to where the
            // pose places them.
            if !out.contains(where: { $0.name.hasSuffix("_hem") }) {
                for j in [J.leftHip, .rightHip] { joint(j) }
            }
            if kind == .dress { for j in [J.leftKnee, .rightKnee] { joint(j) } }
        case .lower:
            out.append(Pair(name: "waist", person: add(person.hipCentre, scaled(person.up, 0.25 * person.scale)),
                            garment: add(garment.hipCentre, scaled(garment.up, 0.25 * garment.scale))))
            for j in [J.leftHip, .rightHip, .leftKnee, .rightKnee] { joint(j) }
        }
        return out
    }

    static func fit(person: BodyFrame, garment: BodyFrame, kind: GarmentKind, neckline: Point?, limbsFromGarment: Bool,
                    outline: (person: [String: Point], garment: [String: Point])? = nil) throws -> GarmentWarp {
        var pairs = torsoPairs(person: person, garment: garment, kind: kind, neckline: neckline, outline: outline)
        if pairs.count < 4 { pairs = torsoPairs(person: person, garment: garment, kind: kind, neckline: neckline, outline: nil) }
        // A touch of smoothing: pose points jitter by a few pixels, and an exact fit through a
        // jittered point folds the cloth around it.
        let torso = try ThinPlateSpline(from: pairs.map(\.person), to: pairs.map(\.garment), regularisation: 1e-4)
        let limbs: [GuiseImage.AffineTransform?] = try person.limbs(kind).map { _, a, b, _ in
            guard limbsFromGarment, person.located(a), person.located(b), garment.located(a), garment.located(b),
                  distance(person[a], person[b]) > 2, distance(garment[a], garment[b]) > 2 else { return nil }
            return try GuiseImage.AffineTransform.similarity(from: [person[a], person[b]], to: [garment[a], garment[b]])
        }
        return GarmentWarp(torso: torso, limbs: limbs, pairs: pairs)
    }

    /// The garment photo's colour, alpha (the garment region, soft) and low-passed luma,
    /// sampled for every pixel of `zone` (person photo coordinates). Past its edges the garment
    /// photo goes on as its last `edgeBand` pixels mirrored back and forth, so a garment the
    /// frame cuts off continues with the cloth at the cut: mirrored whole, a torso that runs far
    /// past a portrait's bottom edge would reach back up to the collar and print it upside down
    /// at the waist.
    struct Sampled {
        var rgb: [Float]
        var alpha: [Float]
        var shade: [Float]
    }

    func sample(garment: Image, alpha: [Float], shade: [Float], zone: Region, limbZones: [Region], edgeBand: Int = .max) -> Sampled {
        let w = zone.width, n = zone.bits.count
        let gw = garment.width, gh = garment.height, gn = garment.pixelCount
        var out = Sampled(rgb: [Float](repeating: 0, count: 3 * n), alpha: [Float](repeating: 0, count: n), shade: [Float](repeating: 1, count: n))
        @inline(__always) func reflect(_ v: Int, _ size: Int) -> Int {
            if v >= 0 && v < size { return v }
            let band = max(1, min(edgeBand, size))
            // Steps past the edge, folded into the band: 0 is the edge row, band − 1 the band's
            // inner end, then back out towards the edge.
            let d = v < 0 ? -v : v - (size - 1)
            let m = d % (2 * band)
            let k = m < band ? m : 2 * band - 1 - m
            return v < 0 ? k : size - 1 - k
        }
        for i in 0..<n where zone.bits[i] {
            let p = Point(Double(i % w), Double(i / w))
            var q: Point?
            for (k, lz) in limbZones.enumerated() where lz.bits[i] {
                if let t = limbs[k] { q = t.apply(p) }
                break
            }
            let g = q ?? torso.apply(p)
            guard g.x.isFinite, g.y.isFinite, abs(g.x) < 1e6, abs(g.y) < 1e6 else { continue }
            let x0f = g.x.rounded(.down), y0f = g.y.rounded(.down)
            let fx = Float(g.x - x0f), fy = Float(g.y - y0f)
            let x0 = Int(x0f), y0 = Int(y0f)
            let xa = reflect(x0, gw), xb = reflect(x0 + 1, gw), ya = reflect(y0, gh), yb = reflect(y0 + 1, gh)
            let w00 = (1 - fx) * (1 - fy), w10 = fx * (1 - fy), w01 = (1 - fx) * fy, w11 = fx * fy
            let i00 = ya * gw + xa, i10 = ya * gw + xb, i01 = yb * gw + xa, i11 = yb * gw + xb
            for c in 0..<3 {
                let o = c * gn
                out.rgb[c * n + i] = w00 * garment.rgb[o + i00] + w10 * garment.rgb[o + i10] + w01 * garment.rgb[o + i01] + w11 * garment.rgb[o + i11]
            }
            out.alpha[i] = w00 * alpha[i00] + w10 * alpha[i10] + w01 * alpha[i01] + w11 * alpha[i11]
            out.shade[i] = w00 * shade[i00] + w10 * shade[i10] + w01 * shade[i01] + w11 * shade[i11]
        }
        return out
    }
}
