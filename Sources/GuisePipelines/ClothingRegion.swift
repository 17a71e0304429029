import Foundation
import GuiseBody
import GuiseFace
import GuiseImage
import GuiseVision

/// Which garment a clothes swap replaces.
public enum GarmentKind: String, CaseIterable, Codable, Sendable {
    /// A top: torso from the neck to the hips, sleeves along the arms.
    case upper
    /// Trousers or a skirt: pelvis and legs.
    case lower
    /// Shoulders to the knees in one piece.
    case dress
}

/// A binary pixel map with the few operations the clothes pipeline needs; the soft `Mask`
/// round-trips through it for blurs and morphology.
struct Region: Equatable {
    let width: Int
    let height: Int
    var bits: [Bool]

    init(width: Int, height: Int, bits: [Bool]) {
        self.width = width
        self.height = height
        self.bits = bits
    }

    init(width: Int, height: Int, value: Bool = false) {
        self.init(width: width, height: height, bits: [Bool](repeating: value, count: width * height))
    }

    init(_ mask: Mask, threshold: Float = 0.5) {
        self.init(width: mask.width, height: mask.height, bits: mask.values.map { $0 > threshold })
    }

    var mask: Mask { Mask(width: width, height: height, values: bits.map { $0 ? 1 : 0 }) }
    var area: Int { bits.reduce(0) { $0 + ($1 ? 1 : 0) } }

    static func && (a: Region, b: Region) -> Region { Region(width: a.width, height: a.height, bits: zip(a.bits, b.bits).map { $0 && $1 }) }
    static func || (a: Region, b: Region) -> Region { Region(width: a.width, height: a.height, bits: zip(a.bits, b.bits).map { $0 || $1 }) }
    static prefix func ! (a: Region) -> Region { Region(width: a.width, height: a.height, bits: a.bits.map { !$0 }) }

    func dilated(_ radius: Int) throws -> Region { radius <= 0 ? self : Region(try mask.dilated(radius: radius)) }
    func eroded(_ radius: Int) throws -> Region { radius <= 0 ? self : Region(try mask.eroded(radius: radius)) }

    /// Filled polygon (pixel centres inside, outline pixels included).
    static func polygon(_ points: [Point], width: Int, height: Int) throws -> Region {
        Region(try FaceMasks.polygons([points], width: width, height: height))
    }

    /// Pixels within `radius` of the segment a–b.
    static func capsule(_ a: Point, _ b: Point, radius: Double, width: Int, height: Int) -> Region {
        var out = Region(width: width, height: height)
        guard radius > 0, a.x.isFinite, a.y.isFinite, b.x.isFinite, b.y.isFinite else { return out }
        let x0 = max(0, Int((min(a.x, b.x) - radius).rounded(.down))), x1 = min(width - 1, Int((max(a.x, b.x) + radius).rounded(.up)))
        let y0 = max(0, Int((min(a.y, b.y) - radius).rounded(.down))), y1 = min(height - 1, Int((max(a.y, b.y) + radius).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return out }
        let dx = b.x - a.x, dy = b.y - a.y, len2 = max(dx * dx + dy * dy, 1e-12)
        for y in y0...y1 {
            for x in x0...x1 {
                let t = min(max(((Double(x) - a.x) * dx + (Double(y) - a.y) * dy) / len2, 0), 1)
                let ex = Double(x) - (a.x + t * dx), ey = Double(y) - (a.y + t * dy)
                if ex * ex + ey * ey <= radius * radius { out.bits[y * width + x] = true }
            }
        }
        return out
    }

    /// The largest 4-connected component.
    func largestComponent() -> Region {
        var label = [Int32](repeating: 0, count: bits.count)
        var best = 0, bestLabel: Int32 = 0, next: Int32 = 0
        var stack: [Int] = []
        for s in bits.indices where bits[s] && label[s] == 0 {
            next += 1
            label[s] = next
            stack.append(s)
            var size = 0
            while let i = stack.popLast() {
                size += 1
                let x = i % width, y = i / width
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < width && ny < height {
                    let j = ny * width + nx
                    if bits[j] && label[j] == 0 { label[j] = next; stack.append(j) }
                }
            }
            if size > best { best = size; bestLabel = next }
        }
        return Region(width: width, height: height, bits: label.map { $0 == bestLabel && bestLabel != 0 })
    }

    /// The same region without its 4-connected components of fewer than `minimum` pixels.
    func withoutComponents(smallerThan minimum: Int) -> Region {
        var out = self
        var seen = [Bool](repeating: false, count: bits.count)
        var stack: [Int] = [], members: [Int] = []
        for s in bits.indices where bits[s] && !seen[s] {
            seen[s] = true
            stack.append(s)
            members.removeAll(keepingCapacity: true)
            while let i = stack.popLast() {
                members.append(i)
                let x = i % width, y = i / width
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < width && ny < height {
                    let j = ny * width + nx
                    if bits[j] && !seen[j] { seen[j] = true; stack.append(j) }
                }
            }
            if members.count < minimum { for i in members { out.bits[i] = false } }
        }
        return out
    }

    /// The pixels 8-connected within the region to any pixel of `seeds` that lies in it.
    func connected(to seeds: Region) -> Region {
        var out = Region(width: width, height: height)
        var stack = bits.indices.filter { bits[$0] && seeds.bits[$0] }
        for i in stack { out.bits[i] = true }
        while let i = stack.popLast() {
            let x = i % width, y = i / width
            for ny in max(0, y - 1)...min(height - 1, y + 1) {
                for nx in max(0, x - 1)...min(width - 1, x + 1) {
                    let j = ny * width + nx
                    if bits[j] && !out.bits[j] { out.bits[j] = true; stack.append(j) }
                }
            }
        }
        return out
    }

    /// The pixels of the region that `walls` closes round within `reach` pixels: above and below,
    /// or left and right, along the pixel's own column or row.
    func enclosed(by walls: Region, reach: Int) -> Region {
        // The distance to the nearest wall pixel in each of the four directions, in two passes
        // per axis.
        let far = Int.max / 4
        var up = [Int](repeating: far, count: bits.count), down = up, left = up, right = up
        for x in 0..<width {
            var last = -far
            for y in 0..<height { let i = y * width + x; if walls.bits[i] { last = y }; up[i] = y - last }
            last = far
            for y in stride(from: height - 1, through: 0, by: -1) { let i = y * width + x; if walls.bits[i] { last = y }; down[i] = last - y }
        }
        for y in 0..<height {
            var last = -far
            for x in 0..<width { let i = y * width + x; if walls.bits[i] { last = x }; left[i] = x - last }
            last = far
            for x in stride(from: width - 1, through: 0, by: -1) { let i = y * width + x; if walls.bits[i] { last = x }; right[i] = last - x }
        }
        return Region(width: width, height: height, bits: bits.indices.map { i in
            bits[i] && ((up[i] <= reach && down[i] <= reach) || (left[i] <= reach && right[i] <= reach))
        })
    }

    /// The outermost pixels of row `y` within `reach` of `centre`, nil for an empty row.
    func rowExtent(y: Double, centre: Double, reach: Double) -> (left: Double, right: Double)? {
        let r = Int(y.rounded())
        guard r >= 0, r < height else { return nil }
        let lo = max(0, Int(centre - reach)), hi = min(width - 1, Int(centre + reach))
        guard lo <= hi else { return nil }
        var a = -1, b = -1
        for x in lo...hi where bits[r * width + x] { if a < 0 { a = x }; b = x }
        return a < 0 ? nil : (Double(a), Double(b))
    }

    /// Holes (background not connected to the border) filled.
    func holesFilled() -> Region {
        var outside = [Bool](repeating: false, count: bits.count)
        var stack: [Int] = []
        for x in 0..<width { stack.append(x); stack.append((height - 1) * width + x) }
        for y in 0..<height { stack.append(y * width); stack.append(y * width + width - 1) }
        while let i = stack.popLast() {
            guard !bits[i], !outside[i] else { continue }
            outside[i] = true
            let x = i % width, y = i / width
            if x > 0 { stack.append(i - 1) }
            if x < width - 1 { stack.append(i + 1) }
            if y > 0 { stack.append(i - width) }
            if y < height - 1 { stack.append(i + width) }
        }
        return Region(width: width, height: height, bits: outside.map { !$0 })
    }

    /// Holes of at most `maxArea` pixels filled; larger ones kept.
    func smallHolesFilled(maxArea: Int) -> Region {
        let holes = holesFilled().bits.enumerated().map { $1 && !bits[$0] }
        var out = self, seen = [Bool](repeating: false, count: bits.count)
        var stack: [Int] = [], piece: [Int] = []
        for start in 0..<bits.count where holes[start] && !seen[start] {
            piece.removeAll(keepingCapacity: true)
            stack.append(start); seen[start] = true
            while let i = stack.popLast() {
                piece.append(i)
                let x = i % width, y = i / width
                for (j, ok) in [(i - 1, x > 0), (i + 1, x < width - 1), (i - width, y > 0), (i + width, y < height - 1)]
                    where ok && holes[j] && !seen[j] {
                    seen[j] = true
                    stack.append(j)
                }
            }
            if piece.count <= maxArea { for i in piece { out.bits[i] = true } }
        }
        return out
    }
}

func add(_ a: Point, _ b: Point) -> Point { Point(a.x + b.x, a.y + b.y) }
func sub(_ a: Point, _ b: Point) -> Point { Point(a.x - b.x, a.y - b.y) }
func scaled(_ a: Point, _ s: Double) -> Point { Point(a.x * s, a.y * s) }
func mid(_ a: Point, _ b: Point) -> Point { Point((a.x + b.x) / 2, (a.y + b.y) / 2) }
func lerp(_ a: Point, _ b: Point, _ t: Double) -> Point { Point(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t) }
func distance(_ a: Point, _ b: Point) -> Double { ((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)).squareRoot() }
func unit(_ a: Point) -> Point { let n = max((a.x * a.x + a.y * a.y).squareRoot(), 1e-9); return Point(a.x / n, a.y / n) }

/// The body's frame from pose points: named landmarks, the torso's axes and its scale.
/// MediaPipe's left/right are the person's own; here they stay as named.
struct BodyFrame {
    enum Joint: Int, CaseIterable {
        case nose = 0, leftShoulder = 11, rightShoulder = 12, leftElbow = 13, rightElbow = 14, leftWrist = 15, rightWrist = 16,
             leftHip = 23, rightHip = 24, leftKnee = 25, rightKnee = 26, leftAnkle = 27, rightAnkle = 28
    }

    var points: [Point]
    var visibility: [Double]
    var width: Int
    var height: Int

    init(landmarks: [PoseLandmark], width: Int, height: Int) {
        points = landmarks.prefix(PoseLandmarks.bodyCount).map(\.point)
        visibility = landmarks.prefix(PoseLandmarks.bodyCount).map(\.visibility)
        self.width = width
        self.height = height
    }

    init(points: [Point], visibility: [Double], width: Int, height: Int) {
        self.points = points
        self.visibility = visibility
        self.width = width
        self.height = height
    }

    subscript(_ j: Joint) -> Point { points[j.rawValue] }

    /// In view: likely visible and inside the photo (a little margin for joints at the edge).
    func seen(_ j: Joint, visibility least: Double = 0.5) -> Bool {
        let p = self[j], m = 0.02 * Double(max(width, height))
        return visibility[j.rawValue] >= least && p.x >= -m && p.y >= -m && p.x <= Double(width - 1) + m && p.y <= Double(height - 1) + m
    }

    /// Placed well enough to carry a sleeve: the pose model puts a joint hidden behind the body
    /// or an object about right, so a low visibility is enough when the point is in the photo.
    func located(_ j: Joint) -> Bool { seen(j, visibility: 0.15) }

    var shoulderCentre: Point { mid(self[.leftShoulder], self[.rightShoulder]) }
    var hipCentre: Point { mid(self[.leftHip], self[.rightHip]) }
    var shoulderWidth: Double { max(distance(self[.leftShoulder], self[.rightShoulder]), 1) }
    /// The body's scale: shoulder width, or for a side view the torso length's share.
    var scale: Double { max(shoulderWidth, 0.45 * distance(shoulderCentre, hipCentre), 4) }
    /// Unit vector from the hips towards the shoulders.
    var up: Point { unit(sub(shoulderCentre, hipCentre)) }
    /// Unit vector from the body's right side to its left (towards the image's right for a person facing the camera).
    var across: Point { unit(sub(self[.leftShoulder], self[.rightShoulder])) }
    var acrossHips: Point { unit(sub(self[.leftHip], self[.rightHip])) }

    /// The base of the neck: a little above the shoulders' centre.
    var neck: Point { add(shoulderCentre, scaled(up, 0.08 * scale)) }
    /// Where the shoulders' slope meets the neck's sides: a fifth of the scale above the
    /// shoulders' line. Above it the bare body is the neck column alone.
    var slopeTop: Point { add(shoulderCentre, scaled(up, 0.2 * scale)) }
    /// The neck's column: 0.12 of the scale each side of the line from the shoulders' centre up
    /// past the neck point by `reach` scales.
    func neckColumn(reach: Double = 0.2, width: Int, height: Int) -> Region {
        Region.capsule(shoulderCentre, add(neck, scaled(up, reach * scale)), radius: 0.12 * scale, width: width, height: height)
    }

    /// The torso polygon for `kind`, widened for loose clothing, from the neck to below the hips.
    func torsoPolygon(_ kind: GarmentKind) -> [Point] {
        let s = scale, u = up, a = across, ah = acrossHips
        let ls = add(add(self[.leftShoulder], scaled(a, 0.12 * s)), scaled(u, 0.1 * s))
        let rs = add(add(self[.rightShoulder], scaled(a, -0.12 * s)), scaled(u, 0.1 * s))
        let neckL = add(add(shoulderCentre, scaled(a, 0.18 * s)), scaled(u, 0.45 * s))
        let neckR = add(add(shoulderCentre, scaled(a, -0.18 * s)), scaled(u, 0.45 * s))
        let lh = add(add(self[.leftHip], scaled(ah, 0.22 * s)), scaled(u, -0.08 * s))
        let rh = add(add(self[.rightHip], scaled(ah, -0.22 * s)), scaled(u, -0.08 * s))
        switch kind {
        case .upper:
            return [rs, neckR, neckL, ls, lh, rh]
        case .lower:
            let lw = add(add(self[.leftHip], scaled(ah, 0.25 * s)), scaled(u, 0.25 * s))
            let rw = add(add(self[.rightHip], scaled(ah, -0.25 * s)), scaled(u, 0.25 * s))
            let crotch = add(hipCentre, scaled(u, -0.45 * s))
            return [rw, lw, add(lh, scaled(u, -0.1 * s)), crotch, add(rh, scaled(u, -0.1 * s))]
        case .dress:
            let lk = add(self[.leftKnee], scaled(ah, 0.3 * s)), rk = add(self[.rightKnee], scaled(ah, -0.3 * s))
            return [rs, neckR, neckL, ls, lh, lk, rk, rh]
        }
    }

    /// The quadrilateral between the shoulders (as the torso polygon widens them) and `top`'s
    /// level along `up` (the mouth: a collar may reach the jaw beside the chin); nil when `top`
    /// is not above the shoulders.
    func collar(top chin: Point) -> [Point]? {
        let s = scale, u = up, a = across
        let ls = add(add(self[.leftShoulder], scaled(a, 0.12 * s)), scaled(u, 0.1 * s))
        let rs = add(add(self[.rightShoulder], scaled(a, -0.12 * s)), scaled(u, 0.1 * s))
        let rise = (chin.x - shoulderCentre.x) * u.x + (chin.y - shoulderCentre.y) * u.y - 0.1 * s
        guard rise > 0 else { return nil }
        return [rs, add(rs, scaled(u, rise)), add(ls, scaled(u, rise)), ls]
    }

    /// The body itself above the shoulder line, as a bare body is shaped: each shoulder's top
    /// (0.12 of the scale above its joint) rising to the neck's sides (0.17 from the middle) at
    /// `top`'s level. A collar, a hood or a suit's ring reaches beyond it.
    func shoulderSlope(top: Point) -> [Point]? {
        let s = scale, u = up, a = across
        let rise = (top.x - shoulderCentre.x) * u.x + (top.y - shoulderCentre.y) * u.y
        guard rise > 0.12 * s else { return nil }
        let rOut = add(self[.rightShoulder], scaled(a, -0.1 * s)), lOut = add(self[.leftShoulder], scaled(a, 0.1 * s))
        let rTop = add(add(self[.rightShoulder], scaled(a, -0.05 * s)), scaled(u, 0.12 * s))
        let lTop = add(add(self[.leftShoulder], scaled(a, 0.05 * s)), scaled(u, 0.12 * s))
        let rNeck = add(add(shoulderCentre, scaled(a, -0.17 * s)), scaled(u, rise))
        let lNeck = add(add(shoulderCentre, scaled(a, 0.17 * s)), scaled(u, rise))
        return [rOut, rTop, rNeck, lNeck, lTop, lOut]
    }

    /// Beside the torso, out to where hanging arms and a loose jacket reach, shoulders to hips:
    /// whatever of the person lies there belongs to a top (sleeves, the jacket's sides).
    func sideBand(_ kind: GarmentKind) -> [Point]? {
        guard kind != .lower else { return nil }
        let s = scale, u = up, a = across, ah = acrossHips
        let bottom = kind == .dress ? (self[.leftKnee], self[.rightKnee]) : (self[.leftHip], self[.rightHip])
        return [add(add(self[.rightShoulder], scaled(a, -0.7 * s)), scaled(u, 0.1 * s)),
                add(add(self[.leftShoulder], scaled(a, 0.7 * s)), scaled(u, 0.1 * s)),
                add(add(bottom.0, scaled(ah, 0.7 * s)), scaled(u, -0.08 * s)),
                add(add(bottom.1, scaled(ah, -0.7 * s)), scaled(u, -0.08 * s))]
    }

    /// The upper torso used to measure fit: shoulders down to 75 % of the way to the hips.
    var upperTorso: [Point] {
        [self[.rightShoulder], self[.leftShoulder],
         lerp(self[.leftShoulder], self[.leftHip], 0.75), lerp(self[.rightShoulder], self[.rightHip], 0.75)]
    }

    /// The limb bones a garment of `kind` covers, as (name, from, to, radius in units of scale).
    func limbs(_ kind: GarmentKind) -> [(String, Joint, Joint, Double)] {
        switch kind {
        case .upper:
            return [("left upper arm", .leftShoulder, .leftElbow, 0.19), ("right upper arm", .rightShoulder, .rightElbow, 0.19),
                    ("left forearm", .leftElbow, .leftWrist, 0.15), ("right forearm", .rightElbow, .rightWrist, 0.15)]
        case .lower:
            return [("left thigh", .leftHip, .leftKnee, 0.26), ("right thigh", .rightHip, .rightKnee, 0.26),
                    ("left shin", .leftKnee, .leftAnkle, 0.18), ("right shin", .rightKnee, .rightAnkle, 0.18)]
        case .dress:
            return [("left upper arm", .leftShoulder, .leftElbow, 0.19), ("right upper arm", .rightShoulder, .rightElbow, 0.19)]
        }
    }

    /// The joints that must be in view for a garment of `kind`.
    static func required(_ kind: GarmentKind) -> [Joint] {
        switch kind {
        case .upper: [.leftShoulder, .rightShoulder]
        case .lower: [.leftHip, .rightHip, .leftKnee, .rightKnee]
        case .dress: [.leftShoulder, .rightShoulder, .leftHip, .rightHip]
        }
    }

    /// Hands (wrist and finger points) as discs, and for lower garments the feet.
    func extremities(_ kind: GarmentKind) -> [Region] {
        let groups: [[Int]] = kind == .lower ? [[27, 29, 31], [28, 30, 32]] : [[15, 17, 19, 21], [16, 18, 20, 22]]
        return groups.map { g in
            let pts = g.map { points[$0] }
            let c = Point(pts.map(\.x).reduce(0, +) / Double(pts.count), pts.map(\.y).reduce(0, +) / Double(pts.count))
            let reach = pts.map { distance($0, c) }.max() ?? 0
            let r = max(0.11 * scale, 1.6 * reach)
            return Region.capsule(points[g[0]], c, radius: r, width: width, height: height)
        }
    }
}

/// A person's clothing region and what it is cut from: the "clothing-agnostic" split of
/// virtual try-on work (what may change versus face, hands, skin and background).
struct BodyAnalysis {
    var frame: BodyFrame
    /// The pose network's person mask, thresholded.
    var person: Region
    /// The region's polygon for the torso part.
    var torso: Region
    /// Per limb, its capsule (minus the torso polygon), in `frame.limbs(kind)` order.
    var limbs: [Region]
    /// Beside the torso and limbs (`BodyFrame.sideBand`); follows the torso's warp.
    var band: Region
    /// Between the shoulders, from the shoulder line up to the mouth's level: the neck and the
    /// tops of the shoulders, where a collar may reach above the torso polygon; never painted,
    /// only cleared (the face, skin and hair in it are not part of the region).
    var collar: Region
    /// The bare shoulders above the shoulder line, up to the neck's sides at `BodyFrame.slopeTop`
    /// (`BodyFrame.shoulderSlope`).
    var slope: Region
    var face: Region
    var hands: Region
    /// The hands' whole discs, before they are cut to the skin in them: a hand with its cuff,
    /// watch or glove.
    var handZones: Region
    /// Forearms lying over the torso: in front of it, so they stay.
    var frontArms: Region
    /// The old sleeves on those forearms (their pixels that are not skin, hand, face or hair):
    /// part of the region, so the new garment's sleeve colour or bare skin replaces them there.
    var frontSleeves: Region
    var skin: Region
    /// Hair, from the head down over the shoulders and back (`HairModel`): in front of any garment.
    var hair: Region
    /// What may be replaced: old clothing, neither face, hands, skin, hair nor background.
    var region: Region
    /// The face's mean skin colour, if a face was found.
    var skinColour: (Float, Float, Float)?
    /// A region the caller gave: nothing outside it changes.
    var limit: Region?
    /// The face's skin colours, if a face was found.
    var skinModel: SkinModel? = nil

    /// Everything a new garment may be painted over: the person (grown a little), inside the
    /// kind's polygon and limbs, not the face, hands or forearms in front.
    func paintable(grow: Int) throws -> Region {
        var zone = torso || band
        for l in limbs { zone = zone || l }
        let paintable = try person.dilated(grow) && zone && !face && !hands && !frontArms
        // A region the caller gave is theirs to say, hair included.
        return limit.map { paintable && $0 } ?? (paintable && !hair)
    }

    /// The clothed body's sides at the chest (35 % of the way from shoulders to hips) and at the
    /// hips, to pair with a product photo's outline.
    var outline: [String: Point] {
        var out: [String: Point] = [:]
        var zone = torso || band
        for l in limbs { zone = zone || l }
        let body = zone && person && !face
        let top = frame.shoulderCentre.y, hip = frame.hipCentre.y
        for (name, y) in [("chest", top + 0.35 * (hip - top)), ("hem", hip)] {
            let c = frame.shoulderCentre.x + (frame.hipCentre.x - frame.shoulderCentre.x) * (y - top) / max(hip - top, 1)
            if let e = body.rowExtent(y: y, centre: c, reach: 1.3 * frame.scale) {
                out["left_" + name] = Point(e.right, y)
                out["right_" + name] = Point(e.left, y)
            }
        }
        // The top of each shoulder: the last point of the body (not hair, not the face) straight
        // up from the shoulder joint, so a product garment's shoulders reach the person's.
        let solid = person && !hair && !face
        for (name, j) in [("left_shoulder_top", BodyFrame.Joint.leftShoulder), ("right_shoulder_top", .rightShoulder)] {
            let p = frame[j], u = frame.up
            var top: Point?
            for k in 0...Int(0.35 * frame.scale) {
                let q = add(p, scaled(u, Double(k)))
                let x = Int(q.x.rounded()), y = Int(q.y.rounded())
                guard x >= 0, y >= 0, x < person.width, y < person.height, solid.bits[y * person.width + x] else { break }
                top = q
            }
            if let top, distance(top, p) >= 0.05 * frame.scale { out[name] = top }
        }
        return out
    }

    /// The pixels of `candidates` of `sample`'s main colour: within 2.5 times the median
    /// distance (at least 0.1) of its per-channel median, by Euclidean distance in RGB, or twice
    /// that for pixels no brighter than the median in any channel (the cloth in shadow). Medians,
    /// so a watch or a white cuff in the sample does not widen the colour to take them in.
    static func coloured(like sample: Region, in candidates: Region, image: Image) -> Region {
        let n = image.pixelCount
        var out = Region(width: image.width, height: image.height)
        let picked = (0..<n).filter { sample.bits[$0] }
        guard !picked.isEmpty else { return out }
        func median(_ v: [Float]) -> Float { v.sorted()[v.count / 2] }
        let centre = (0..<3).map { c in median(picked.map { image.rgb[c * n + $0] }) }
        func distance(_ i: Int) -> Float {
            var d2: Float = 0
            for c in 0..<3 { let d = image.rgb[c * n + i] - centre[c]; d2 += d * d }
            return d2.squareRoot()
        }
        let reach = max(0.1, 2.5 * median(picked.map(distance)))
        for i in 0..<n where candidates.bits[i] {
            let darker = (0..<3).allSatisfy { image.rgb[$0 * n + i] <= centre[$0] + 0.02 }
            out.bits[i] = distance(i) <= (darker ? 2 * reach : reach)
        }
        return out
    }

    /// The side of the line through the wrist, square to the forearm, that the elbow is on,
    /// moved `margin` pixels past the wrist.
    static func beforeWrist(elbow: Point, wrist: Point, margin: Double, width w: Int, height h: Int) -> Region {
        var out = Region(width: w, height: h)
        let len = distance(elbow, wrist)
        guard len > 1e-6 else { return out }
        let ux = (wrist.x - elbow.x) / len, uy = (wrist.y - elbow.y) / len
        for y in 0..<h {
            for x in 0..<w where (Double(x) - wrist.x) * ux + (Double(y) - wrist.y) * uy <= margin { out.bits[y * w + x] = true }
        }
        return out
    }

    /// A hand's zone is a disc round the pose's hand points, wide enough for any fist or glove;
    /// on a hand held against the torso it takes in the clothing round the fingers, which then
    /// stays as a round patch of the old garment beside the new. A disc in which the hand's skin
    /// shows (a tenth of it or more) is cut to that skin grown by 3 % of the body's scale (a
    /// watch, a cuff's edge); one with less (a glove, a hand turned away) stays whole.
    static func handsCutToSkin(_ discs: [Region], skin: Region, scale s: Double) throws -> Region {
        var out = Region(width: skin.width, height: skin.height)
        let grown = skin.area > 0 ? try skin.dilated(max(1, Int((0.03 * s).rounded()))) : skin
        for disc in discs {
            out = out || (10 * (disc && skin).area >= disc.area ? disc && grown : disc)
        }
        return out
    }

    static func analyse(_ image: Image, kind: GarmentKind, pose: PoseEstimator, faceDetector: FaceDetector, analyzer: FaceAnalyzer,
                        label: String, override: Mask?) throws -> BodyAnalysis {
        guard let p = try pose.estimate(image, segmentation: true), let soft = p.mask else {
            throw BodyError("no person found in \(label)", category: .notFound)
        }
        let w = image.width, h = image.height
        let frame = BodyFrame(landmarks: p.landmarks, width: w, height: h)
        let missing = BodyFrame.required(kind).filter { !frame.seen($0) }
        if !missing.isEmpty {
            let names = missing.map { PoseLandmarks.names[$0.rawValue].replacingOccurrences(of: "_", with: " ") }
            throw PipelineError("\(label) does not show the body parts a \(kind.rawValue) garment needs (\(names.joined(separator: ", ")) out of view)",
                                category: .input)
        }
        let person = Region(soft)
        let s = frame.scale
        let torso = try Region.polygon(frame.torsoPolygon(kind), width: w, height: h)
        var limbs: [Region] = []
        var frontArms = Region(width: w, height: h)
        var forearms: [Region] = []
        for (name, a, b, r) in frame.limbs(kind) {
            let cap = Region.capsule(frame[a], frame[b], radius: r * s, width: w, height: h)
            if name.hasSuffix("forearm") {
                // A forearm over the torso is in front of it (the pose cannot see behind the body).
                // It ends a little past the wrist: the capsule's round end beyond would keep a
                // strip of the old garment beside the fist (the hand's own zone covers the hand).
                let arm = cap && torso && beforeWrist(elbow: frame[a], wrist: frame[b], margin: 0.03 * s, width: w, height: h)
                frontArms = frontArms || arm
                forearms.append(arm && person)
            }
            limbs.append(cap && !torso)
        }
        let extremities = frame.extremities(kind)
        let handZones = extremities.reduce(Region(width: w, height: h)) { $0 || $1 }
        var band = Region(width: w, height: h)
        if let side = frame.sideBand(kind) { band = try Region.polygon(side, width: w, height: h) && !torso }
        for l in limbs { band = band && !l }

        // Face oval from the mesh, grown a little; without a face, a disc round the head's points.
        var face = Region(width: w, height: h)
        var skinColour: (Float, Float, Float)?
        var skinModel: SkinModel?
        var skin = Region(width: w, height: h)
        var hair = Region(width: w, height: h)
        var collar = Region(width: w, height: h)
        var slope = Region(width: w, height: h)
        var skinEdge = Region(width: w, height: h)
        // The face margin's pixels below the mouth that are a collar, light or dark: they may change.
        var collarInFaceMargin = Region(width: w, height: h)
        let faces = try faceDetector.detect(image, order: .largest)
        let head = frame[.nose]
        if let f = faces.first(where: { f in head.x >= f.box.x - f.box.width && head.x <= f.box.x + 2 * f.box.width }) ?? faces.first,
           f.keypoints[KeypointName.leftEye] != nil, let lm = try? analyzer.landmarks(image, face: f) {
            let oval = try FaceMasks.mask(.face, mesh: lm.mesh, width: w, height: h)
            face = try Region(oval).dilated(max(1, Int(0.02 * s)))
            let sample = try Region(try FaceMasks.mask(.skin, mesh: lm.mesh, width: w, height: h)).eroded(max(1, Int(0.02 * s)))
            skinModel = SkinModel(image, sample: sample)
            let like = skinModel?.classify(image) ?? [Bool](repeating: false, count: image.pixelCount)
            // An opening drops specks of skin-coloured cloth; what stays is bare skin.
            let open = max(2, Int(0.025 * s))
            let opened = try Region(width: w, height: h, bits: like).eroded(open).dilated(open)
            skin = try opened.dilated(max(2, Int(0.03 * s)) - open)
            // The grown margin's pixels that are not skin-coloured are the edge of what the skin
            // meets: a dark collar kept there would stay as a line round the neck.
            skinEdge = skin && !opened && !Region(width: w, height: h, bits: like)
            // Small islands inside the skin that fail the colour test (a shadow on a forearm, a
            // watch) are part of the skin, not clothing to fill.
            let islands = skin.smallHolesFilled(maxArea: Int(0.015 * s * s)) && !skin
            skin = skin || islands
            // A neck's creases and its shadowed middle fail the colour test between its lit
            // sides and the jaw, in a bay the skin and face almost close round: within the
            // neck's column they are neck. Taken for cloth, a wrinkled neck would go into a
            // garment taken off its wearer and print as brown blotches in another's collar.
            let neckColumn = frame.neckColumn(width: w, height: h)
            let bridge = max(2, Int((0.03 * s).rounded()))
            skin = skin || (try (skin || face).dilated(bridge).eroded(bridge) && neckColumn && !face)
            // A bare forearm across the torso is its skin, not the whole capsule round its bone:
            // the cloth between the capsule's edge and the arm would stay as a strip beside it.
            frontArms = Region(width: w, height: h)
            for part in forearms {
                let bare = part && skin && !skinEdge
                frontArms = frontArms || (2 * bare.area > part.area ? bare : part)
            }
            var sum = (0.0, 0.0, 0.0), count = 0.0
            let n = image.pixelCount
            for i in 0..<n where sample.bits[i] && like[i] {
                sum.0 += Double(image.rgb[i]); sum.1 += Double(image.rgb[n + i]); sum.2 += Double(image.rgb[2 * n + i]); count += 1
            }
            if count > 0 { skinColour = (Float(sum.0 / count), Float(sum.1 / count), Float(sum.2 / count)) }
            var clothed = torso || band
            for l in limbs { clothed = clothed || l }
            clothed = clothed && person && !face && !handZones && !frontArms && !skin
            hair = HairModel.estimate(image, frame: frame, oval: Region(oval), person: person, skin: skin,
                                      clothing: clothed)
            if kind != .lower {
                let mouth = Point(lm.mesh[14].x, lm.mesh[14].y)
                collar = try frame.collar(top: mouth).map { try Region.polygon($0, width: w, height: h) } ?? collar
                slope = try frame.shoulderSlope(top: frame.slopeTop).map { try Region.polygon($0, width: w, height: h) } ?? slope
                // The face's margin is kept whole except where a light collar reaches the jaw: below
                // the mouth, not skin-coloured and brighter than the face, it is cloth (a beard or a
                // shadow there is darker, and stays).
                if let tone = skinColour {
                    let luma = image.grey(), u = frame.up, mouthLevel = mouth.x * u.x + mouth.y * u.y
                    let toneLuma = 0.299 * tone.0 + 0.587 * tone.1 + 0.114 * tone.2
                    let ovalRegion = Region(oval)
                    for i in 0..<n where face.bits[i] && !ovalRegion.bits[i] && !like[i] && luma[i] > toneLuma + 0.1 {
                        if Double(i % w) * u.x + Double(i / w) * u.y < mouthLevel { skinEdge.bits[i] = true; collarInFaceMargin.bits[i] = true }
                    }
                    // Where the neck meets a dark collar, its last pixels mix skin and cloth and
                    // pass the colour test as shadowed skin; kept, they would draw a dark line
                    // round the filled neck. Within 2 px of the cloth and darker than 0.75 of the
                    // skin's tone, they are the collar's edge.
                    let cloth = try (person && !skin && !face).dilated(2)
                    for i in 0..<n where cloth.bits[i] && (skin.bits[i] || face.bits[i]) && !ovalRegion.bits[i] && luma[i] < 0.75 * toneLuma {
                        if Double(i % w) * u.x + Double(i / w) * u.y < mouthLevel { skinEdge.bits[i] = true; collarInFaceMargin.bits[i] = true }
                    }
                }
            }
        } else {
            let r = 0.35 * s
            face = Region.capsule(frame[.nose], frame[.nose], radius: r, width: w, height: h)
        }

        let hands = try Self.handsCutToSkin(extremities, skin: skin, scale: s)
        var zone = torso || band || collar
        for l in limbs { zone = zone || l }
        var region = person && zone && !(face && !collarInFaceMargin) && !hands && !frontArms && !(skin && !skinEdge) && !hair
        var frontSleeves = Region(width: w, height: h)
        var handsKept = hands
        if kind != .lower, override == nil {
            // The sleeve is the forearm's cloth of the colour it has outside the hand's zone: a
            // watch or a shirt's cuff stays as it is. The hand's zone counts too, inside the
            // forearm and within 4 % of the scale of the sleeve past the wrist: its margin round
            // the skin, or a disc kept whole (a hand tucked under the other arm), also holds the
            // sleeve's end, and kept it ringed the hand with the old cloth.
            let notSkin = person && !(skin && !skinEdge) && !face && !hair
            let cloth = frontArms && notSkin
            let sleeve = cloth && !hands
            if sleeve.area >= 16 {
                let candidates = cloth || (try hands && notSkin && sleeve.dilated(max(1, Int((0.04 * s).rounded()))))
                frontSleeves = Self.coloured(like: sleeve, in: candidates, image: image)
                // Specks the colour test left in its folds' deepest shadows are sleeve too.
                frontSleeves = frontSleeves.smallHolesFilled(maxArea: max(4, Int(0.003 * s * s))) && candidates
                // And so are the specks along its edge, which no fill encloses (a black sleeve's
                // lighter weave): closed over 1 % of the scale (joined to what it was, which the
                // closing's erosion would cut back where the sleeve meets the photo's edge).
                let close = max(1, Int((0.01 * s).rounded()))
                frontSleeves = frontSleeves || (try frontSleeves.dilated(close).eroded(close) && candidates)
                handsKept = hands && !frontSleeves
            }
            region = region || frontSleeves
            // Off the forearms, the zone's margin round a hand's skin on the torso holds the old
            // clothing between and round the fingers, which stayed as a dark rim round the hand in
            // the new garment: its pixels of the colour of the clothing just round the zone are
            // clothing. On the forearm (a watch, a cuff) it is kept as it is, and so is a disc
            // kept whole away from any skin (a glove, a hand hidden under the other arm).
            let margin = max(1, Int((0.03 * s).rounded()))
            let ring = try handsKept.dilated(margin) && region && !frontSleeves
            if ring.area >= 16, skin.area > 0 {
                let nearSkin = try skin.dilated(margin + 1)
                let rim = Self.coloured(like: ring, in: handsKept && notSkin && !frontArms && nearSkin, image: image)
                region = region || rim
                handsKept = handsKept && !rim
            }
        }
        var limit: Region?
        if let override {
            guard override.width == w, override.height == h else {
                throw PipelineError("the mask for \(label) is \(override.width)x\(override.height), the photo \(w)x\(h)")
            }
            region = Region(override) && !face
            limit = region
        }
        return BodyAnalysis(frame: frame, person: person, torso: torso, limbs: limbs, band: band, collar: collar, slope: slope, face: face, hands: handsKept, handZones: handZones,
                            frontArms: frontArms, frontSleeves: frontSleeves, skin: skin, hair: hair, region: region, skinColour: skinColour, limit: limit,
                            skinModel: skinModel)
    }
}

/// A garment photographed on its own against a plain background.
struct ProductGarment {
    var region: Region
    /// Landmarks in the pose layout's terms (neck, shoulders, hips), read off the outline.
    var frame: BodyFrame
    var landmarks: [String: Point]
    /// Points on the outline (left/right chest, hem and shoulder top), named as `BodyAnalysis.outline` names the person's.
    var outline: [String: Point]

    /// The garment is what differs from the border's colour, its largest piece with holes filled.
    static func segment(_ image: Image) -> Region? {
        let w = image.width, h = image.height, n = image.pixelCount
        var border: [[Float]] = [[], [], []]
        for x in 0..<w { for y in [0, h - 1] { for c in 0..<3 { border[c].append(image.rgb[c * n + y * w + x]) } } }
        for y in 0..<h { for x in [0, w - 1] { for c in 0..<3 { border[c].append(image.rgb[c * n + y * w + x]) } } }
        let bg = border.map { $0.sorted()[$0.count / 2] }
        // How much the border itself varies sets the threshold (a gradient or noisy backdrop).
        let spread = (0..<border[0].count).map { i in (0..<3).map { abs(border[$0][i] - bg[$0]) }.max()! }.sorted()
        let t = max(0.08, 2.5 * spread[spread.count * 9 / 10])
        var bits = [Bool](repeating: false, count: n)
        for i in 0..<n {
            let d = max(abs(image.rgb[i] - bg[0]), abs(image.rgb[n + i] - bg[1]), abs(image.rgb[2 * n + i] - bg[2]))
            bits[i] = d > t
        }
        let raw = Region(width: w, height: h, bits: bits)
        guard let closed = try? raw.dilated(2).eroded(2) else { return nil }
        let piece = closed.largestComponent().holesFilled()
        return piece.area >= max(64, n / 50) ? piece : nil
    }

    /// Landmarks of a top from its outline: the neckline's lowest point in the middle, the
    /// shoulders where the outline's top meets the torso's sides, the hem's corners.
    static func landmarks(_ region: Region) throws -> ProductGarment {
        let w = region.width, h = region.height
        var rows: [(Int, Int)?] = []
        for y in 0..<h {
            var lo = -1, hi = -1
            for x in 0..<w where region.bits[y * w + x] { if lo < 0 { lo = x }; hi = x }
            rows.append(lo < 0 ? nil : (lo, hi))
        }
        guard let top = rows.firstIndex(where: { $0 != nil }), let bottom = rows.lastIndex(where: { $0 != nil }), bottom - top >= 8 else {
            throw PipelineError("no garment found in the garment photo", category: .notFound)
        }
        let gh = Double(bottom - top)
        // The torso's width below the sleeves; the narrowest of the lower rows (sleeves stick out above).
        let lower = (Int(Double(top) + 0.55 * gh)...Int(Double(top) + 0.9 * gh)).compactMap { rows[$0] }
        guard let torsoRow = lower.min(by: { $0.1 - $0.0 < $1.1 - $1.0 }) else {
            throw PipelineError("no garment found in the garment photo", category: .notFound)
        }
        let cx = Double(torsoRow.0 + torsoRow.1) / 2, tw = Double(torsoRow.1 - torsoRow.0)
        func topOfColumn(_ x: Double) -> Double {
            let c = min(max(Int(x.rounded()), 0), w - 1)
            for y in 0..<h where region.bits[y * w + c] { return Double(y) }
            return Double(top)
        }
        let neckY = topOfColumn(cx)
        // Pose shoulders are joints: inside the outline, a little below its top.
        let lsX = cx + 0.4 * tw, rsX = cx - 0.4 * tw
        let ls = Point(lsX, topOfColumn(lsX) + 0.1 * tw), rs = Point(rsX, topOfColumn(rsX) + 0.1 * tw)
        let hemY = Double(top) + 0.93 * gh
        let lh = Point(cx + 0.33 * tw, hemY), rh = Point(cx - 0.33 * tw, hemY)
        // A garment lies as if facing the camera: the person's left is the image's right.
        var marks = [Point](repeating: Point(cx, (Double(top) + Double(bottom)) / 2), count: PoseLandmarks.bodyCount)
        var vis = [Double](repeating: 0, count: PoseLandmarks.bodyCount)
        for (j, p) in [(BodyFrame.Joint.leftShoulder, ls), (.rightShoulder, rs), (.leftHip, lh), (.rightHip, rh)] {
            marks[j.rawValue] = p
            vis[j.rawValue] = 1
        }
        let frame = BodyFrame(points: marks, visibility: vis, width: w, height: h)
        // The outline's sides at the chest and at the hem tie the garment's whole width, sleeves
        // lying along the body included, to the person's.
        var outline: [String: Point] = [:]
        let chestY = (ls.y + rs.y) / 2 + 0.35 * (hemY - (ls.y + rs.y) / 2)
        for (name, y) in [("chest", chestY), ("hem", Double(top) + 0.97 * gh)] {
            if let e = region.rowExtent(y: y, centre: cx, reach: Double(w)) {
                outline["left_" + name] = Point(e.right, y)
                outline["right_" + name] = Point(e.left, y)
            }
        }
        // The outline's top above each shoulder, to pair with the top of the person's shoulders.
        outline["left_shoulder_top"] = Point(lsX, topOfColumn(lsX))
        outline["right_shoulder_top"] = Point(rsX, topOfColumn(rsX))
        return ProductGarment(region: region, frame: frame,
                              landmarks: ["neckline": Point(cx, neckY), "left_shoulder": ls, "right_shoulder": rs, "left_hip": lh, "right_hip": rh],
                              outline: outline)
    }
}

/// Hair without a hair segmenter: a colour model of the hair sampled round the head (beside and
/// above the face, inside the person, not skin), against one of the clothing on the chest;
/// the hair is what looks like the first and not the second, reached from the head through such
/// pixels. Hair as dark as a dark top cannot be told from it by colour, so then only the hair
/// above the shoulders is kept: the flood never crosses clothing-coloured pixels, and hair that
/// would take in much of the chest is refused.
enum HairModel {
    /// 16 levels a channel.
    static let levels = 16

    static func bin(_ r: Float, _ g: Float, _ b: Float) -> Int {
        func q(_ v: Float) -> Int { min(max(Int(v * Float(levels)), 0), levels - 1) }
        return (q(r) * levels + q(g)) * levels + q(b)
    }

    /// A colour histogram of the pixels of `sample`, spread two bins each way (the same hair
    /// lit differently, strands thinning over the cloth) and normalised to sum 1; nil below 32 pixels.
    static func histogram(_ image: Image, _ sample: Region) -> [Float]? {
        let n = image.pixelCount, l = levels
        var raw = [Float](repeating: 0, count: l * l * l)
        var count: Float = 0
        for i in 0..<n where sample.bits[i] { raw[bin(image.rgb[i], image.rgb[n + i], image.rgb[2 * n + i])] += 1; count += 1 }
        guard count >= 32 else { return nil }
        var out = raw
        for r in 0..<l {
            for g in 0..<l {
                for b in 0..<l {
                    var s: Float = 0
                    for dr in -2...2 { for dg in -2...2 { for db in -2...2 {
                        let rr = r + dr, gg = g + dg, bb = b + db
                        if rr >= 0, gg >= 0, bb >= 0, rr < l, gg < l, bb < l { s += raw[(rr * l + gg) * l + bb] }
                    } } }
                    out[(r * l + g) * l + b] = s / (125 * count)
                }
            }
        }
        return out
    }

    /// `oval`: the face mesh's outline; `skin`: the bare skin the skin model found; `clothing`: the
    /// clothing region before hair is taken out of it.
    static func estimate(_ image: Image, frame: BodyFrame, oval: Region, person: Region, skin: Region, clothing: Region) -> Region {
        let w = image.width, h = image.height, n = image.pixelCount
        let empty = Region(width: w, height: h)
        let s = frame.scale
        var top = h, chin = -1
        for i in 0..<n where oval.bits[i] { let y = i / w; top = min(top, y); chin = max(chin, y) }
        guard chin > top, let near = try? oval.dilated(max(1, Int(0.03 * s))) else { return empty }
        // The oval's box grown by a quarter of the body's scale, as an ellipse (a morphological
        // dilation that wide costs seconds on a large photo).
        var left = w, right = -1
        for i in 0..<n where oval.bits[i] { let x = i % w; left = min(left, x); right = max(right, x) }
        let cx = Double(left + right) / 2, cy = Double(top + chin) / 2
        let ax = Double(right - left) / 2 + 0.25 * s, ay = Double(chin - top) / 2 + 0.25 * s
        var far = empty
        for y in max(0, Int(cy - ay))...min(h - 1, Int(cy + ay)) {
            for x in max(0, Int(cx - ax))...min(w - 1, Int(cx + ax)) {
                let dx = (Double(x) - cx) / ax, dy = (Double(y) - cy) / ay
                if dx * dx + dy * dy <= 1 { far.bits[y * w + x] = true }
            }
        }
        // Beside and above the face, down to the mouth: hair, or background where the person
        // mask strays (the clothing model keeps that from mattering below).
        let jaw = top + Int(0.75 * Double(chin - top))
        // Blonde hair passes the skin model's colour test, so skin is not left out here; the
        // face itself is, and the skin model below outweighs what the ears bring in.
        var ring = far && !near && person
        for y in max(jaw, 0)..<h { for x in 0..<w { ring.bits[y * w + x] = false } }
        // The clothing on the chest, below where hair over the shoulders reaches in the middle.
        let panel = (try? Region.polygon([lerp(frame[.rightShoulder], frame[.leftShoulder], 0.3), lerp(frame[.rightShoulder], frame[.leftShoulder], 0.7),
                                          lerp(frame[.leftShoulder], frame[.leftHip], 0.7), lerp(frame[.rightShoulder], frame[.rightHip], 0.7)],
                                         width: w, height: h)) ?? empty
        guard let hairHist = histogram(image, ring), let clothHist = histogram(image, clothing && panel) else { return empty }
        // Hair-like: at least twice as likely under the hair's model as the clothing's, and a
        // colour the hair sample really has (above a twentieth of its typical pixel's). Blonde
        // hair is skin-coloured, so the flood below is kept off the neck and the bare arms instead.
        var typical: [Float] = []
        for i in 0..<n where ring.bits[i] { typical.append(hairHist[bin(image.rgb[i], image.rgb[n + i], image.rgb[2 * n + i])]) }
        typical.sort()
        let floor = 0.05 * typical[typical.count / 2]
        var like = [Bool](repeating: false, count: n)
        for i in 0..<n where person.bits[i] {
            let k = bin(image.rgb[i], image.rgb[n + i], image.rgb[2 * n + i])
            // Thin strands over the cloth mix the two colours into ones the hair sample barely
            // has: those pass too when the cloth hardly has them either.
            like[i] = (hairHist[k] > floor && hairHist[k] > 2 * clothHist[k]) || (hairHist[k] > 0.1 * floor && hairHist[k] > 10 * clothHist[k])
        }
        // Grown from the head, never below the hips nor into the face, the neck or bare skin
        // well below the shoulders (arms, hands), where hair seldom falls.
        let hipY = Int(max(frame[.leftHip].y, frame[.rightHip].y).rounded())
        let chinPoint = Point(frame.shoulderCentre.x, Double(chin))
        var blocked = near || Region.capsule(chinPoint, frame.shoulderCentre, radius: 0.2 * s, width: w, height: h)
        let shoulderLine = max(frame[.leftShoulder].y, frame[.rightShoulder].y) + 0.35 * s
        for i in 0..<n where skin.bits[i] && Double(i / w) > shoulderLine { blocked.bits[i] = true }
        var grown = [Bool](repeating: false, count: n)
        var stack: [Int] = []
        for i in 0..<n where ring.bits[i] && like[i] { grown[i] = true; stack.append(i) }
        guard !stack.isEmpty else { return empty }
        while let i = stack.popLast() {
            let x = i % w, y = i / w
            for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < w && ny < h && ny <= hipY {
                let j = ny * w + nx
                if like[j] && !grown[j] && !blocked.bits[j] { grown[j] = true; stack.append(j) }
            }
        }
        var hair = Region(width: w, height: h, bits: grown)
        // Strands part over the cloth: close the gaps between them.
        let r = max(1, Int(0.012 * s))
        hair = ((try? hair.dilated(r).eroded(r)) ?? hair) && person && !blocked
        // Hair that takes in much of the chest's clothing is the clothing itself.
        let chest = clothing && panel
        if chest.area > 0 && Double((hair && chest).area) > 0.15 * Double(chest.area) {
            let shoulders = Int(min(frame[.leftShoulder].y, frame[.rightShoulder].y).rounded())
            for y in max(shoulders, 0)..<h { for x in 0..<w { hair.bits[y * w + x] = false } }
        }
        return hair
    }
}

/// Skin colour learnt from a sample (the face's cheeks and forehead): a Gaussian in the two
/// chroma axes (Cb − Y, Cr − Y), where skin of every tone clusters tightly, and a floor on luma
/// so that dark cloth of a similar hue is not taken for skin in shadow.
struct SkinModel {
    var mean: (Float, Float)
    /// Inverse covariance (bb, br, rr).
    var inverse: (Float, Float, Float)
    var lumaFloor: Float
    var medianLuma: Float

    init?(_ image: Image, sample: Region) {
        let n = image.pixelCount
        var cb: [Float] = [], cr: [Float] = [], ys: [Float] = []
        for i in 0..<n where sample.bits[i] {
            let r = image.rgb[i], g = image.rgb[n + i], b = image.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            ys.append(y); cb.append(b - y); cr.append(r - y)
        }
        guard ys.count >= 16 else { return nil }
        let m = Float(ys.count)
        let mb = cb.reduce(0, +) / m, mr = cr.reduce(0, +) / m
        var vbb: Float = 0, vrr: Float = 0, vbr: Float = 0
        for k in 0..<ys.count {
            vbb += (cb[k] - mb) * (cb[k] - mb); vrr += (cr[k] - mr) * (cr[k] - mr); vbr += (cb[k] - mb) * (cr[k] - mr)
        }
        // A floor on the spread, so an evenly lit face does not reject its own shadowed side.
        vbb = vbb / m + 2e-4; vrr = vrr / m + 2e-4; vbr /= m
        let det = vbb * vrr - vbr * vbr
        guard det > 0, det.isFinite else { return nil }
        mean = (mb, mr)
        inverse = (vrr / det, -vbr / det, vbb / det)
        medianLuma = ys.sorted()[ys.count / 2]
        lumaFloor = 0.45 * medianLuma
    }

    /// Within three standard deviations in chroma, and not much darker than the face unless
    /// `anyLuma` (skin in deep shadow: a crease, the underside of a jaw).
    func classify(_ image: Image, anyLuma: Bool = false) -> [Bool] {
        let n = image.pixelCount
        return (0..<n).map { i in
            let r = image.rgb[i], g = image.rgb[n + i], b = image.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            let db = b - y - mean.0, dr = r - y - mean.1
            let d2 = inverse.0 * db * db + 2 * inverse.1 * db * dr + inverse.2 * dr * dr
            return d2 < 9 && (anyLuma || y > lumaFloor)
        }
    }
}
