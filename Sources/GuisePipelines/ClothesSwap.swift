import Foundation
import GuiseBody
import GuiseDiffusion
import GuiseFace
import GuiseFormats
import GuiseImage

public struct ClothesOptions {
    public var kind: GarmentKind = .upper
    /// Overrides the person's automatic clothing region (> 0.5 is clothing), at the person photo's size.
    public var personMask: Mask?
    /// Overrides the garment's automatic region, at the garment photo's size.
    public var garmentMask: Mask?
    /// How much of the person's own low-frequency shading (folds, light) the garment takes (0…1).
    public var shading = 0.8
    /// Diffusion harmonise of everything that changed (the new garment and the filled old
    /// clothing): SDEdit from this fraction of the chain inside that region, the rest re-imposed
    /// from the noised photo before every step, so it stays bit-exact. 0 is off.
    public var harmonize = 0.0
    /// Steps of the whole respaced chain the harmonise runs `harmonize` of (DDIM).
    public var harmonizeSteps = 20
    /// Reference attention during the harmonise (`ADMReference`): the garment photo's pixels as
    /// the warp lays them on the person, unshaded, run beside the photo in the network, whose
    /// self-attention layers also attend to them with this weight. 0 is off.
    public var referenceAttention = 0.0
    public var seed: UInt64 = 0
    /// The diffusion model: nil is the embedded prior.
    public var model: String?

    public init() {}

    public func validate() throws {
        guard shading.isFinite, (0...1).contains(shading) else { throw PipelineError("--shading must be between 0 and 1, got \(shading)") }
        guard harmonize.isFinite, (0...1).contains(harmonize) else { throw PipelineError("--harmonize must be between 0 and 1, got \(harmonize)") }
        guard harmonizeSteps >= 1, harmonizeSteps <= 1000 else { throw PipelineError("the harmonise steps must be between 1 and 1000") }
        guard referenceAttention.isFinite, (0...10).contains(referenceAttention) else {
            throw PipelineError("--reference-attention must be between 0 and 10, got \(referenceAttention)")
        }
        if referenceAttention > 0 && harmonize == 0 {
            throw PipelineError("--reference-attention works in the diffusion harmonise: give --harmonize too")
        }
    }
}

public struct ClothesReport: Encodable {
    public struct Keypoint: Encodable {
        public var name: String
        public var person: Point
        public var garment: Point
    }

    public var kind = GarmentKind.upper.rawValue
    /// "person" when the garment was taken off a person in the garment photo, "product" for a
    /// garment on a plain background.
    public var garmentSource = ""
    /// Pixels of the person's old clothing (the region that may change).
    public var personRegionArea = 0
    public var garmentArea = 0
    /// Pixels of the person's hair, kept in front of the garment.
    public var hairArea = 0
    /// Pixels the new garment was painted over.
    public var paintedArea = 0
    /// Old clothing the new garment does not cover, filled with skin or the surroundings.
    public var filledArea = 0
    public var keypoints: [Keypoint] = []
    /// Which limbs followed their own bone (the rest follow the torso's spline).
    public var limbsWarped: [String] = []
    /// RMS landmark error of the torso's spline, in garment-photo pixels.
    public var warpResidual = 0.0
    /// Share of the upper torso (shoulders to 75 % of the way to the hips, inside the person,
    /// less forearms, hands and hair in front) the new garment covers.
    public var coverage = 0.0
    /// Painted pixels outside the person mask, as a share of the person's area.
    public var spill = 0.0
    /// CIEDE2000 between the mean Lab colours of the result's upper torso and the garment's
    /// central panel; the same for the person's original clothing there.
    public var deltaE: Double?
    public var deltaEOriginal: Double?
    /// With the diffusion harmonise: its strength, the reference attention weight (when used),
    /// the network's windows [x, y, w, h] and its evaluations.
    public var harmonize: Double?
    public var referenceAttention: Double?
    public var diffusionWindows: [[Int]]?
    public var diffusionEvaluations: Int?
    public var seconds: [String: Double] = [:]
}

/// Puts the garment of one photo onto the person of another: the person's clothing region is
/// found from the body pose, person mask, face mesh and a skin colour model; the garment is
/// either what a person in the garment photo wears (found the same way) or the one object on a
/// plain background; a thin-plate spline through the torso's landmarks (and a similarity per
/// limb) carries the garment onto the body; the person's own low-frequency shading is put on
/// it; old clothing it leaves uncovered is filled; and the result is pasted under a feathered
/// mask. Every pixel outside the person's clothing region and the painted garment is the
/// person photo's, bit for bit. No randomness: the same inputs give the same bytes.
public final class ClothesSwap {
    public let options: ClothesOptions
    let pose: PoseEstimator
    let faceDetector: FaceDetector
    let analyzer: FaceAnalyzer
    let models: ModelCache
    /// Stage events (stage name, done, total) for a progress bar: the stages count up to
    /// `stages`; the harmonise reports "diffusion" with its own count of network evaluations.
    public var progress: ((String, Int, Int) -> Void)?

    /// `models`: networks already loaded (shared between a batch's jobs); without it they are
    /// loaded from `store`.
    public init(options: ClothesOptions = ClothesOptions(), store: ModelStore? = nil, models: ModelCache? = nil) throws {
        try options.validate()
        self.options = options
        let models = try models ?? ModelCache(store: store ?? ModelStore.locate())
        self.models = models
        pose = try models.poseEstimator()
        faceDetector = try models.detector(.blazeface).detector
        analyzer = try models.faceAnalyzer()
    }

    public func run(person: Image, garment: Image) throws -> (Image, ClothesReport) {
        let r = try runDetailed(person: person, garment: garment)
        return (r.image, r.report)
    }

    /// The result with the masks behind it, for tests and previews.
    struct Detailed {
        var image: Image
        var report: ClothesReport
        /// The person's old clothing region.
        var region: Region
        /// Where the new garment was painted.
        var painted: Region
        /// Everything that may differ from the person photo.
        var changed: Region
        /// The person's hair, kept in front of the garment.
        var hair: Region
        var warp: GarmentWarp
        var personFrame: BodyFrame
        var garmentFrame: BodyFrame
    }

    static let stages = 4

    func runDetailed(person: Image, garment: Image) throws -> Detailed {
        try person.validate()
        try garment.validate()
        let kind = options.kind
        var report = ClothesReport()
        report.kind = kind.rawValue
        func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            defer { report.seconds[stage, default: 0] += (Date().timeIntervalSince(start) * 1000).rounded() / 1000 }
            return try body()
        }

        // 1. The person.
        progress?("person", 0, Self.stages)
        let body = try timed("person") {
            try BodyAnalysis.analyse(person, kind: kind, pose: pose, faceDetector: faceDetector, analyzer: analyzer,
                                     label: "the person photo", override: options.personMask)
        }
        let w = person.width, h = person.height, n = person.pixelCount
        report.personRegionArea = body.region.area
        report.hairArea = body.hair.area
        guard report.personRegionArea > 0 else {
            throw PipelineError("no \(kind.rawValue)-body clothing found on the person in the person photo", category: .notFound)
        }

        // 2. The garment: off a person if the photo shows one wearing it, else a product shot.
        progress?("garment", 1, Self.stages)
        let source = try timed("garment") { try analyseGarment(garment, kind: kind) }
        report.garmentSource = source.fromPerson ? "person" : "product"
        report.garmentArea = source.region.area

        // 3. The warp.
        progress?("warp", 2, Self.stages)
        let warp = try GarmentWarp.fit(person: body.frame, garment: source.frame, kind: kind, neckline: source.neckline,
                                       limbsFromGarment: source.fromPerson,
                                       outline: source.outline.map { (body.outline, $0) })
        report.keypoints = warp.pairs.map { ClothesReport.Keypoint(name: $0.name, person: $0.person, garment: $0.garment) }
        report.warpResidual = warp.residual
        report.limbsWarped = zip(body.frame.limbs(kind), warp.limbs).compactMap { $1 == nil ? nil : $0.0 }
        let s = body.frame.scale
        let zone = try body.paintable(grow: max(1, Int(0.01 * s)))
        let sampled = try timed("warp") { () throws -> GarmentWarp.Sampled in
            let gAlpha = try source.region.mask.blurred(sigma: 0.7).values
            let gShade = try Self.shading(source.image, region: source.region, sigma: 0.06 * source.frame.scale)
            let bled = try Self.bled(source.image, region: source.region)
            return warp.sample(garment: bled, alpha: gAlpha, shade: gShade, zone: zone, limbZones: body.limbs,
                               edgeBand: max(4, Int((0.2 * source.frame.scale).rounded())))
        }

        // 4. Composite: the old clothing taken off (bare body or background), the garment shaded
        // and pasted over that.
        progress?("composite", 3, Self.stages)
        let neckEdge = try Self.neckEdge(body, kind: kind)
        let (pasted, painted, filled) = try timed("composite") { () throws -> (Image, Region, Region) in
            var painted = Region(width: w, height: h, bits: (0..<n).map { zone.bits[$0] && sampled.alpha[$0] > 0.5 })
            painted = try Self.anchoredOnBareSkin(painted, skin: body.skin && !body.face, scale: s)
            // The person's folds and light: their clothing's low-pass luma over its mean, in place
            // of the garment's own, bounded, its mean over the garment kept at 1 so the colour holds.
            let personShade = try Self.shading(person, region: body.region, sigma: 0.06 * s)
            let k = Float(options.shading)
            var factor = [Float](repeating: 1, count: n)
            var sum = 0.0, count = 0.0
            for i in 0..<n where painted.bits[i] {
                let p = min(max(personShade[i], 0.6), 1.5), g = min(max(sampled.shade[i], 0.6), 1.5)
                factor[i] = pow(p / g, k)
                sum += Double(factor[i]); count += 1
            }
            let norm = count > 0 ? Float(count / sum) : 1
            var garmentLayer = person
            for i in 0..<n where painted.bits[i] {
                for c in 0..<3 { garmentLayer.rgb[c * n + i] = min(max(sampled.rgb[c * n + i] * factor[i] * norm, 0), 1) }
            }
            if kind != .lower {
                // Not onto the sleeves of forearms in front: the arm stays in front of the garment.
                let behind = body.region && !body.frontSleeves
                let mirrored = Self.mirroredAcrossBody(&garmentLayer, painted: painted, region: behind, frame: body.frame)
                painted = painted || mirrored
                painted = painted || (try Self.extendedOverBody(&garmentLayer, painted: painted, region: behind, person: body.person, hair: body.hair,
                                                                face: body.face, frame: body.frame, kind: kind,
                                                                sleeved: source.sleeveColour != nil))
            }
            // Under the garment and wherever it leaves the old clothing bare, nothing of the old
            // clothing stays: the garment's feathered edge fades into this, not into the old cloth.
            let under = try Self.undressed(person, body: body, kind: kind, edge: neckEdge)
            // Feathered inwards only, so nothing of the garment photo's background shows at the edge.
            // Not where the garment meets forearms and hands in front of it: it runs on under
            // those, and a feather there would fade it into the bare-skin fill and leave a tan
            // halo round a crossed arm. (Hair's edge is re-composited over the garment below.)
            let sigma = max(0.7, 0.006 * s)
            let inFront = body.frontArms || body.hands
            let core = try (painted || inFront).eroded(max(1, Int((1.5 * sigma).rounded())))
            var soft = try core.mask.blurred(sigma: sigma)
            for i in 0..<n where !painted.bits[i] { soft.values[i] = 0 }
            var out = under
            FaceSwap.paste(garmentLayer, mask: soft, into: &out, x: 0, y: 0)
            // Forearms in front keep their shape and folds but wear the new sleeve, or are bare
            // when the garment's sleeves are short: the skin `undressed` gave them, with the
            // arm's light (its luma low-passed, so the cloth's creases stay behind).
            let round = Self.forearmRelief(body.frame, kind: kind, over: body.frontSleeves)
            if let colour = source.sleeveColour {
                Self.recolouredSleeves(&out, person: person, sleeves: body.frontSleeves, colour: colour, relief: round)
            } else if body.frontSleeves.area > 0 {
                let luma = Image(grey: person.grey(), width: w, height: h)
                let light = try SwapGeometry.maskedLowPass(luma, body.frontSleeves.mask, sigma: max(1, 0.03 * s))
                Self.recolouredSleeves(&out, person: light, sleeves: body.frontSleeves, colour: nil, relief: round)
            }
            return (out, painted, body.region && !painted)
        }
        report.paintedArea = painted.area
        report.filledArea = filled.area
        var out = pasted
        var changed = body.region || painted || neckEdge
        if body.limit == nil, body.hair.area > 0 {
            let fringe = try Self.hairFringe(person: person, result: &out, hair: body.hair, clothing: body.region, scale: s)
            changed = changed || fringe
        }
        if options.harmonize > 0 {
            out = try timed("harmonize") {
                try harmonise(out, region: changed, garment: sampled.rgb, painted: painted, report: &report)
            }
        }
        // A grey photo stays grey: the garment is written as its luma, as a black-and-white
        // photo of it would show it.
        if person.sourceFormat?.isGrey ?? false { out.greyWhereChanged(from: person) }
        progress?("done", 4, Self.stages)

        // Fit and colour, measured on the result.
        // Hair in front hides the torso as forearms do.
        let upper = try Region.polygon(body.frame.upperTorso, width: w, height: h) && body.person && !body.frontArms && !body.hands && !body.face
            && !body.hair
        let covered = (upper && painted).area
        report.coverage = upper.area > 0 ? Double(covered) / Double(upper.area) : 0
        let personArea = body.person.area
        report.spill = personArea > 0 ? Double((painted && !body.person).area) / Double(personArea) : 0
        let garmentPanel = try Region.polygon(source.frame.upperTorso, width: garment.width, height: garment.height) && source.region
        let resultPanel = upper && painted
        if let g = ColourDifference.meanLab(source.image, garmentPanel), let r = ColourDifference.meanLab(out, resultPanel),
           let o = ColourDifference.meanLab(person, resultPanel) {
            report.deltaE = ColourDifference.ciede2000(r, g)
            report.deltaEOriginal = ColourDifference.ciede2000(o, g)
        }
        return Detailed(image: out, report: report, region: body.region, painted: painted, changed: changed, hair: body.hair, warp: warp,
                        personFrame: body.frame, garmentFrame: source.frame)
    }

    /// The diffusion harmonise of `region` (the edit pipeline's, without its gradient-domain
    /// blend, which would pull the garment's colour towards the old clothing's); with reference
    /// attention the reference is the photo with the warped garment's own pixels, before the
    /// person's shading, where it was painted.
    func harmonise(_ image: Image, region: Region, garment: [Float], painted: Region, report: inout ClothesReport) throws -> Image {
        var o = EditOptions()
        o.mode = .harmonize
        o.poisson = false
        o.strength = options.harmonize
        o.steps = options.harmonizeSteps
        o.sampler = .ddim
        o.seed = options.seed
        o.model = options.model
        if options.referenceAttention > 0 {
            var layout = image
            let n = image.pixelCount
            for i in 0..<n where painted.bits[i] { for c in 0..<3 { layout.rgb[c * n + i] = garment[c * n + i] } }
            o.reference = layout
            o.referenceWeight = options.referenceAttention
        }
        o.progress = { [weak self] done, total in self?.progress?("diffusion", done, total) }
        let (result, editReport) = try Edit(o, models: models).run(image: image, mask: region.mask)
        report.harmonize = options.harmonize
        report.referenceAttention = editReport.referenceAttention
        report.diffusionWindows = editReport.windows
        report.diffusionEvaluations = editReport.evaluations
        return result
    }

    struct GarmentSource {
        var image: Image
        var region: Region
        var frame: BodyFrame
        var fromPerson: Bool
        var neckline: Point?
        var outline: [String: Point]?
        /// The colour of the garment's sleeves at the forearm, nil when it leaves the forearms
        /// bare (a T-shirt, a vest).
        var sleeveColour: (Float, Float, Float)?
    }

    func analyseGarment(_ garment: Image, kind: GarmentKind) throws -> GarmentSource {
        let gw = garment.width, gh = garment.height
        if let override = options.garmentMask, override.width != gw || override.height != gh {
            throw PipelineError("the garment mask is \(override.width)x\(override.height), the garment photo \(gw)x\(gh)")
        }
        // Someone wears it if the pose network finds a body and a face sits where its head is. A
        // garment on its own can look enough like a torso to the pose network, so without a face
        // a photo whose background is plain is taken for a product shot; one with a busy
        // background (a model whose head the frame cuts off) is still a person.
        let wearer = try pose.estimate(garment, segmentation: false)
        let plain = options.garmentMask == nil ? ProductGarment.segment(garment) : nil
        var worn = false
        if let p = wearer {
            let nose = p.landmarks[BodyFrame.Joint.nose.rawValue].point
            let hasFace = try faceDetector.detect(garment).contains { f in
                let pad = 0.5 * f.box.width
                return nose.x >= f.box.x - pad && nose.x <= f.box.x + f.box.width + pad && nose.y >= f.box.y - pad && nose.y <= f.box.y + f.box.height + pad
            }
            worn = hasFace || (options.garmentMask == nil && plain == nil)
        }
        if worn {
            let b = try BodyAnalysis.analyse(garment, kind: kind, pose: pose, faceDetector: faceDetector, analyzer: analyzer,
                                             label: "the garment photo", override: options.garmentMask)
            var region = b.region
            var image = garment
            // Forearms, hands and hair across the garment hide part of it: fill them from the cloth
            // around. Each hand's whole zone, grown, not just its skin: a shirt's white cuff or a
            // watch beside the hand is not the garment. The fill reads the garment's own cloth
            // only (a smooth interpolation, with the cloth's grain): a Telea fill from whatever
            // bordered the hole carried a cuff reaching past the torso's edge into it, and warped
            // onto the person that stayed as a white patch on the jacket.
            // Hair only where the cloth closes round it: hair falling beside the wearer's face onto
            // a shoulder's top has cloth on one side only, and a fill there, a blur of the stripes
            // below, became a haze beside the new wearer's neck.
            let grow = max(1, Int((0.04 * b.frame.scale).rounded()))
            let limbs = try (b.frontArms || b.handZones).dilated(grow) && b.person
            let hair = try b.hair.dilated(grow) && b.person
            let cloth = b.region && !(limbs || hair)
            let hole = limbs || hair.enclosed(by: cloth, reach: max(1, Int((0.5 * b.frame.scale).rounded())))
            if (hole && b.torso).area > 0 && cloth.area >= 64 && options.garmentMask == nil {
                let n = garment.pixelCount
                let grain = try Self.skinGrain(garment, source: cloth)
                for c in 0..<3 {
                    let filled = Membrane.pushPull(Array(garment.rgb[(c * n)..<((c + 1) * n)]), known: cloth.bits, width: gw, height: gh)
                    for i in 0..<n where hole.bits[i] { image.rgb[c * n + i] = min(max(filled[i] + grain[i], 0), 1) }
                }
                region = region || (hole && b.torso)
            }
            // The wearer's neck where the colour test took it for cloth (a crease, its shadowed
            // edge against the collar) is not garment: warped onto another wearer it would print
            // as brown marks in their collar. Within the neck's column, skin's hue at any
            // brightness is neck.
            if let model = b.skinModel, options.garmentMask == nil {
                let f = b.frame
                let column = f.neckColumn(width: gw, height: gh)
                region = region && !(column && Region(width: gw, height: gh, bits: model.classify(garment, anyLuma: true)))
            }
            guard region.area >= 64 else {
                throw PipelineError("no \(kind.rawValue)-body garment found on the person in the garment photo", category: .notFound)
            }
            // The wearer's shoulder tops pair with the person's, so the garment's shoulders reach
            // theirs; its sides are not used (arms hanging along a body widen the silhouette).
            let tops = b.outline.filter { $0.key.hasSuffix("_shoulder_top") }
            return GarmentSource(image: image, region: region, frame: b.frame, fromPerson: true, neckline: nil, outline: tops.isEmpty ? nil : tops,
                                 sleeveColour: Self.sleeveColour(garment, wearer: b, kind: kind, fallback: region))
        }
        guard kind == .upper else {
            throw PipelineError("no person wearing a garment found in the garment photo; a garment on its own is supported for --kind upper only", category: .unsupported)
        }
        let region: Region
        if let override = options.garmentMask {
            region = Region(override)
        } else {
            guard let r = plain else { throw PipelineError("no garment found in the garment photo", category: .notFound) }
            region = r
        }
        let product = try ProductGarment.landmarks(region)
        let image = options.garmentMask == nil ? try Self.productHandsFilled(garment, region: region, scale: product.frame.scale) : garment
        return GarmentSource(image: image, region: region, frame: product.frame, fromPerson: false, neckline: product.landmarks["neckline"],
                              outline: product.outline, sleeveColour: Self.meanColour(image, region))
    }

    /// A product photo of a garment on a model whose head the frame leaves out shows the model's
    /// hands on it, and warped onto the person they were a second pair of hands on the chest.
    /// There is no face to sample skin from, so skin is the usual chroma rule (YCrCb: Cr 135…175,
    /// Cb 80…130 of 255, not dark); its pieces, opened against specks and grown by 6 % of the
    /// garment's scale (a cuff, a watch), are filled from the garment's own cloth round them
    /// with its grain, as a worn garment's hands are. A garment a quarter or more skin-coloured
    /// (beige, tan) is left as it is: its colour is not a hand.
    static func productHandsFilled(_ garment: Image, region: Region, scale s: Double) throws -> Image {
        let w = garment.width, h = garment.height, n = garment.pixelCount
        var skin = Region(width: w, height: h)
        for i in 0..<n where region.bits[i] {
            let r = garment.rgb[i], g = garment.rgb[n + i], b = garment.rgb[2 * n + i]
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            let cr = 0.713 * (r - y) + 0.5, cb = 0.564 * (b - y) + 0.5
            skin.bits[i] = y > 0.2 && cr >= 135 / 255 && cr <= 175 / 255 && cb >= 80 / 255 && cb <= 130 / 255
        }
        let speck = max(1, Int((0.01 * s).rounded()))
        skin = try skin.eroded(speck).dilated(speck) && skin
        guard skin.area > 0, 4 * skin.area < region.area else { return garment }
        let hole = try skin.dilated(max(1, Int((0.06 * s).rounded()))) && region
        let cloth = region && !hole
        guard cloth.area >= 64 else { return garment }
        var image = garment
        let grain = try skinGrain(garment, source: cloth)
        for c in 0..<3 {
            let filled = Membrane.pushPull(Array(garment.rgb[(c * n)..<((c + 1) * n)]), known: cloth.bits, width: w, height: h)
            for i in 0..<n where hole.bits[i] { image.rgb[c * n + i] = min(max(filled[i] + grain[i], 0), 1) }
        }
        return image
    }

    /// The sleeve on the wearer's forearms: the cloth (neither skin, hand, face nor hair) in each
    /// forearm's capsule within the person. A forearm whose capsule is at least half cloth wears
    /// a sleeve, and the sleeves' mean colour is returned; forearms in view that are all bare
    /// mean short sleeves (nil). With neither forearm in view the upper arms' cloth speaks for
    /// the sleeve, and failing that the whole garment.
    static func sleeveColour(_ image: Image, wearer b: BodyAnalysis, kind: GarmentKind, fallback: Region) -> (Float, Float, Float)? {
        guard kind != .lower else { return nil }
        let f = b.frame, w = image.width, h = image.height, s = f.scale
        func cloth(_ part: String) -> (seen: Int, cloth: Region) {
            var seen = 0, out = Region(width: w, height: h)
            for (name, a, c, r) in f.limbs(kind) where name.hasSuffix(part) && f.located(a) && f.located(c) {
                let arm = Region.capsule(f[a], f[c], radius: r * s, width: w, height: h) && b.person && !b.handZones && !b.face && !b.hair
                guard arm.area >= 16 else { continue }
                seen += 1
                let covered = arm && !b.skin
                if 2 * covered.area >= arm.area { out = out || covered }
            }
            return (seen, out)
        }
        let forearms = cloth("forearm")
        if forearms.cloth.area > 0 { return meanColour(image, forearms.cloth) }
        if forearms.seen > 0 { return nil }
        let upper = cloth("upper arm").cloth
        return meanColour(image, upper.area > 0 ? upper : fallback)
    }

    static func meanColour(_ image: Image, _ region: Region) -> (Float, Float, Float)? {
        let n = image.pixelCount
        var sum = (0.0, 0.0, 0.0), count = 0.0
        for i in 0..<n where region.bits[i] {
            sum.0 += Double(image.rgb[i]); sum.1 += Double(image.rgb[n + i]); sum.2 += Double(image.rgb[2 * n + i]); count += 1
        }
        return count > 0 ? (Float(sum.0 / count), Float(sum.1 / count), Float(sum.2 / count)) : nil
    }

    /// The old sleeves on forearms in front of the body, in the new sleeve's colour (or, with
    /// none, in the colour `out` already has there): each pixel the colour times its luma's
    /// departure from the old sleeves' mean (their folds and light), that departure taken
    /// relative to at least 0.2 and damped to 0.6 of it, so the noise of a dark sleeve does not
    /// print as blotches on a light one.
    static func recolouredSleeves(_ out: inout Image, person: Image, sleeves: Region, colour: (Float, Float, Float)?,
                                  relief: [Float]? = nil) {
        let n = person.pixelCount
        let luma = person.grey()
        var sum = 0.0, count = 0.0
        for i in 0..<n where sleeves.bits[i] { sum += Double(luma[i]); count += 1 }
        guard count > 0 else { return }
        let mean = Float(sum / count), scale = max(mean, 0.2)
        for i in 0..<n where sleeves.bits[i] {
            let f = (1 + 0.6 * min(max((luma[i] - mean) / scale, -1), 1)) * (relief?[i] ?? 1)
            let c = colour ?? (out.rgb[i], out.rgb[n + i], out.rgb[2 * n + i])
            out.rgb[i] = min(max(c.0 * f, 0), 1)
            out.rgb[n + i] = min(max(c.1 * f, 0), 1)
            out.rgb[2 * n + i] = min(max(c.2 * f, 0), 1)
        }
    }

    /// A forearm's roundness, as a factor on what is painted over it: 1 − 0.3·t², t the distance
    /// from the nearer forearm's bone over the forearm zone's radius (0.15 of the scale), at most
    /// 1. A sleeve of one colour or a bare arm filled at one skin tone, shaded only by the old
    /// sleeve's low-passed light, read as a flat slab laid across the body.
    static func forearmRelief(_ f: BodyFrame, kind: GarmentKind, over region: Region) -> [Float] {
        let w = region.width, n = w * region.height
        var relief = [Float](repeating: 1, count: n)
        let bones = f.limbs(kind).filter { $0.0.hasSuffix("forearm") }.map { (f[$0.1], f[$0.2]) }
        guard !bones.isEmpty else { return relief }
        let radius = 0.15 * f.scale
        for i in 0..<n where region.bits[i] {
            let p = Point(Double(i % w), Double(i / w))
            var d = Double.infinity
            for (a, b) in bones {
                let ab = sub(b, a), ap = sub(p, a)
                let len2 = max(ab.x * ab.x + ab.y * ab.y, 1e-9)
                let u = min(max((ap.x * ab.x + ap.y * ab.y) / len2, 0), 1)
                d = min(d, distance(p, add(a, scaled(ab, u))))
            }
            let t = Float(min(d / radius, 1))
            relief[i] = 1 - 0.3 * t * t
        }
        return relief
    }

    /// A top's own openings that land beside the wearer's neck rather than round it (the
    /// neckline of a person photographed with the head bent, mapped onto a wearer whose
    /// shoulders sit wider) leave holes in the garment on the chest and shoulders, where bare skin
    /// would be painted as a flat patch. A top is close to left–right symmetric, so each such
    /// pixel of the old clothing takes the garment at its mirror image across the body's midline
    /// (through the shoulders' centre, along `up`), where that was painted. The neck itself, a
    /// column 0.12 body units wide each side from the shoulders up, stays bare. Returns the
    /// pixels painted so.
    static func mirroredAcrossBody(_ layer: inout Image, painted: Region, region: Region, frame f: BodyFrame) -> Region {
        let w = layer.width, h = layer.height, n = w * h
        let neck = f.neckColumn(reach: 0.3, width: w, height: h)
        let a = f.across, c = f.shoulderCentre
        var out = Region(width: w, height: h)
        for i in 0..<n where region.bits[i] && !painted.bits[i] && !neck.bits[i] {
            let p = Point(Double(i % w), Double(i / w))
            let d = (p.x - c.x) * a.x + (p.y - c.y) * a.y
            let x = Int((p.x - 2 * d * a.x).rounded()), y = Int((p.y - 2 * d * a.y).rounded())
            guard x >= 0, y >= 0, x < w, y < h, painted.bits[y * w + x] else { continue }
            for ch in 0..<3 { layer.rgb[ch * n + i] = layer.rgb[ch * n + y * w + x] }
            out.bits[i] = true
        }
        return out
    }

    /// The garment carried on over old clothing it leaves uncovered on the body's outside,
    /// beyond the torso between shoulders and hips: the top of a shoulder, a flank wider than
    /// the garment photo's. Taken off there, the old clothing left a patch of bare skin or a bite
    /// of background out of the person's outline. Within 12 % of the body's scale of the
    /// garment, never on the neck or along an arm below its shoulder, the garment's colour is
    /// interpolated outwards (push–pull from the painted garment, its edge pixels left out); so
    /// is every gap in the garment narrower than 6 % of the body's scale. A `sleeved` garment
    /// (its sleeves reach the forearms) is carried on over all the old clothing on the arms as
    /// well, and up to a quarter of the scale from it: a long sleeve warped from another pose
    /// left an elbow or an upper arm of the old jacket uncovered, and bare skin and background
    /// there made a hole in the new jacket.
    static func extendedOverBody(_ layer: inout Image, painted: Region, region: Region, person: Region, hair: Region, face: Region,
                                 frame f: BodyFrame, kind: GarmentKind, sleeved: Bool = false) throws -> Region {
        let w = layer.width, h = layer.height, n = w * h
        let s = f.scale
        let hips = kind == .dress ? (f[.leftKnee], f[.rightKnee]) : (f[.leftHip], f[.rightHip])
        var kept = try Region.polygon([f[.rightShoulder], f[.leftShoulder], hips.0, hips.1], width: w, height: h)
        kept = kept || f.neckColumn(reach: 0.3, width: w, height: h)
        for (_, a, b, _) in f.limbs(kind) {
            let start = add(f[a], scaled(Point(f[b].x - f[a].x, f[b].y - f[a].y), 0.3))
            kept = kept || Region.capsule(start, f[b], radius: 0.11 * s, width: w, height: h)
        }
        let reach = try painted.dilated(max(1, Int(((sleeved ? 0.25 : 0.12) * s).rounded())))
        // A sliver the garment almost closes round (between a sleeve warped by its arm and the
        // torso warped by the body) is garment wherever it lies, arm or torso.
        let bridge = max(1, Int((0.03 * s).rounded()))
        let slivers = try painted.dilated(bridge).eroded(bridge)
        // Above the shoulders' line only onto the shoulders' own slope, which reaches the neck's
        // sides a little above the line: a suit's ring or a high collar stood beyond it, with
        // background behind, and the garment run up over it to the chin made a box round the neck.
        var above = Region(width: w, height: h)
        let u = f.up, c = f.shoulderCentre
        for i in 0..<n where (Double(i % w) - c.x) * u.x + (Double(i / w) - c.y) * u.y > 0 { above.bits[i] = true }
        if let slope = f.shoulderSlope(top: f.slopeTop) {
            above = above && !(try Region.polygon(slope, width: w, height: h))
        }
        var arms = Region(width: w, height: h)
        if sleeved && kind != .lower {
            for (_, a, b, r) in f.limbs(kind) { arms = arms || Region.capsule(f[a], f[b], radius: r * s, width: w, height: h) }
        }
        let out = region && person && !painted && ((!kept && reach) || slivers || arms) && !hair && !face && !above
        guard out.area > 0 else { return out }
        let edge = max(1, Int((0.004 * s).rounded()))
        let known = try painted.eroded(edge)
        guard known.area >= 64 else { return Region(width: w, height: h) }
        // The garment's own edge, which the feather used to hide, is now inside: its pixels mix
        // in the garment photo's background, so beside the extension they are interpolated too.
        let fill = out || (painted && !known && (try out.dilated(edge + 1)))
        for c in 0..<3 {
            let filled = Membrane.pushPull(Array(layer.rgb[(c * n)..<((c + 1) * n)]), known: known.bits, width: w, height: h)
            for i in 0..<n where fill.bits[i] { layer.rgb[c * n + i] = filled[i] }
        }
        return out
    }

    /// The garment where it lies on the person's bare skin only as part of a piece that also
    /// covers old clothing: a sleeve over a bare arm runs on from the shoulder. A patch floating on
    /// the skin, cut off from the rest (the wearer's watch, the mixed pixels along their arm's
    /// outline, a fill beside their hand, carried by the arm's warp), would print as a blotch on
    /// the arm. Pieces joined only by a thread thinner than 2 % of the body's scale count as cut off.
    static func anchoredOnBareSkin(_ painted: Region, skin: Region, scale s: Double) throws -> Region {
        let onSkin = painted && skin
        guard onSkin.area > 0 else { return painted }
        let k = max(1, Int((0.01 * s).rounded()))
        let opened = try painted.eroded(k).dilated(k) && painted
        let anchored = opened.connected(to: opened && !skin)
        // What the opening took off stays where it touches the anchored garment (its own edge).
        let rim = try anchored.dilated(k + 1) && painted
        return painted && (!skin || anchored || rim)
    }

    /// The bare neck's last pixels against the old clothing: they mix skin with the collar (a
    /// dark turtleneck leaves them half as bright), and kept beside a neck filled on below they
    /// drew a dotted line across it. One pixel of skin, off the face, in the neck's column.
    static func neckEdge(_ body: BodyAnalysis, kind: GarmentKind) throws -> Region {
        let w = body.region.width, h = body.region.height
        guard kind != .lower, body.limit == nil, body.region.area > 0 else { return Region(width: w, height: h) }
        return try body.region.dilated(1) && !body.region && body.skin && !body.face && body.frame.neckColumn(width: w, height: h)
    }

    /// The person with their old clothing taken off: bare skin (the colour of the skin nearby)
    /// where the body is, the arms' bones and the torso between shoulders
    /// and hips with the neck, and elsewhere the background, filled inwards from outside the old
    /// clothing. The two meet under a short blend, not a seam. `edge` (`neckEdge`) is filled as
    /// the bare body is. Outside the old clothing region and `edge`, the person photo's pixels.
    static func undressed(_ person: Image, body: BodyAnalysis, kind: GarmentKind, edge: Region? = nil) throws -> Image {
        let region = body.region
        guard region.area > 0 else { return person }
        let w = person.width, h = person.height, n = person.pixelCount
        let s = body.frame.scale, f = body.frame
        var out = try backgroundFill(person, region: region, radius: max(3, 0.03 * s), factor: max(1, Int(0.01 * s)))
        guard let skin = body.skinColour else { return out }
        var bare = Region(width: w, height: h)
        // A limb is bare out to the person's outline within the limb's own zone: a sleeve hugs the
        // arm closely enough that what it covered is arm, and background there would show as a
        // hole in the body.
        for (_, a, b, r) in f.limbs(kind) {
            bare = bare || Region.capsule(f[a], f[b], radius: 0.11 * s, width: w, height: h)
                || (Region.capsule(f[a], f[b], radius: r * s, width: w, height: h) && body.person)
        }
        if kind != .lower {
            let hips = kind == .dress ? (f[.leftKnee], f[.rightKnee]) : (f[.leftHip], f[.rightHip])
            bare = bare || (try Region.polygon([f[.rightShoulder], f[.leftShoulder], hips.0, hips.1], width: w, height: h))
            bare = bare || f.neckColumn(width: w, height: h)
            // Above the shoulder line the body is the neck and the shoulders' slope; a collar or
            // a suit's ring beyond that had background behind it.
            bare = bare || (body.slope && body.person)
        }
        // The skin it meets (a chin, a neck above a collar, a hand), interpolated inwards by
        // push–pull from the bare skin around, so the fill meets that skin without a step and runs
        // on at its colour; the face's mean colour where there is too little skin to go on. Not the
        // old clothing's light: its pattern (a white collar on a dark jacket) would print onto the
        // skin. The skin region's outermost pixels, mixed with what it meets, are left out.
        let source = try (body.skin && !region).eroded(max(1, Int(0.005 * s)))
        var near = person
        if source.area >= 64 {
            for c in 0..<3 {
                let filled = Membrane.pushPull(Array(person.rgb[(c * n)..<((c + 1) * n)]), known: source.bits, width: w, height: h)
                for i in 0..<n { near.rgb[c * n + i] = filled[i] }
            }
        } else {
            for (c, v) in [skin.0, skin.1, skin.2].enumerated() { for i in 0..<n { near.rgb[c * n + i] = v } }
        }
        // Faded only where the bare body meets the background, not where the region meets skin.
        let blend = try bare.mask.blurred(sigma: max(1, 0.04 * s))
        let grain = try skinGrain(person, source: source)
        let shade = chinShadow(face: body.face, skin: source, region: region, scale: s)
        let refilled = edge.map { region || $0 } ?? region
        let relief = kind == .lower ? [Float](repeating: 1, count: n)
            : neckRelief(person, face: body.face, skin: source, fill: refilled, frame: f)
        // The neck's edge row is skin in the photo: the background's share of the blend, which
        // at the neck column's sides is half, would darken it into a dotted line again.
        let onEdge = edge ?? Region(width: w, height: h)
        for i in 0..<n where refilled.bits[i] && (blend.values[i] > 0 || onEdge.bits[i]) {
            let a = onEdge.bits[i] ? 1 : blend.values[i]
            for c in 0..<3 {
                let local = near.rgb[c * n + i] * shade[i] * relief[i] + grain[i]
                out.rgb[c * n + i] = (1 - a) * out.rgb[c * n + i] + a * min(max(local, 0), 1)
            }
        }
        return out
    }

    /// The light on a neck filled from the face's skin: a neck lies in the chin's shadow, so
    /// filled at the face's colour it glows like a second face under the jaw. A factor on the
    /// fill, 0.8 at the jaw, back to 1 over about a third of the body's scale below it, and
    /// back to 1 wherever the fill meets visible skin that is not the face (a neck above a
    /// collar brings its own light, which the fill carries on without a step): with d₁ the
    /// distance to the face and d₂ to that skin, the darkening is weighted d₂ / (d₁ + d₂).
    static func chinShadow(face: Region, skin: Region, region: Region, scale s: Double) -> [Float] {
        let w = face.width, h = face.height, n = w * h
        var shade = [Float](repeating: 1, count: n)
        guard face.area > 0 else { return shade }
        let reach = Float(0.35 * s)
        let toFace = EditGuides.chamferDistance(face.bits.map { !$0 }, width: w, height: h, edgeIsOutside: false)
        let otherSkin = skin && !face
        let toSkin = otherSkin.area > 0
            ? EditGuides.chamferDistance(otherSkin.bits.map { !$0 }, width: w, height: h, edgeIsOutside: false) : nil
        for i in 0..<n where region.bits[i] && toFace[i] < 2 * reach {
            let d1 = toFace[i], u = d1 / reach
            var weight = exp(-u * u)
            if let toSkin { weight *= toSkin[i] / max(d1 + toSkin[i], 1e-3) }
            shade[i] = 1 - 0.2 * weight
        }
        return shade
    }

    /// The neck's roundness on a neck filled from the chin's skin, as a factor on the fill. A
    /// push–pull fill runs on at one colour, and a neck of one colour from edge to edge reads as
    /// a flat beige slab under the chin. Across the neck column (t from −1 to 1 over its radius)
    /// the light falls off as 1 − 0.22·t² towards the sides, easing back to 1 over half a radius
    /// past them; the face's own side light (the relative difference between its skin's luma on
    /// either side of its centre, along the shoulders' line, at most ±0.25) tilts it the same
    /// way, 1 + g·t. It gives way where the fill meets visible skin other than the face, in full
    /// within 2 px of it and fading in over a tenth of the scale (a neck above a collar has its
    /// own light, which the fill carries on; the chin shadow's d₂ / (d₁ + d₂) let a short
    /// visible neck's edge row darken into dots at the sides).
    static func neckRelief(_ person: Image, face: Region, skin: Region, fill: Region, frame f: BodyFrame) -> [Float] {
        let w = face.width, h = face.height, n = w * h
        var relief = [Float](repeating: 1, count: n)
        guard face.area > 0, fill.area > 0 else { return relief }
        let s = f.scale, radius = 0.12 * s
        let centre = f.shoulderCentre, across = f.across, up = f.up
        let top = 0.28 * s + radius
        // The face's side light, from its skin (or the whole face where too little is skin).
        let faceSkin = (face && skin).area >= 64 ? face && skin : face
        let luma = person.grey()
        var cx = 0.0, cy = 0.0
        for i in 0..<n where faceSkin.bits[i] { cx += Double(i % w); cy += Double(i / w) }
        let count = Double(faceSkin.area)
        cx /= count; cy /= count
        var sums = [0.0, 0.0], counts = [0.0, 0.0]
        for i in 0..<n where faceSkin.bits[i] {
            let side = (Double(i % w) - cx) * across.x + (Double(i / w) - cy) * across.y > 0 ? 1 : 0
            sums[side] += Double(luma[i]); counts[side] += 1
        }
        var g: Float = 0
        if counts[0] > 0, counts[1] > 0 {
            let a = sums[0] / counts[0], b = sums[1] / counts[1]
            g = Float(min(max((b - a) / max(a + b, 1e-6), -0.25), 0.25))
        }
        let otherSkin = skin && !face
        let toSkin = otherSkin.area > 0
            ? EditGuides.chamferDistance(otherSkin.bits.map { !$0 }, width: w, height: h, edgeIsOutside: false) : nil
        let fade = Float(0.1 * s)
        for i in 0..<n where fill.bits[i] {
            let dx = Double(i % w) - centre.x, dy = Double(i / w) - centre.y
            let along = dx * up.x + dy * up.y
            guard along > -radius, along < top else { continue }
            let t = Float((dx * across.x + dy * across.y) / radius), a = abs(t)
            guard a < 1.5 else { continue }
            // 0.22·t² inside, eased back to 0 over the half radius past the side (smoothstep).
            let fall: Float
            if a <= 1 {
                fall = 0.22 * t * t
            } else {
                let u = (a - 1) / 0.5
                fall = 0.22 * (1 - u * u * (3 - 2 * u))
            }
            let tilt = g * min(max(t, -1), 1)
            var factor = (1 - fall) * (1 + tilt)
            if let toSkin { factor = 1 + (factor - 1) * min(max(toSkin[i] - 2, 0) / fade, 1) }
            relief[i] = factor
        }
        return relief
    }

    /// The hair's edge over the old clothing, re-composited over the new: a pixel there mixes hair
    /// h and old cloth c (thin strands, the edge's anti-aliasing), p ≈ α·h + (1 − α)·c, so with α
    /// from p's projection onto the line from c to h (each the local mean of the hair's core and
    /// of the old clothing) it becomes p + (1 − α)·(g − c), g being what now lies behind (the
    /// garment or fill, averaged from the region nearby): the hair's own share is kept exactly
    /// and the old cloth's swapped for the new. Within a band 1.5 % of the body's scale wide
    /// (at least 2 px) on both sides of the hair's edge; where hair and cloth colours are too
    /// close to tell apart, or a pixel is off the line between them, nothing changes. Returns
    /// the hair pixels changed.
    static func hairFringe(person: Image, result: inout Image, hair: Region, clothing: Region, scale s: Double) throws -> Region {
        let w = person.width, h = person.height, n = person.pixelCount
        let d = max(2, Int((0.025 * s).rounded()))
        let core = try hair.eroded(d)
        let band = (hair && (try clothing.dilated(d))) || (clothing && (try hair.dilated(d)))
        guard band.area > 0, core.area > 0 else { return Region(width: w, height: h) }
        let sigma = max(2, 0.03 * s)
        let hairMean = try SwapGeometry.maskedLowPass(person, core.mask, sigma: sigma)
        let hairWeight = try core.mask.blurred(sigma: sigma)
        let clothMean = try SwapGeometry.maskedLowPass(person, clothing.mask, sigma: sigma)
        let behind = try SwapGeometry.maskedLowPass(result, clothing.mask, sigma: max(1, Double(d)))
        var changedHair = Region(width: w, height: h)
        for i in 0..<n where band.bits[i] && hairWeight.values[i] > 0.01 {
            var v: [Float] = [0, 0, 0], q: [Float] = [0, 0, 0]
            for c in 0..<3 {
                v[c] = hairMean.rgb[c * n + i] - clothMean.rgb[c * n + i]
                q[c] = person.rgb[c * n + i] - clothMean.rgb[c * n + i]
            }
            let vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
            guard vv > 0.02 else { continue }
            let alpha = min(max((q[0] * v[0] + q[1] * v[1] + q[2] * v[2]) / vv, 0), 1)
            var off: Float = 0
            for c in 0..<3 { let e = q[c] - alpha * v[c]; off += e * e }
            guard off < 0.03 else { continue }
            let inHair = hair.bits[i]
            // Region pixels with hardly any hair keep the garment as painted.
            if !inHair && alpha < 0.15 { continue }
            for c in 0..<3 {
                let g = inHair ? behind.rgb[c * n + i] : result.rgb[c * n + i]
                let p = person.rgb[c * n + i] + (1 - alpha) * (g - clothMean.rgb[c * n + i])
                result.rgb[c * n + i] = min(max(p, 0), 1)
            }
            if inHair { changedHair.bits[i] = true }
        }
        return changedHair
    }

    /// Luminance noise for filled skin, so it does not look painted on: half as strong as the fine
    /// detail of the visible skin `source` (its median absolute high-pass, so edges and features
    /// do not count; skin's own detail is pores and blotches, which read as finer than noise of
    /// the same spread), softened to the photo's grain size. Deterministic: a fixed seed.
    static func skinGrain(_ person: Image, source: Region) throws -> [Float] {
        guard let strength = try SwapGeometry.grainStrength(person, region: source) else {
            return [Float](repeating: 0, count: person.pixelCount)
        }
        return try SwapGeometry.unitGrain(width: person.width, height: person.height, seed: 0x5EED_5C1A, sigma: 1)
            .map { $0 * 0.5 * strength }
    }

    /// The garment photo with the garment's own colours carried outwards past its edge (push–pull
    /// from the region shrunk by `inset` pixels, whose outer ring is part backdrop in a photo's
    /// pixels). The warp samples bilinearly, so along the garment's edge it mixed in the backdrop
    /// or the wearer's skin: where that edge landed inside the person (a shoulder the garment's
    /// extension continues past) it drew a light line across the new cloth.
    static func bled(_ garment: Image, region: Region, inset: Int = 2) throws -> Image {
        let core = try region.eroded(inset)
        let known = core.area >= 64 ? core : region
        guard known.area > 0 else { return garment }
        let n = garment.pixelCount
        var out = garment
        for c in 0..<3 {
            let plane = Array(garment.rgb[(c * n)..<((c + 1) * n)])
            let filled = Membrane.pushPull(plane, known: known.bits, width: garment.width, height: garment.height)
            for i in 0..<n where !known.bits[i] { out.rgb[c * n + i] = filled[i] }
        }
        return out
    }

    /// `region` Telea-filled from outside it. The fill is smooth, so on a large photo it is made
    /// at 1/`factor` of the size (a cell with any region pixel is a hole, so no old clothing is
    /// averaged into the known cells) and scaled back up: a whole torso filled at full size
    /// takes seconds.
    static func backgroundFill(_ image: Image, region: Region, radius: Double, factor: Int) throws -> Image {
        guard factor > 1 else { return try image.inpainted(mask: region.mask, radius: radius) }
        let w = image.width, h = image.height, n = image.pixelCount
        let sw = max(1, (w + factor - 1) / factor), sh = max(1, (h + factor - 1) / factor)
        let small = try image.resized(width: sw, height: sh, interpolation: .area)
        var holes = try region.dilated(factor).mask.resized(width: sw, height: sh, interpolation: .area)
        holes.values = holes.values.map { $0 > 0 ? 1 : 0 }
        let filled = try small.inpainted(mask: holes, radius: max(2, radius / Double(factor)))
            .resized(width: w, height: h, interpolation: .linear)
        var out = image
        for i in 0..<n where region.bits[i] { for c in 0..<3 { out.rgb[c * n + i] = filled.rgb[c * n + i] } }
        return out
    }

    /// Low-pass luma inside `region` over its mean there: 1 where the light is average, above
    /// in highlights, below in folds and shadow; 1 far from the region.
    static func shading(_ image: Image, region: Region, sigma: Double) throws -> [Float] {
        let n = image.pixelCount
        let luma = image.grey()
        var sum = 0.0, count = 0.0
        for i in 0..<n where region.bits[i] { sum += Double(luma[i]); count += 1 }
        guard count > 0 else { return [Float](repeating: 1, count: n) }
        let mean = Float(sum / count)
        let lumaImage = Image(grey: luma, width: image.width, height: image.height)
        let low = try SwapGeometry.maskedLowPass(lumaImage, region.mask, sigma: max(1, sigma))
        let den = try region.mask.blurred(sigma: max(1, sigma))
        return (0..<n).map { i in den.values[i] > 0.05 && mean > 1e-3 ? low.rgb[i] / mean : 1 }
    }
}

/// CIE colour differences for measuring how well a garment's colour survives.
enum ColourDifference {
    typealias Lab = (l: Double, a: Double, b: Double)

    /// sRGB (0…1) to CIELAB under D65.
    static func lab(_ r: Double, _ g: Double, _ b: Double) -> Lab {
        func lin(_ c: Double) -> Double { c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4) }
        let (rl, gl, bl) = (lin(r), lin(g), lin(b))
        let x = (0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl) / 0.95047
        let y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
        let z = (0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl) / 1.08883
        func f(_ t: Double) -> Double { t > 216.0 / 24389.0 ? cbrt(t) : t * 841.0 / 108.0 + 4.0 / 29.0 }
        return (116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z)))
    }

    /// The mean Lab colour over a region; nil when it is empty.
    static func meanLab(_ image: Image, _ region: Region) -> Lab? {
        let n = image.pixelCount
        var s = (0.0, 0.0, 0.0), c = 0.0
        for i in 0..<n where region.bits[i] {
            let v = lab(Double(image.rgb[i]), Double(image.rgb[n + i]), Double(image.rgb[2 * n + i]))
            s.0 += v.l; s.1 += v.a; s.2 += v.b; c += 1
        }
        return c > 0 ? (s.0 / c, s.1 / c, s.2 / c) : nil
    }

    /// CIEDE2000 (Sharma, Wu and Dalal's formulation), kL = kC = kH = 1.
    static func ciede2000(_ x: Lab, _ y: Lab) -> Double {
        let rad = Double.pi / 180
        let c1 = (x.a * x.a + x.b * x.b).squareRoot(), c2 = (y.a * y.a + y.b * y.b).squareRoot()
        let cbar7 = pow((c1 + c2) / 2, 7)
        let g = 0.5 * (1 - (cbar7 / (cbar7 + pow(25, 7))).squareRoot())
        let a1 = (1 + g) * x.a, a2 = (1 + g) * y.a
        let cp1 = (a1 * a1 + x.b * x.b).squareRoot(), cp2 = (a2 * a2 + y.b * y.b).squareRoot()
        func hue(_ b: Double, _ a: Double) -> Double {
            if a == 0 && b == 0 { return 0 }
            let h = atan2(b, a) / rad
            return h < 0 ? h + 360 : h
        }
        let h1 = hue(x.b, a1), h2 = hue(y.b, a2)
        let dL = y.l - x.l, dC = cp2 - cp1
        var dh = 0.0
        if cp1 * cp2 != 0 {
            dh = h2 - h1
            if dh > 180 { dh -= 360 } else if dh < -180 { dh += 360 }
        }
        let dH = 2 * (cp1 * cp2).squareRoot() * sin(dh / 2 * rad)
        let lbar = (x.l + y.l) / 2, cbar = (cp1 + cp2) / 2
        var hbar = h1 + h2
        if cp1 * cp2 != 0 {
            if abs(h1 - h2) <= 180 { hbar = (h1 + h2) / 2 } else if h1 + h2 < 360 { hbar = (h1 + h2 + 360) / 2 } else { hbar = (h1 + h2 - 360) / 2 }
        }
        let t = 1 - 0.17 * cos((hbar - 30) * rad) + 0.24 * cos(2 * hbar * rad) + 0.32 * cos((3 * hbar + 6) * rad) - 0.20 * cos((4 * hbar - 63) * rad)
        let dTheta = 30 * exp(-pow((hbar - 275) / 25, 2))
        let cbarp7 = pow(cbar, 7)
        let rc = 2 * (cbarp7 / (cbarp7 + pow(25, 7))).squareRoot()
        let sl = 1 + 0.015 * pow(lbar - 50, 2) / (20 + pow(lbar - 50, 2)).squareRoot()
        let sc = 1 + 0.045 * cbar, sh = 1 + 0.015 * cbar * t
        let rt = -sin(2 * dTheta * rad) * rc
        let l = dL / sl, c = dC / sc, hh = dH / sh
        return (l * l + c * c + hh * hh + rt * c * hh).squareRoot()
    }
}
