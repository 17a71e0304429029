import ArgumentParser
import Foundation
import GuiseFormats
import GuiseNetworks
import GuiseTensor

/// `guise model run` for the embedded face networks: TFLite graphs and dlib's ResNet.
extension ModelRun {
    func readSeeds() throws -> SafeTensorsFile? {
        guard let gradSeed else { return nil }
        return try readInput(gradSeed)
    }

    func runTFLite() throws -> [String: Tensor] {
        let net = try TFLiteNetwork(path: file)
        let given = try readInput(inputs)
        let x = try net.inputNames.map { name -> Tensor in
            guard given[name] != nil else {
                throw FormatError("\(inputs): the model takes \(net.inputNames.joined(separator: ", ")); found \(given.names.sorted().joined(separator: ", "))", category: .input)
            }
            return try given.tensor(name)
        }
        var outputs: [String: Tensor] = [:]
        guard let gradWrt, let seeds = try readSeeds() else {
            let ys = try Autograd.noGrad { try net(x) }
            for (n, y) in zip(net.outputNames, ys) { outputs[n] = y }
            return outputs
        }
        guard let k = net.inputNames.firstIndex(of: gradWrt) else {
            throw ValidationError("--grad-wrt \(gradWrt): the model's inputs are \(net.inputNames.joined(separator: ", "))")
        }
        // One seed per output, by name; `seed` is the first output's.
        var seedOf: [Int: Tensor] = [:]
        for name in seeds.names {
            let target = name == "seed" ? net.outputNames.first : name
            guard let target, let j = net.outputNames.firstIndex(of: target) else {
                throw FormatError("\(gradSeed!): \(name) is not an output; the outputs are \(net.outputNames.joined(separator: ", "))", category: .input)
            }
            seedOf[j] = try seeds.tensor(name)
        }
        guard !seedOf.isEmpty else { throw FormatError("\(gradSeed!): no seed tensors", category: .input) }
        var ys: [Tensor] = []
        let (_, grad) = try valueAndGradient(at: x[k]) { xk -> Tensor in
            var args = x
            args[k] = xk
            ys = try net(args)
            var total: Tensor?
            for (j, seed) in seedOf.sorted(by: { $0.key < $1.key }) {
                guard ys[j].shape == seed.shape else {
                    throw FormatError("the seed for \(net.outputNames[j]) has shape \(seed.shape), the output \(ys[j].shape)", category: .input)
                }
                let term = (ys[j] * seed).sum()
                total = total.map { $0 + term } ?? term
            }
            return total!
        }
        for (n, y) in zip(net.outputNames, ys) { outputs[n] = y.detached() }
        outputs["grad_" + gradWrt] = grad
        return outputs
    }

    func runDlib() throws -> [String: Tensor] {
        let net = try DlibFaceEncoder(path: file)
        return try runSingleInput("a dlib network", needs: "x [N,3,\(net.chipSize),\(net.chipSize)]") { try net($0) }
    }

    /// A network of one input `x` (dlib, ArcFace, BiSeNet, EyeNet): `out`, and with --grad-wrt x
    /// also `grad_x`, the gradient of Σ(out ⊙ seed) with respect to x.
    func runSingleInput(_ what: String, needs input: String, _ net: (Tensor) throws -> Tensor) throws -> [String: Tensor] {
        let given = try readInput(inputs)
        guard given["x"] != nil else {
            throw FormatError("\(inputs): \(what) needs input \(input); found \(given.names.sorted().joined(separator: ", "))", category: .input)
        }
        let x = try given.tensor("x")
        guard let seeds = try readSeeds() else { return ["out": try Autograd.noGrad { try net(x) }] }
        guard seeds["seed"] != nil else { throw FormatError("\(gradSeed!): no tensor named seed", category: .input) }
        let seed = try seeds.tensor("seed")
        let (value, grad) = try vectorJacobianProduct(at: x, seed: seed) { xl -> Tensor in
            let o = try net(xl)
            guard o.shape == seed.shape else { throw FormatError("seed has shape \(seed.shape), the output \(o.shape)", category: .input) }
            return o
        }
        return ["out": value, "grad_x": grad]
    }
}
