import XCTest
import GuiseTensor
import GuiseFormats
import GuiseDiffusion
@testable import GuiseNetworks
import GuiseTestSupport

/// The tiny ADM driving the sampler, against PyTorch with the same noise: timestep mapping and
/// rescaling, learned variance, and guidance back through the UNet, all together.
final class ADMSamplingTests: XCTestCase {
    func testSamplerWithADMMatchesReference() throws {
        let config = try ADMConfig.load(path: try fixturePath("adm_tiny.json"))
        let model = try ADMUNet(path: try fixturePath("adm_tiny.pt"), config: config)
        let f = try fixture("adm_tiny_sampling")
        let x0 = try f.tensor("x0")
        let target = Tensor(zeros: x0.shape)
        let denoiser: Denoiser = { x, t, c in try model(x, timesteps: t, y: c["y"], id: c["id"]) }
        for (key, spacing, guided) in [("ddpm", "6", false), ("ddim_guided", "ddim6", true)] {
            let d = try GaussianDiffusion(respacing: spacing, varianceType: .learnedRange, rescaleTimesteps: true)
            let noise = try f.tensor("\(key)_noise")
            let queue = (0..<noise.shape[0]).map { noise.narrow($0..<($0 + 1)).reshaped(x0.shape).contiguous() }
            var options = SamplerOptions(method: guided ? .ddim(eta: 0.5) : .ddpm, clipDenoised: !guided, skipTimesteps: 2)
            if guided {
                options.guidance = Guidance(image: .predictedStart, gradient: .throughDenoiser) { img, _ in
                    let diff = img - target
                    return (diff * diff).summed(toShape: []).scaled(0.5)
                }
            }
            var xs: [Tensor] = []
            options.progress = { xs.append($0.x) }
            _ = try d.sample(denoiser, shape: x0.shape, initImage: x0, options: options, noise: ReplayNoise(queue))
            let ref = try f.tensor("\(key)_x")
            XCTAssertEqual(xs.count, ref.shape[0], key)
            for j in 0..<min(xs.count, ref.shape[0]) {
                assertClose(xs[j], ref.narrow(j..<(j + 1)).reshaped(Array(ref.shape.dropFirst())), tol: 1e-4, "\(key) step \(j)")
            }
        }
    }
}
