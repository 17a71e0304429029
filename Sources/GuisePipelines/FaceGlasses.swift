import Foundation
import GuiseFace
import GuiseImage
import GuiseVision

/// The frames of glasses a face wears, found on a face moved onto the swap's mesh. The target's
/// stay, as its hair does: under a face mask that covers the eyes the rims would be replaced by
/// the source's skin and the arms outside the mask would stay, two dark hinges at the temples
/// with nothing between them. The source's are filled in from its skin round about: they are
/// not who the source is, and pasted onto the target they sat on its face as a print, with no
/// arms running back to its ears.
///
/// Glasses are what is not skin in the band round the eyes (the eyes' own contours left out),
/// grown from what is not skin over the nose's bridge (and within 7 % of the face of it, as a
/// light gold bridge passes the skin test) into pieces that reach past both eyes' middles and
/// down beside both to the eye line; brows the rims touch go with them. A face without
/// glasses has nothing but skin over its bridge, shadows under the eyes do not cross the
/// nose, and brows do not reach down beside the eyes, so it gives nil. Tinted lenses round
/// the eyes are part of the piece; within the eyes' contours the source's eyes show, relit to
/// the light there.
enum FaceGlasses {
    /// The frames on a face in its own photo, its skin sampled on its cheeks (below the eyes,
    /// above the mouth) as the swap samples it; nil without glasses. Worked out on the face's
    /// surroundings only (the mesh's box grown by a quarter each way), so a large photo costs
    /// no more than a small one: the mask covers `crop`, in the photo's pixels.
    /// `tinted`: the lenses hide the eyes (sunglasses): the brightest 3 % of the eyes' own
    /// contours (the whites, a catch light) is darker than `tintedLenses` of the cheeks' median.
    static func worn(_ image: Image, mesh: [Point], faceWidth: Double) throws -> (frames: Mask, crop: (x: Int, y: Int), tinted: Bool)? {
        let xs = mesh.map(\.x), ys = mesh.map(\.y)
        guard let minX = xs.min(), let maxX = xs.max(), let minY = ys.min(), let maxY = ys.max() else { return nil }
        let gx = 0.25 * (maxX - minX), gy = 0.25 * (maxY - minY)
        let x0 = max(0, Int((minX - gx).rounded(.down))), y0 = max(0, Int((minY - gy).rounded(.down)))
        let x1 = min(image.width, Int((maxX + gx).rounded(.up)) + 1), y1 = min(image.height, Int((maxY + gy).rounded(.up)) + 1)
        guard x1 - x0 >= 8, y1 - y0 >= 8 else { return nil }
        let face = try image.with(alpha: nil).cropped(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        let local = mesh.map { Point($0.x - Double(x0), $0.y - Double(y0)) }
        let w = face.width, h = face.height
        let cheeks = try cheekSample(local, width: w, height: h)
        let skin = try SwapGeometry.skinLike(face, sample: cheeks, highlights: true)
        guard let found = try frames(face, mesh: local, skin: skin, faceWidth: faceWidth) else { return nil }
        let luma = face.grey()
        var cheek = [Float](), eye = [Float]()
        for i in 0..<luma.count where cheeks.values[i] > 0.5 && skin[i] { cheek.append(luma[i]) }
        for contour in [MeshRegions.imageLeftEye, MeshRegions.imageRightEye] {
            let m = try SwapGeometry.region(contour, local, width: w, height: h)
            for i in 0..<luma.count where m.values[i] > 0.5 { eye.append(luma[i]) }
        }
        var tinted = false
        if cheek.count >= 16, eye.count >= 8 {
            cheek.sort(); eye.sort()
            tinted = eye[Int(0.97 * Double(eye.count - 1))] < tintedLenses * cheek[cheek.count / 2]
        }
        return (found, (x0, y0), tinted)
    }

    /// The source's glasses (`frames`, on the window) filled in on its warped face. The rims'
    /// soft edges and the shadows they cast go with them (the mask grown by 1.2 % of the face),
    /// and the skin is filled from skin-coloured pixels round about (push–pull, with the skin's
    /// grain): a fringe beside large lenses, taken in, drew a dark band across the face. A rim
    /// across a brow is filled from the brow round about (filled from skin, the brows went;
    /// kept, the rim read as a heavy black brow), unless the frames hide nearly all of it: then
    /// `hiddenBrows` says where the target's own brows, moved onto the new geometry, are kept,
    /// as its eyes are when the source's are shut. Behind `tinted` lenses nothing of the source
    /// is seen round its eyes (filled, the span read as a smooth band of shadow): the lenses are
    /// closed over their span and `hiddenEyes` says where the target's own eyes, lids and
    /// sockets are kept, faded in over 2 % of the face. Nil when too little skin is left to fill
    /// from (nothing is changed then).
    static func filled(_ face: inout Image, coverage: Mask, frames: Mask, tinted: Bool, mesh: [Point], faceWidth: Double) throws
        -> (hiddenBrows: Mask?, hiddenEyes: Mask?)? {
        let w = face.width, h = face.height, n = w * h
        var lenses = frames
        var hiddenEyes: Mask?
        if tinted {
            for contour in [MeshRegions.imageLeftEye, MeshRegions.imageRightEye] {
                let eye = try SwapGeometry.region(contour, mesh, width: w, height: h).dilated(radius: max(1, Int((0.03 * faceWidth).rounded())))
                lenses.values = zip(lenses.values, eye.values).map { max($0, $1) }
            }
            let span = max(1, Int((0.08 * faceWidth).rounded()))
            lenses = try lenses.dilated(radius: span).eroded(radius: span)
            hiddenEyes = try lenses.blurred(sigma: max(1, 0.02 * faceWidth))
        }
        let gone = try lenses.dilated(radius: max(1, Int((0.012 * faceWidth).rounded())))
        let flat = mesh.map { Point3($0.x, $0.y, 0) }
        let brows = try FaceMasks.mask(.brows, mesh: flat, width: w, height: h)
        let browZone = try brows.dilated(radius: max(1, Int((0.01 * faceWidth).rounded())))
        let known = (0..<n).map { gone.values[$0] < 0.5 && coverage.values[$0] > 0.5 }
        let skinColour = try SwapGeometry.skinLike(face, sample: try cheekSample(mesh, width: w, height: h), highlights: true)
        let knownSkin = Region(width: w, height: h, bits: (0..<n).map { known[$0] && browZone.values[$0] < 0.5 && skinColour[$0] })
        let knownBrow = Region(width: w, height: h, bits: (0..<n).map { known[$0] && browZone.values[$0] >= 0.5 })
        guard knownSkin.area >= 64 else { return nil }
        let skin = try FaceMasks.mask(.skin, mesh: flat, width: w, height: h)
        let grain = try ClothesSwap.skinGrain(face, source: Region(width: w, height: h, bits: (0..<n).map { knownSkin.bits[$0] && skin.values[$0] > 0.5 }))
        let browArea = brows.values.reduce(0) { $0 + ($1 > 0.5 ? 1 : 0) }
        let browsShow = knownBrow.area >= max(16, browArea / 4)
        for c in 0..<3 {
            let plane = Array(face.rgb[(c * n)..<((c + 1) * n)])
            let fromSkin = Membrane.pushPull(plane, known: knownSkin.bits, width: w, height: h)
            let fromBrow = browsShow ? Membrane.pushPull(plane, known: knownBrow.bits, width: w, height: h) : fromSkin
            for k in 0..<n where gone.values[k] > 0.5 {
                face.rgb[c * n + k] = min(max(brows.values[k] > 0.5 ? fromBrow[k] : fromSkin[k] + grain[k], 0), 1)
            }
        }
        let hiddenBrows = browsShow ? nil : Mask(width: w, height: h, values: (0..<n).map { brows.values[$0] > 0.5 && gone.values[$0] > 0.5 ? 1 : 0 })
        return (hiddenBrows, hiddenEyes)
    }

    /// Where a face's skin colour is sampled: the mesh's skin below the eyes (0.15 eye distances
    /// under their line) and above the mouth.
    static func cheekSample(_ mesh: [Point], width w: Int, height h: Int) throws -> Mask {
        var cheeks = try FaceMasks.mask(.skin, mesh: mesh.map { Point3($0.x, $0.y, 0) }, width: w, height: h)
        let le = mesh[33], re = mesh[263], mouth = mesh[13]
        let ex = re.x - le.x, ey = re.y - le.y, el = max((ex * ex + ey * ey).squareRoot(), 1e-6)
        let up = Point(ey / el, -ex / el)
        let eyes = Point((le.x + re.x) / 2, (le.y + re.y) / 2)
        func height(_ x: Int, _ y: Int, above p: Point) -> Double { (Double(x) - p.x) * up.x + (Double(y) - p.y) * up.y }
        for y in 0..<h {
            for x in 0..<w where height(x, y, above: eyes) > -0.15 * el || height(x, y, above: mouth) < 0.1 * el {
                cheeks.values[y * w + x] = 0
            }
        }
        return cheeks
    }

    /// Behind clear glasses an eye's whites and catch light are about as bright as the cheeks or
    /// brighter (the brightest 3 % of the eyes' contours at 0.78 of the cheeks' median luma for
    /// Grace Hopper's gold-tinted lenses, 0.93 behind rims drawn on Obama); behind Anne Helene's
    /// sunglasses at 0.56.
    static let tintedLenses: Float = 0.65

    /// `skin`: per pixel, whether it passes the face's skin colour test. Returns the frames
    /// (hard-edged, grown by a pixel), or nil.
    static func frames(_ image: Image, mesh: [Point], skin: [Bool], faceWidth: Double) throws -> Mask? {
        let w = image.width, h = image.height, n = w * h
        let le = mesh[33], re = mesh[263]
        let ex = re.x - le.x, ey = re.y - le.y
        let el = (ex * ex + ey * ey).squareRoot()
        guard el > 4 else { return nil }
        let along = Point(ex / el, ey / el), up = Point(ey / el, -ex / el)
        let centre = Point((le.x + re.x) / 2, (le.y + re.y) / 2)
        @inline(__always) func coords(_ i: Int) -> (u: Double, v: Double) {
            let dx = Double(i % w) - centre.x, dy = Double(i / w) - centre.y
            return (dx * along.x + dy * along.y, dx * up.x + dy * up.y)
        }
        var eyes = try SwapGeometry.region(MeshRegions.imageLeftEye, mesh, width: w, height: h)
        let right = try SwapGeometry.region(MeshRegions.imageRightEye, mesh, width: w, height: h)
        eyes.values = zip(eyes.values, right.values).map { max($0, $1) }
        eyes = try eyes.dilated(radius: max(1, Int((0.02 * faceWidth).rounded())))
        var candidate = [Bool](repeating: false, count: n)
        var band = 0
        for i in 0..<n {
            let (u, v) = coords(i)
            guard abs(u) < 0.75 * el, v > -0.45 * el, v < 0.3 * el else { continue }
            band += 1
            candidate[i] = !skin[i] && eyes.values[i] < 0.5
        }
        // A rim's thin, lighter stretches pass the skin test in places: gaps of a few pixels are closed.
        let gap = max(1, Int((0.012 * faceWidth).rounded()))
        let closed = try Region(width: w, height: h, bits: candidate).dilated(gap).eroded(gap)
        let candidates = Region(width: w, height: h, bits: (0..<n).map { closed.bits[$0] && eyes.values[$0] < 0.5 })
        // One piece, grown from the bridge.
        var bridge = Region(width: w, height: h)
        for i in 0..<n where candidates.bits[i] {
            let (u, v) = coords(i)
            bridge.bits[i] = abs(u) < 0.06 * el && v > -0.15 * el && v < 0.2 * el
        }
        // A light bridge (gold, clear plastic) passes the skin test and leaves the rims' pieces
        // apart from the bridge's darker parts: the piece grows from everything within 7 % of
        // the face of the bridge (Grace Hopper's darker rims lie 5 to 7 % of her face from the
        // dark top of her gold bridge).
        let reachGap = max(gap, Int((0.07 * faceWidth).rounded()))
        let seeds = try bridge.dilated(reachGap)
        var piece = candidates.connected(to: Region(width: w, height: h, bits: (0..<n).map { seeds.bits[$0] && candidates.bits[$0] })).bits
        var area = 0
        var reach = (left: 0.0, right: 0.0)
        var below = (left: false, right: false)
        for i in 0..<n where piece[i] {
            area += 1
            let (u, v) = coords(i)
            reach.left = min(reach.left, u); reach.right = max(reach.right, u)
            if v < 0 && u < -0.4 * el { below.left = true }
            if v < 0 && u > 0.4 * el { below.right = true }
        }
        guard reach.left < -0.3 * el, reach.right > 0.3 * el, below.left, below.right, area < band / 3 else { return nil }
        // The light bridge itself, between the pieces over the nose, stays too: covered, the
        // frames were cut in two there.
        let joined = try Region(width: w, height: h, bits: piece).dilated(reachGap).eroded(reachGap)
        for i in 0..<n where joined.bits[i] && !piece[i] && eyes.values[i] < 0.5 {
            let (u, v) = coords(i)
            if abs(u) < 0.25 * el && v > -0.2 * el && v < 0.25 * el { piece[i] = true }
        }
        return try Region(width: w, height: h, bits: piece).mask.dilated(radius: 1)
    }
}
