import Foundation
import GuiseFace
import GuiseImage
import GuiseVision

extension FaceSwap {
    /// One target face swapped DiffFace's way: both faces aligned to 256² FFHQ crops (DiffFace's
    /// own inputs are such crops), DiffFace's sampling on them, and the result pasted back under
    /// its face mask, feathered.
    func swapFaceDiffFace(into out: inout Image, original target: Image, face: Face, landmarks tlm: FaceLandmarks,
                          sources: [SourceFace], sourceDescriptor: [Float], faceNumber: Int,
                          timed: (String, () throws -> Void) throws -> Void) throws -> FaceOutcome {
        // The source photo closest in pose, as the embedded swap picks it.
        var best = 0, bestResidual = Double.infinity
        for (k, s) in sources.enumerated() {
            let (_, r) = try SwapGeometry.similarity(s.landmarks.mesh.map(\.xy), tlm.mesh.map(\.xy))
            let rel = r / SwapGeometry.interOcular(tlm.mesh.map(\.xy))
            if rel < bestResidual { bestResidual = rel; best = k }
        }
        let source = sources[best]

        var alignedTarget: AlignedFace?
        var alignedSource: AlignedFace?
        var cropLandmarks: FaceLandmarks?
        try timed("align") {
            let at = try FaceAligner.align(out, face: face)
            alignedTarget = at
            alignedSource = try FaceAligner.align(source.image, face: source.face)
            // The crop's own mesh: the mask, the eye boxes and the embedded experts work in its pixels.
            let inCrop = try detector.detect(at.crop, order: .largest)
            guard let f = inCrop.first else {
                throw FaceError("target face \(faceNumber) is not found again in its aligned crop", category: .notFound)
            }
            cropLandmarks = try FaceSelection.landmarks(at.crop, face: f, analyzer: analyzer)
        }
        guard let at = alignedTarget, let asrc = alignedSource, let clm = cropLandmarks else {
            throw PipelineError("alignment did not run", category: .internal)
        }

        let m = try model.get()
        let refiner = DiffFaceRefiner(model: m, experts: diffFaceExperts, analyzer: analyzer, identity: identity, options: options)
        refiner.progress = { [weak self] done, total in
            self?.stepFinished(done)
            self?.progress?(SwapProgress(stage: "face \(faceNumber + 1): diffusion", done: done, total: total))
        }
        refiner.note = note
        var refined: DiffFaceRefiner.Refined?
        try timed("diffusion") {
            refined = try refiner.refine(target: at.crop, source: asrc.crop, targetLM: clm, sourceDescriptor: sourceDescriptor,
                                         expertNames: diffFaceExpertNames, seed: options.seed &+ UInt64(faceNumber) &* 1_000_003)
        }
        guard let r = refined else { throw PipelineError("diffusion did not run", category: .internal) }
        lastDiffFaceTerms = r.lastTerms
        lastDiffFaceExperts = r.experts

        // Paste back: the face mask, grown a little and feathered over 4 % of the crop, so the
        // seam falls on re-rendered pixels; outside it the photo is untouched.
        var pasteMask = try r.mask.dilated(radius: 3)
        pasteMask = try pasteMask.blurred(sigma: 0.04 * 256 / 4)
        var pasted: [Image] = []
        for s in r.samples {
            pasted.append(try FaceAligner.pasteBack(s, of: at, into: out, mask: pasteMask, feather: nil))
        }
        out = pasted[0]
        let footprint = try FaceAligner.pasteMask(for: at, imageWidth: out.width, imageHeight: out.height, mask: pasteMask)
        var x0 = out.width, y0 = out.height, x1 = 0, y1 = 0
        for y in 0..<out.height {
            for x in 0..<out.width where footprint.values[y * out.width + x] > 0 {
                x0 = min(x0, x); y0 = min(y0, y); x1 = max(x1, x + 1); y1 = max(y1, y + 1)
            }
        }
        var result = SwapReport.FaceResult(index: 0, box: face.box, sourcePhoto: best, identityToSource: 0, identityToTarget: 0,
                                           sourceToTarget: 0, landmarkError: 0, gazeDifference: 0, sampleDistances: r.distances,
                                           window: x1 > x0 ? [x0, y0, x1 - x0, y1 - y0] : [0, 0, 0, 0], workSize: [256, 256],
                                           maskArea: footprint.values.filter { $0 > 0 }.count)
        try timed("report") {
            try measure(out, target: target, face: face, landmarks: tlm, sourceDescriptor: sourceDescriptor, into: &result)
        }
        return FaceOutcome(result: result, samples: pasted, stepsRun: r.stepsRun)
    }
}
