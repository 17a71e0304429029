import Foundation
import GuiseBody
import GuiseFace
import GuiseFormats
import GuiseFiles
import GuiseImage

/// Regions `guise edit --region` can name: the person from selfie segmentation, its complement,
/// or a face-mesh region of one face.
public enum EditRegion: String, CaseIterable, Sendable {
    case person, background, face, skin, eyes, brows, nose, lips, mouth
}

/// The masks an edit takes: white (1) may change, black (0) is kept exactly. Every function
/// returns a mask at the photo's size.
public enum EditMasks {
    /// A mask file (any image; its luma is the mask). A file of another size is resized to the
    /// photo bilinearly and `warn` says so.
    public static func read(_ path: String, width: Int, height: Int, warn: (String) -> Void = { _ in }) throws -> Mask {
        let picture: Image
        do {
            picture = try ImageIO.read(path)
        } catch let e as ImageError {
            throw ImageError("mask \(e.message)", category: e.category)
        }
        let mask = Mask(width: picture.width, height: picture.height, values: picture.grey().map { min(max($0, 0), 1) })
        if picture.width == width && picture.height == height { return mask }
        warn("the mask \(path) is \(picture.width)x\(picture.height), the photo \(width)x\(height): resized to fit")
        return try resize(mask, width: width, height: height)
    }

    /// Bilinear, with values cleaned of the interpolation's rounding (so black stays exactly 0).
    public static func resize(_ mask: Mask, width: Int, height: Int) throws -> Mask {
        var m = try mask.resized(width: width, height: height, interpolation: .linear)
        m.values = m.values.map { $0 < 1e-4 ? 0 : min($0, 1) }
        return m
    }

    /// A rectangle: `x, y` its top-left corner, `w × h` its size, in photo pixels. Parts outside
    /// the photo are cut off; a rectangle wholly outside is an error.
    public static func box(x: Int, y: Int, w: Int, h: Int, width: Int, height: Int) throws -> Mask {
        guard w > 0, h > 0 else { throw EditError("a box needs a positive width and height, got \(w)x\(h)") }
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else {
            throw EditError("the box \(x),\(y),\(w),\(h) lies outside the \(width)x\(height) photo")
        }
        var m = Mask(width: width, height: height, fill: 0)
        for yy in y0..<y1 { for xx in x0..<x1 { m.values[yy * width + xx] = 1 } }
        return m
    }

    /// "x,y,w,h" as `box` takes it.
    public static func parseBox(_ text: String) throws -> (x: Int, y: Int, w: Int, h: Int) {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let x = parts[0], let y = parts[1], let w = parts[2], let h = parts[3] else {
            throw EditError("--box takes x,y,w,h in pixels (e.g. 120,80,200,160), got '\(text)'")
        }
        return (x, y, w, h)
    }

    /// The landmarks of face `faceIndex` (largest first) of `image`; `label` names it in errors.
    public static func landmarks(_ image: Image, faceIndex: Int = 0, label: String = "the photo", detector: DetectorChoice = .blazeface,
                                 models: ModelCache, note: (String) -> Void = { _ in }) throws -> FaceLandmarks {
        let (d, _) = try models.detector(detector, note: note)
        let face = try FaceSelection.pick(try d.detect(image, order: .largest), index: faceIndex, label: label)
        return try FaceSelection.landmarks(image, face: face, analyzer: try models.faceAnalyzer())
    }

    /// A region found in the photo. Face regions use face `faceIndex` (largest first) and are
    /// hard-edged; person and background come from the soft person mask, made hard at 0.5 so
    /// that "outside the mask" has one meaning.
    /// The networks come from `models` when given, else from `store`.
    public static func region(_ region: EditRegion, in image: Image, faceIndex: Int = 0, label: String = "the photo",
                              detector: DetectorChoice = .blazeface, store: ModelStore? = nil, models: ModelCache? = nil,
                              note: (String) -> Void = { _ in }) throws -> Mask {
        let models = models ?? ModelCache(store: store)
        switch region {
        case .person, .background:
            let soft = try models.personSegmenter().mask(image)
            let keep: Float = region == .person ? 1 : 0
            return Mask(width: image.width, height: image.height,
                        values: soft.values.map { ($0 >= 0.5) == (keep == 1) ? 1 : 0 })
        default:
            let (d, _) = try models.detector(detector, note: note)
            let face = try FaceSelection.pick(try d.detect(image, order: .largest), index: faceIndex, label: label)
            let lm = try FaceSelection.landmarks(image, face: face, analyzer: try models.faceAnalyzer())
            let m = try FaceMasks.mask(FaceRegion(rawValue: region.rawValue)!, mesh: lm.mesh,
                                       width: image.width, height: image.height)
            return Mask(width: m.width, height: m.height, values: m.values.map { $0 > 0 ? 1 : 0 })
        }
    }

    /// Grows the changeable region by `grow` pixels (a disc), then feathers its edge outwards over
    /// about `feather` pixels: the result is 1 wherever the grown mask is 1, and falls smoothly to
    /// exactly 0 beyond it. With both 0 the mask is returned as it is.
    public static func refine(_ mask: Mask, grow: Int = 0, feather: Double = 0) throws -> Mask {
        guard grow >= 0 else { throw EditError("--grow must be 0 or more pixels") }
        guard feather >= 0, feather.isFinite else { throw EditError("--feather must be 0 or more pixels") }
        var m = mask
        if grow > 0 {
            let hard = Mask(width: m.width, height: m.height, values: m.values.map { $0 > 0 ? 1 : 0 })
            let grown = try hard.dilated(radius: grow)
            m.values = zip(m.values, grown.values).map { max($0, $1) }
        }
        if feather > 0 {
            let blurred = try m.blurred(sigma: feather / 2)
            // Doubled so the ramp reaches 1 at the old edge, then cut where it would be invisible
            // (under half an 8-bit level), so the changed region stays bounded.
            m.values = zip(m.values, blurred.values).map { a, b in
                let v = max(a, min(1, 2 * b))
                return v < 1.0 / 512 ? 0 : v
            }
        }
        return m
    }
}

/// An edit's failure, with one line for the user.
public struct EditError: GuiseError, LocalizedError {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
    public var errorDescription: String? { message }
}
