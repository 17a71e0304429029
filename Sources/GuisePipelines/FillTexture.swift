import GuiseImage

/// A fill's fine texture brought to the level of the photo around it.
///
/// The prior draws about the same amount of fine detail whatever surrounds a hole: too little in
/// fur or foliage, too much on a smooth fruit or sky. The fill's structure and colour are right,
/// so only the amplitude of its detail bands changes: the luminance is split into bands
/// (differences of Gaussians of `sigmas`), and each band of the fill is scaled so that its local
/// energy matches the band's energy in the known ring just outside the hole. Local energies are
/// normalised Gaussian averages over `reach` pixels, falling back to the whole ring's where the
/// ring is far away, so fur beside one side of a hole and sky beside the other both carry in.
/// The gain ramps in over the hole's first pixels, so the hole's edge gets no step.
enum FillTexture {
    static let sigmas = [1.0, 2.0, 4.0, 8.0]

    /// `image` with the detail bands of its `hole` pixels rescaled; other pixels are returned as
    /// they are. Gains stay within 1/maxGain…maxGain, so a hole whose fill has no detail at all
    /// is not made of amplified rounding.
    static func match(_ image: Image, hole: [Bool], reach: Double = 12, minGain: Float = 1.0 / 3, maxGain: Float = 3, ring: Int = 16) throws -> Image {
        let w = image.width, h = image.height, n = w * h
        precondition(hole.count == n)
        guard hole.contains(true), hole.contains(false) else { return image }
        let holeMask = Mask(width: w, height: h, values: hole.map { $0 ? 1 : 0 })
        // Energies leave out the two pixels on either side of the hole's edge, where the fill
        // and the photo meet and the bands hold the seam, not texture.
        let inner = try holeMask.eroded(radius: 2)
        let near = try holeMask.dilated(radius: 2), far = try holeMask.dilated(radius: ring)
        let band = Mask(width: w, height: h, values: (0..<n).map { far.values[$0] - near.values[$0] })
        let innerCount = inner.values.reduce(0, +), bandCount = band.values.reduce(0, +)
        guard innerCount > 0, bandCount > 0 else { return image }
        let ramp = try (1...3).map { try holeMask.eroded(radius: $0) }
        let rampIn = (0..<n).map { (ramp[0].values[$0] + ramp[1].values[$0] + ramp[2].values[$0]) / 3 }

        var luma = [Float](repeating: 0, count: n)
        for i in 0..<n { luma[i] = 0.299 * image.rgb[i] + 0.587 * image.rgb[n + i] + 0.114 * image.rgb[2 * n + i] }
        var levels = [Mask(width: w, height: h, values: luma)]
        for s in sigmas { levels.append(try levels[0].blurred(sigma: s)) }
        let innerDen = try inner.blurred(sigma: reach), bandDen = try band.blurred(sigma: reach)

        var delta = [Float](repeating: 0, count: n)
        for k in 0..<sigmas.count {
            let b = (0..<n).map { levels[k].values[$0] - levels[k + 1].values[$0] }
            let e = b.map { $0 * $0 }
            let eIn = Mask(width: w, height: h, values: (0..<n).map { e[$0] * inner.values[$0] })
            let eBand = Mask(width: w, height: h, values: (0..<n).map { e[$0] * band.values[$0] })
            let globalIn = eIn.values.reduce(0, +) / innerCount, globalBand = eBand.values.reduce(0, +) / bandCount
            let localIn = try eIn.blurred(sigma: reach), localBand = try eBand.blurred(sigma: reach)
            // A weight of a hundredth of a full neighbourhood is where the global figure takes over.
            let eps: Float = 0.01
            for i in 0..<n where hole[i] {
                let ein = (localIn.values[i] + eps * globalIn) / (innerDen.values[i] + eps)
                let eband = (localBand.values[i] + eps * globalBand) / (bandDen.values[i] + eps)
                let gain = ein > 1e-12 ? min(max((eband / ein).squareRoot(), minGain), maxGain) : 1
                delta[i] += rampIn[i] * (gain - 1) * b[i]
            }
        }
        var out = image
        for i in 0..<n where hole[i] {
            for c in 0..<3 { out.rgb[c * n + i] = min(max(image.rgb[c * n + i] + delta[i], 0), 1) }
        }
        return out
    }
}
