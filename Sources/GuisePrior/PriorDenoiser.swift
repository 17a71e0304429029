import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks
import GuiseDiffusion

/// Denoising with the prior: an image with Gaussian noise of known σ is, once scaled by √ᾱ_t, the
/// diffusion's x_t at the timestep t whose noise level matches σ. One x̂0 prediction there, or a short
/// deterministic DDIM run from t to 0, removes the noise.
public final class PriorDenoiser {
    public let net: ADMUNet
    public let diffusion: GaussianDiffusion
    public let metadata: [String: String]

    /// A prior exported by `guise train-prior` (fp16 or f32 safetensors with `adm_config` metadata).
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard let json = file.metadata["adm_config"] else {
            throw FormatError("\(path) has no adm_config metadata; it is not a prior written by guise train-prior")
        }
        let config = try ADMConfig.parse(json: Data(json.utf8))
        net = try ADMUNet(config: config, weights: ADMUNet.loadStateDict(path: path))
        diffusion = try PriorModel.diffusion(config)
        metadata = file.metadata
    }

    public var levels: Int { (try? net.config.resolvedChannelMult().count) ?? 1 }

    /// The timesteps visited: K evenly spaced from t down (the last one above 0 unless t is 0).
    public static func schedule(from t: Int, steps k: Int) -> [Int] {
        var ts: [Int] = []
        for i in 0..<k {
            let v = Int((Double(t) * Double(k - i) / Double(k)).rounded())
            if ts.last != v { ts.append(v) }
        }
        return ts
    }

    /// Denoises y [1, 3, H, W] in [−1, 1] holding noise of σ (0–255 units). `steps` 1 is one x̂0
    /// prediction; more is DDIM (η = 0) over that many timesteps. `tta` averages the 8 flips and
    /// quarter turns. Any size: the image is reflect-padded to a multiple of the network's stride.
    public func denoise(_ y: Tensor, sigma: Double, steps: Int = 1, tta: Bool = false) throws -> Tensor {
        guard y.rank == 4, y.shape[0] == 1, y.shape[1] == 3 else { throw FormatError("denoise needs an RGB image [1, 3, H, W], got \(y.shape)", category: .input) }
        guard sigma > 0 else { throw FormatError("σ must be positive", category: .input) }
        guard steps >= 1 else { throw FormatError("steps must be at least 1", category: .input) }
        let transforms = tta ? Array(0..<8) : [0]
        let (h, w) = (y.shape[2], y.shape[3])
        var sum = [Float](repeating: 0, count: y.count)
        // A square image's 8 variants share one shape: one batched pass is cheaper than 8.
        let groups = h == w ? [transforms] : transforms.map { [$0] }
        for group in groups {
            let batch = group.count == 1 ? Dihedral.apply(group[0], y) : Tensor.concat(group.map { Dihedral.apply($0, y) }, dim: 0)
            let out = try denoiseOnce(batch, sigma: sigma, steps: steps)
            for (j, tr) in group.enumerated() {
                let back = Dihedral.invert(tr, group.count == 1 ? out : out.narrow(j..<(j + 1))).values
                for i in 0..<sum.count { sum[i] += back[i] }
            }
        }
        let scale = 1 / Float(transforms.count)
        return Tensor(shape: [1, 3, h, w], values: sum.map { $0 * scale })
    }

    func denoiseOnce(_ y: Tensor, sigma: Double, steps: Int) throws -> Tensor {
        let (h, w) = (y.shape[2], y.shape[3])
        let m = 1 << (levels - 1)
        let ph = (m - h % m) % m, pw = (m - w % m) % m
        guard ph < h, pw < w else {
            throw FormatError("a \(w)×\(h) image is too small for this prior, whose stride is \(m); it needs at least \(m / 2 + 1) pixels a side")
        }
        let padded = ph + pw > 0 ? NN.pad(y, .init(top: 0, bottom: ph, left: 0, right: pw), mode: .reflect) : y
        let t0 = PriorModel.timestep(forSigma: sigma, diffusion)
        // The noisy image is x0 + σ_model·ε; at t with √((1−ᾱ)/ᾱ) = σ_model, √ᾱ·y is x_t. From there
        // DDIM (η = 0, x̂0 clipped) runs over a process respaced to exactly the visited timesteps
        // (`diffusion` is never respaced itself, so its betas are the base schedule's).
        let visited = try GaussianDiffusion(baseBetas: diffusion.betas, keep: PriorDenoiser.schedule(from: t0, steps: steps).reversed(),
                                            varianceType: diffusion.varianceType, rescaleTimesteps: diffusion.rescaleTimesteps)
        let xt = padded.scaled(Float(diffusion.sqrtAlphasCumprod[t0]))
        let net = self.net
        let result = try visited.sample({ x, t, _ in try net(x, timesteps: t) }, startingFrom: xt,
                                       options: SamplerOptions(method: .ddim(eta: 0), clipDenoised: true),
                                       noise: SeededNoise(seed: 0))
        // The last step lands on t = 0 of the respaced process, where DDIM's sample is x̂0 itself.
        let x0 = result.predXStart
        return ph + pw > 0 ? Dihedral.crop(x0, height: h, width: w) : x0
    }
}

/// The 8 symmetries of the square on [N, C, H, W]: bit 2 transposes, bit 0 flips x, bit 1 flips y
/// (applied after the transpose), as the training crops use them.
enum Dihedral {
    static func apply(_ k: Int, _ x: Tensor) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let transpose = k & 4 != 0
        let (oh, ow) = transpose ? (w, h) : (h, w)
        let src = x.contiguous()
        let out = Tensor(uninitialized: [n, c, oh, ow])
        for p in 0..<(n * c) {
            let s = src.data + p * h * w, d = out.data + p * oh * ow
            for yy in 0..<oh {
                for xx in 0..<ow {
                    var sx = transpose ? yy : xx, sy = transpose ? xx : yy
                    if k & 1 != 0 { sx = w - 1 - sx }
                    if k & 2 != 0 { sy = h - 1 - sy }
                    d[yy * ow + xx] = s[sy * w + sx]
                }
            }
        }
        return out
    }

    /// The inverse of `apply(k, ·)`, found by search (8 candidates) the first time per k.
    static func invert(_ k: Int, _ x: Tensor) -> Tensor {
        apply(inverse[k], x)
    }

    static let inverse: [Int] = (0..<8).map { k in
        let probe = Tensor(shape: [1, 1, 2, 3], values: (0..<6).map(Float.init))
        let moved = apply(k, probe)
        return (0..<8).first { apply($0, moved).values == probe.values && apply($0, moved).shape == probe.shape }!
    }

    static func crop(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let src = x.contiguous()
        let out = Tensor(uninitialized: [n, c, height, width])
        for p in 0..<(n * c) {
            for yy in 0..<height { (out.data + (p * height + yy) * width).update(from: src.data + p * h * w + yy * w, count: width) }
        }
        return out
    }
}
