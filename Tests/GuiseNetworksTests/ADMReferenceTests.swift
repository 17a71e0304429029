import XCTest
import Foundation
import GuiseTensor
@testable import GuiseNetworks
import GuiseTestSupport

/// Reference attention in the ADM: PyTorch parity, the weight-0 identity, and closed forms that
/// need no reference implementation.
final class ADMReferenceTests: XCTestCase {
    func loadModel(_ name: String) throws -> ADMUNet {
        let config = try ADMConfig.load(path: try fixturePath("adm_\(name).json"))
        return try ADMUNet(path: try fixturePath("adm_\(name).pt"), config: config)
    }

    /// The tiny ADM (new attention order, one reference per sample, w = 0.6, two timesteps) and
    /// the legacy one (legacy order, attention at two levels and a different head count on the
    /// way up, one reference shared by both samples, w = 2.5) against the PyTorch reference.
    func testForwardAndInputGradientMatchPyTorch() throws {
        let io = try fixture("adm_refattn_io")
        for name in ["tiny", "legacy"] {
            let model = try loadModel(name)
            let x = try io.tensor("\(name).x"), t = try io.tensor("\(name).t")
            let reference = ADMReference(x: try io.tensor("\(name).reference"), weight: try io.tensor("\(name).weight").item())
            let out = try Autograd.noGrad { try model(x, timesteps: t, reference: reference) }
            assertClose(out, try io.tensor("\(name).out"), tol: 1e-4, "\(name) forward with reference")
            // The reference changes the output by far more than the tolerance: the check above
            // cannot pass by running the plain network.
            let plain = try Autograd.noGrad { try model(x, timesteps: t) }
            assertClose(plain, try io.tensor("\(name).plain"), tol: 1e-4, "\(name) plain forward")
            XCTAssertGreaterThan(maxAbsDifference(out, plain), 0.05, "\(name): the reference must matter here")
            for checkpointing in [false, true] {
                model.checkpointing = checkpointing
                let (value, grad) = try vectorJacobianProduct(at: x, seed: try io.tensor("\(name).seed")) { xl in
                    try model(xl, timesteps: t, reference: reference)
                }
                assertClose(value, try io.tensor("\(name).out"), tol: 1e-4, "\(name) taped forward, checkpointing \(checkpointing)")
                assertClose(grad, try io.tensor("\(name).grad_x"), tol: 1e-3, "\(name) input gradient, checkpointing \(checkpointing)")
            }
            model.checkpointing = false
        }
    }

    /// w = 0 is the plain forward, bit for bit, whatever the reference holds; a tiny w is close
    /// to it (the log-weight form is continuous at 0) but not necessarily identical.
    func testWeightZeroIsThePlainForward() throws {
        let io = try fixture("adm_refattn_io")
        for name in ["tiny", "legacy"] {
            let model = try loadModel(name)
            let x = try io.tensor("\(name).x"), t = try io.tensor("\(name).t")
            let xr = try io.tensor("\(name).reference")
            let plain = try Autograd.noGrad { try model(x, timesteps: t) }
            XCTAssertTrue(plain.values.allSatisfy(\.isFinite), "\(name): plain output not finite")
            let zero = try Autograd.noGrad { try model(x, timesteps: t, reference: ADMReference(x: xr, weight: 0)) }
            XCTAssertEqual(zero.shape, plain.shape)
            XCTAssertEqual(zero.values, plain.values, "\(name): w = 0 must give the plain forward's bits")
            let seed = try io.tensor("\(name).seed")
            let (_, g0) = try vectorJacobianProduct(at: x, seed: seed) { try model($0, timesteps: t) }
            let (_, gz) = try vectorJacobianProduct(at: x, seed: seed) { try model($0, timesteps: t, reference: ADMReference(x: xr, weight: 0)) }
            XCTAssertEqual(gz.values, g0.values, "\(name): w = 0 must give the plain gradient's bits")
            let tiny = try Autograd.noGrad { try model(x, timesteps: t, reference: ADMReference(x: xr, weight: 1e-7)) }
            assertClose(tiny, plain, tol: 1e-5, "\(name): w = 1e-7 near the plain forward")
        }
    }

    /// A reference identical to the sample (same x_t, same timestep): at the first attention
    /// layer the reference's keys and values equal the sample's own, and softmax over
    /// [s_j, s_j + log w] gives p_j/(1+w) and w·p_j/(1+w) on equal values, which sum to the plain
    /// output. The reference rows themselves run plainly, so they stay equal to the sample's
    /// at every later layer too: the whole network's output is the plain one for any w.
    func testReferenceEqualToSampleLeavesTheOutputUnchanged() throws {
        for name in ["tiny", "legacy", "class", "id"] {
            let model = try loadModel(name)
            let io = try fixture("adm_\(name)_io")
            let x = try io.tensor("x"), t = try io.tensor("t")
            let y = io["y"] != nil ? try io.tensor("y") : nil
            let id = io["id"] != nil ? try io.tensor("id") : nil
            let plain = try Autograd.noGrad { try model(x, timesteps: t, y: y, id: id) }
            for w: Float in [1, 0.3, 4] {
                let out = try Autograd.noGrad { try model(x, timesteps: t, y: y, id: id, reference: ADMReference(x: x, weight: w)) }
                assertClose(out, plain, tol: 2e-5, "\(name): reference = sample, w = \(w)")
            }
        }
    }

    /// A single attention with key bias against the formula written out in Double: the first
    /// S₁ keys are the sample's, the other S₂ a reference's with log w added to their logits,
    /// o_t = Σ_j softmax_j(α q_t·k_j + b_j) v_j; and its gradients against finite differences
    /// of that formula.
    func testKeyBiasAttentionAgainstTheFormula() throws {
        let (t, s1, s2, d, dv) = (3, 4, 5, 6, 2)
        let s = s1 + s2
        let logW: Float = Foundation.log(0.4)
        let bias = [Float](repeating: 0, count: s1) + [Float](repeating: logW, count: s2)
        func values(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { i in Float(sin(Double(i * 7 + k) * 0.91)) } }
        let q = Tensor(shape: [1, t, d], values: values(t * d, 1))
        let k = Tensor(shape: [1, s, d], values: values(s * d, 2))
        let v = Tensor(shape: [1, s, dv], values: values(s * dv, 3))
        let alpha = 1 / Float(d).squareRoot()

        func formula(_ qv: [Double], _ kv: [Double], _ vv: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: t * dv)
            for r in 0..<t {
                var logits = (0..<s).map { j in
                    Double(alpha) * (0..<d).reduce(0.0) { $0 + qv[r * d + $1] * kv[j * d + $1] } + Double(bias[j])
                }
                let m = logits.max()!
                logits = logits.map { Foundation.exp($0 - m) }
                let z = logits.reduce(0, +)
                for c in 0..<dv { out[r * dv + c] = (0..<s).reduce(0.0) { $0 + logits[$1] / z * vv[$1 * dv + c] } }
            }
            return out
        }
        let dq = q.values.map(Double.init), dk = k.values.map(Double.init), dvv = v.values.map(Double.init)
        let expected = formula(dq, dk, dvv)
        let out = NN.scaledDotProductAttention(q, k, v, scale: alpha, keyBias: bias)
        assertClose(out.values.map(Double.init), expected, 1e-6, "attention with key bias")
        // Without the bias the result differs: the bias is not being ignored.
        let unbiased = NN.scaledDotProductAttention(q, k, v, scale: alpha)
        XCTAssertGreaterThan(zip(unbiased.values, expected).map { abs(Double($0) - $1) }.max()!, 1e-3)

        // Gradients of Σ out ⊙ g against central differences of the Double formula.
        let g = values(t * dv, 4).map(Double.init)
        func loss(_ qv: [Double], _ kv: [Double], _ vv: [Double]) -> Double { zip(formula(qv, kv, vv), g).reduce(0) { $0 + $1.0 * $1.1 } }
        let ql = q.detached(), kl = k.detached(), vl = v.detached()
        for p in [ql, kl, vl] { p.requiresGrad = true }
        let o = NN.scaledDotProductAttention(ql, kl, vl, scale: alpha, keyBias: bias)
        (o * Tensor(shape: o.shape, values: g.map(Float.init))).sum().backward()
        let h = 1e-5
        for (which, tensor) in [(0, ql), (1, kl), (2, vl)] {
            let base = [dq, dk, dvv][which]
            var fd = [Double](repeating: 0, count: base.count)
            for i in base.indices {
                var plus = [dq, dk, dvv], minus = [dq, dk, dvv]
                plus[which][i] += h
                minus[which][i] -= h
                fd[i] = (loss(plus[0], plus[1], plus[2]) - loss(minus[0], minus[1], minus[2])) / (2 * h)
            }
            guard let grad = tensor.grad else { XCTFail("no gradient for operand \(which)"); continue }
            assertClose(grad.values.map(Double.init), fd, 1e-5, "gradient of operand \(which)")
        }
    }

    func testBadReferencesFailClearly() throws {
        let model = try loadModel("tiny")
        let x = Tensor(zeros: [2, 3, 32, 32]), t = Tensor(shape: [2], values: [5, 9])
        func message(_ r: ADMReference, _ tt: Tensor? = nil) -> String {
            do { _ = try model(x, timesteps: tt ?? t, reference: r); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [2, 3, 16, 16]), weight: 1)).contains("like the sample"))
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [3, 3, 32, 32]), weight: 1)).contains("like the sample"))
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [2, 3, 32, 32]), weight: -1)).contains("weight"))
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [2, 3, 32, 32]), weight: .nan)).contains("weight"))
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [1, 3, 32, 32]), weight: 1)).contains("same timestep"))
        // A shared reference at one timestep is fine; so is weight 0 with a wrong shape refused.
        XCTAssertEqual(message(ADMReference(x: Tensor(zeros: [1, 3, 32, 32]), weight: 1), Tensor(shape: [2], values: [5, 5])), "")
        XCTAssertTrue(message(ADMReference(x: Tensor(zeros: [2, 3, 8, 8]), weight: 0)).contains("like the sample"))
    }

    func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity
    }
}
