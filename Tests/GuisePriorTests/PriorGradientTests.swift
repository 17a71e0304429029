import XCTest
import GuiseTensor
import GuiseNetworks
@testable import GuisePrior

/// The training path's parameter gradients against central differences, through the whole tiny ADM,
/// for a batch of 2 (the general FiLM path) and of 1 (where ResBlocks fold the FiLM into GroupNorm).
final class PriorGradientTests: XCTestCase {
    func testParameterGradientsMatchFiniteDifferences() throws {
        let config = try PriorModel.config(named: "tiny")
        var rng = PriorRNG(seed: 21)
        let params = try PriorModel.initialParameters(config, rng: &rng)
        // Random everywhere (the zero-initialised last layers would hide every other gradient).
        for (name, p) in params {
            let isNorm = name.contains("in_layers.0") || name.contains("out_layers.0") || name.hasPrefix("out.0") || name.contains(".norm.")
            for i in 0..<p.count {
                let u = Float(2 * rng.uniform() - 1)
                p.data[i] = isNorm && name.hasSuffix("weight") ? 1 + 0.3 * u : 0.3 * u
            }
        }
        let net = try ADMUNet(config: config, weights: params)
        let names = ["input_blocks.0.0.weight", "time_embed.0.weight", "input_blocks.1.0.emb_layers.1.weight",
                     "input_blocks.1.0.out_layers.0.weight", "middle_block.1.qkv.weight", "output_blocks.0.0.skip_connection.weight",
                     "out.2.bias"]
        for n in [2, 1] {
            let x = Tensor(uninitialized: [n, 3, 8, 8]), target = Tensor(uninitialized: [n, 3, 8, 8])
            rng.fillNormal(x.data, count: x.count)
            rng.fillNormal(target.data, count: target.count)
            let t = Tensor(shape: [n], values: (0..<n).map { Float(100 + 300 * $0) })
            func loss() throws -> Float { NN.mseLoss(try net(x, timesteps: t), target).item() }
            for p in params.values { p.grad = nil }
            let l = NN.mseLoss(try net(x, timesteps: t), target)
            l.backward()
            for name in names {
                let p = params[name]!
                let g = try XCTUnwrap(p.grad, "\(name) got no gradient").values
                // The entry with the largest gradient: well above float32's finite-difference noise.
                let i = g.indices.max { abs(g[$0]) < abs(g[$1]) }!
                let h: Float = 1e-2
                let v = p.data[i]
                p.data[i] = v + h
                let up = try Autograd.noGrad { try loss() }
                p.data[i] = v - h
                let down = try Autograd.noGrad { try loss() }
                p.data[i] = v
                let fd = (up - down) / (2 * h)
                XCTAssertEqual(fd, g[i], accuracy: 0.03 * abs(g[i]) + 1e-4, "batch \(n), \(name)[\(i)]")
            }
        }
    }
}
