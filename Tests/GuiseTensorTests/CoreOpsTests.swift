import XCTest
import GuiseFormats
@testable import GuiseTensor
import GuiseTestSupport

/// Forward and backward of every core op against PyTorch (Tools/make_fixtures_ops.py), to
/// 1e-4 of the output's scale, plus a finite-difference check of each backward.
let coreOps: SafeTensorsFile = try! fixture("core_ops")

/// Runs `f` on the fixture's inputs `name.x0…`, compares `name.y`, back-propagates
/// `name.gy` and compares every input gradient `name.g0…`; then checks the backward
/// against finite differences on the same inputs.
func checkOp(_ name: String, inputs n: Int, tol: Float = 1e-4, gradCheck: Bool = true, fdEps: Float = 1e-2,
             file: StaticString = #filePath, line: UInt = #line, _ f: @escaping ([Tensor]) -> Tensor) throws {
    let xs = try (0..<n).map { try coreOps.tensor("\(name).x\($0)") }
    let leaves = xs.map { x -> Tensor in let l = x.copy(); l.requiresGrad = true; return l }
    let y = f(leaves)
    // fixture_io stores 0-d arrays as [1] (numpy's ascontiguousarray promotes them).
    let expected = try coreOps.tensor("\(name).y")
    assertClose(y, y.rank == 0 ? expected.reshaped([]) : expected, tol: tol, "\(name) forward", file: file, line: line)
    y.backward(seed: try coreOps.tensor("\(name).gy").reshaped(y.shape))
    for (i, leaf) in leaves.enumerated() {
        guard let g = leaf.grad else { XCTFail("\(name): no gradient for input \(i)", file: file, line: line); continue }
        assertClose(g, try coreOps.tensor("\(name).g\(i)"), tol: tol, "\(name) gradient \(i)", file: file, line: line)
    }
    if gradCheck {
        assertGradientsMatchFiniteDifferences(xs, eps: fdEps, file: file, line: line, f)
    }
}

final class LinalgTests: XCTestCase {
    func testLinear() throws {
        try checkOp("linear", inputs: 3) { NN.linear($0[0], weight: $0[1], bias: $0[2]) }
        try checkOp("linear_nobias", inputs: 2) { NN.linear($0[0], weight: $0[1]) }
    }

    func testMatmul() throws {
        try checkOp("matmul", inputs: 2) { $0[0].matmul($0[1]) }
        try checkOp("matmul_bcast", inputs: 2) { $0[0].matmul($0[1]) }
        try checkOp("matmul_vec", inputs: 2) { $0[0].matmul($0[1]) }
    }

    func testBatchedMatmulWithTransposedViews() throws {
        try checkOp("bmm", inputs: 2) { $0[0].bmm($0[1]) }
        try checkOp("bmm_t", inputs: 2) { $0[0].permuted(0, 2, 1).bmm($0[1].permuted(0, 2, 1)) }
    }

    func testTransposedOperandsAreNotCopied() {
        let a = randomTensor([4, 3]).permuted(1, 0)
        XCTAssertNotNil(MatrixLayout(a))
        XCTAssertEqual(MatrixLayout(a)?.trans, true)
    }
}

final class ElementwiseTests: XCTestCase {
    func testUnaryMath() throws {
        try checkOp("exp", inputs: 1) { $0[0].exp() }
        try checkOp("log", inputs: 1) { $0[0].log() }
        try checkOp("sqrt", inputs: 1) { $0[0].sqrt() }
        try checkOp("rsqrt", inputs: 1) { $0[0].rsqrt() }
        try checkOp("pow2", inputs: 1) { $0[0].power(2) }
        try checkOp("pow3", inputs: 1) { $0[0].power(3) }
        try checkOp("pow15", inputs: 1) { $0[0].power(1.5) }
    }

    func testPiecewise() throws {
        try checkOp("abs", inputs: 1, fdEps: 1e-3) { $0[0].absolute() }
        try checkOp("clamp", inputs: 1, fdEps: 1e-3) { $0[0].clamped(min: -0.5, max: 0.7) }
        let mask = try coreOps.tensor("where.mask")
        try checkOp("where", inputs: 2) { Tensor.select(mask, $0[0], $0[1]) }
        try checkOp("maximum", inputs: 2, fdEps: 1e-3) { $0[0].maximum($0[1]) }
        try checkOp("minimum", inputs: 2, fdEps: 1e-3) { $0[0].minimum($0[1]) }
    }

    func testMaximumSplitsTiesLikePyTorch() {
        let a = Tensor(shape: [2], values: [1, 2]), b = Tensor(shape: [2], values: [1, 3])
        a.requiresGrad = true; b.requiresGrad = true
        a.maximum(b).sum().backward()
        XCTAssertEqual(a.grad?.values, [0.5, 0])
        XCTAssertEqual(b.grad?.values, [0.5, 1])
    }
}

final class ActivationTests: XCTestCase {
    func testActivations() throws {
        try checkOp("relu", inputs: 1, fdEps: 1e-3) { $0[0].relu() }
        try checkOp("leaky_relu", inputs: 1, fdEps: 1e-3) { $0[0].leakyReLU(0.2) }
        try checkOp("relu6", inputs: 1, fdEps: 1e-3) { $0[0].relu6() }
        try checkOp("silu", inputs: 1) { $0[0].silu() }
        try checkOp("gelu", inputs: 1) { $0[0].gelu() }
        try checkOp("gelu_tanh", inputs: 1) { $0[0].gelu(tanhApproximation: true) }
        try checkOp("sigmoid", inputs: 1) { $0[0].sigmoid() }
        try checkOp("tanh", inputs: 1) { $0[0].tanh() }
        try checkOp("hardswish", inputs: 1, fdEps: 1e-3) { $0[0].hardSwish() }
        try checkOp("hardsigmoid", inputs: 1, fdEps: 1e-3) { $0[0].hardSigmoid() }
        try checkOp("prelu", inputs: 2, fdEps: 1e-3) { NN.prelu($0[0], weight: $0[1]) }
    }

    /// The SIMD kernels against libm over a wide range, including the extremes and the
    /// small-argument branches.
    func testVectorMathAccuracy() {
        var worst: (exp: Float, tanh: Float, erf: Float) = (0, 0, 0)
        var x: Float = -90
        while x < 90 {
            let v = F8(repeating: x) + F8(0, 0.001, 0.01, 0.03, 0.05, 0.07, 0.3, 0.6)
            let e = VMath.exp(v), t = VMath.tanh(v), r = VMath.erf(v)
            for k in 0..<8 {
                let xv = Double(v[k])
                let ee = Foundation.exp(xv)
                if ee > 1e-37 && ee < 1e38 { worst.exp = Swift.max(worst.exp, Float(Swift.abs(Double(e[k]) - ee) / ee)) }
                worst.tanh = Swift.max(worst.tanh, Float(Swift.abs(Double(t[k]) - Foundation.tanh(xv))))
                worst.erf = Swift.max(worst.erf, Float(Swift.abs(Double(r[k]) - Foundation.erf(xv))))
            }
            x += x.magnitude < 4 ? 0.0137 : 0.61
        }
        XCTAssertLessThan(worst.exp, 3e-7, "exp relative error")
        XCTAssertLessThan(worst.tanh, 3e-7, "tanh absolute error")
        XCTAssertLessThan(worst.erf, 3e-7, "erf absolute error")
        XCTAssertEqual(VMath.sigmoid(F8(repeating: -200))[0], 0, accuracy: 1e-30)
        XCTAssertEqual(VMath.sigmoid(F8(repeating: 200))[0], 1)
    }
}

final class NormTests: XCTestCase {
    func testGroupNorm() throws {
        try checkOp("group_norm", inputs: 3) { NN.groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2]) }
        try checkOp("group_norm_many", inputs: 3) { NN.groupNorm($0[0], groups: 8, weight: $0[1], bias: $0[2]) }
        let xs = try (0..<3).map { try coreOps.tensor("group_norm_many.x\($0)") }
        assertClose(NN.groupNormSiLU(xs[0], groups: 8, weight: xs[1], bias: xs[2]),
                    NN.groupNorm(xs[0], groups: 8, weight: xs[1], bias: xs[2]).silu(), tol: 1e-6, "fused, per-group path")
        try checkOp("group_norm_plain", inputs: 1) { NN.groupNorm($0[0], groups: 2, eps: 1e-6) }
    }

    func testFusedGroupNormSiLU() throws {
        try checkOp("group_norm_silu", inputs: 3) { NN.groupNormSiLU($0[0], groups: 4, weight: $0[1], bias: $0[2]) }
        // Inference takes the fused single-pass path.
        let xs = try (0..<3).map { try coreOps.tensor("group_norm_silu.x\($0)") }
        let y = NN.groupNormSiLU(xs[0], groups: 4, weight: xs[1], bias: xs[2])
        XCTAssertNil(y.gradFn)
        assertClose(y, try coreOps.tensor("group_norm_silu.y"), "fused group norm + SiLU")
    }

    func testInstanceNorm() throws {
        try checkOp("instance_norm", inputs: 3) { NN.instanceNorm($0[0], weight: $0[1], bias: $0[2]) }
    }

    func testBatchNormInference() throws {
        let rm = try coreOps.tensor("batch_norm.running_mean"), rv = try coreOps.tensor("batch_norm.running_var")
        try checkOp("batch_norm", inputs: 3) { NN.batchNorm($0[0], runningMean: rm, runningVar: rv, weight: $0[1], bias: $0[2]) }
    }

    func testLayerNorm() throws {
        try checkOp("layer_norm", inputs: 3) { NN.layerNorm($0[0], normalizedShape: [6], weight: $0[1], bias: $0[2]) }
        try checkOp("layer_norm2", inputs: 3) { NN.layerNorm($0[0], normalizedShape: [5, 6], weight: $0[1], bias: $0[2]) }
    }
}

final class SoftmaxAttentionTests: XCTestCase {
    func testSoftmax() throws {
        try checkOp("softmax", inputs: 1) { $0[0].softmax(dim: -1) }
        try checkOp("softmax_dim1", inputs: 1) { $0[0].softmax(dim: 1) }
        try checkOp("log_softmax", inputs: 1) { $0[0].logSoftmax(dim: -1) }
        try checkOp("log_softmax_dim0", inputs: 1) { $0[0].logSoftmax(dim: 0) }
    }

    func testSoftmaxIsStableForLargeLogits() {
        let x = Tensor(shape: [1, 3], values: [1000, 1001, -1000])
        let y = x.softmax().values
        XCTAssertEqual(y[0], 0.26894142, accuracy: 1e-6)
        XCTAssertEqual(y[1], 0.73105858, accuracy: 1e-6)
        XCTAssertEqual(y[2], 0)
        XCTAssertEqual(x.logSoftmax().values[2], -2001.3133, accuracy: 1e-2)
    }

    func testAttention() throws {
        try checkOp("attention", inputs: 3) { NN.scaledDotProductAttention($0[0], $0[1], $0[2]) }
        try checkOp("attention_scale", inputs: 3) { NN.scaledDotProductAttention($0[0], $0[1], $0[2], scale: 0.3) }
    }

    /// Over the probability budget, backward recomputes each head's probabilities: same gradients.
    func testAttentionRecomputesOverBudget() throws {
        let saved = NN.attentionProbabilityBudget
        NN.attentionProbabilityBudget = 0
        defer { NN.attentionProbabilityBudget = saved }
        try checkOp("attention", inputs: 3) { NN.scaledDotProductAttention($0[0], $0[1], $0[2]) }
        try checkOp("attention_t", inputs: 3) {
            NN.scaledDotProductAttention($0[0].transposedLastTwo, $0[1].transposedLastTwo, $0[2].transposedLastTwo)
        }
    }

    /// guided-diffusion's QKVAttentionLegacy: q, k, v are slices of one [B·H, 3·C, T] tensor, used transposed.
    func testAttentionOnSlicesOfPackedQKV() {
        let qkv = randomTensor([2, 3 * 4, 10], seed: 21)
        let parts = qkv.split(sizes: [4, 4, 4], dim: 1).map { $0.transposedLastTwo }
        let dense = parts.map { $0.contiguous() }
        XCTAssertNotNil(MatrixLayout(parts[0]), "a slice of packed qkv should reach cblas without a copy")
        assertClose(NN.scaledDotProductAttention(parts[0], parts[1], parts[2], scale: 0.5),
                    NN.scaledDotProductAttention(dense[0], dense[1], dense[2], scale: 0.5), tol: 1e-6)
        assertGradientsMatchFiniteDifferences([qkv]) { x in
            let p = x[0].split(sizes: [4, 4, 4], dim: 1).map { $0.transposedLastTwo }
            return NN.scaledDotProductAttention(p[0], p[1], p[2])
        }
    }

    func testAttentionOnTransposedLayouts() throws {
        try checkOp("attention_t", inputs: 3) {
            NN.scaledDotProductAttention($0[0].transposedLastTwo, $0[1].transposedLastTwo, $0[2].transposedLastTwo)
        }
    }
}

final class ReductionTests: XCTestCase {
    func testSumAndMean() throws {
        try checkOp("sum_dim1", inputs: 1) { $0[0].sum(dims: [1], keepDims: true) }
        try checkOp("sum_dims02", inputs: 1) { $0[0].sum(dims: [0, 2]) }
        try checkOp("mean_dims12", inputs: 1) { $0[0].mean(dims: [1, 2]) }
        try checkOp("mean_all", inputs: 1) { $0[0].mean() }
    }

    func testNorm() throws {
        try checkOp("norm_dim1", inputs: 1) { $0[0].norm(dims: [1]) }
        try checkOp("norm_all", inputs: 1) { $0[0].norm() }
    }

    func testMaxAlongDim() throws {
        try checkOp("max_dim1", inputs: 1, fdEps: 1e-3) { $0[0].maxAlong(dim: 1).values }
        let x = try coreOps.tensor("max_dim1.x0")
        XCTAssertEqual(x.maxAlong(dim: 1).indices.map(Float.init), try coreOps.tensor("max_dim1.indices").values)
    }

    func testScalarReductions() {
        XCTAssertEqual(Tensor.scalar(3).sum().item(), 3)
        XCTAssertEqual(Tensor.scalar(3).mean().shape, [])
        XCTAssertEqual(randomTensor([2, 3]).sum(dims: [0, 1], keepDims: true).shape, [1, 1])
    }

    func testLargeSumKeepsPrecision() {
        let x = Tensor(shape: [3, 100_003], repeating: 0.1)
        let s = x.sum(dims: [1]).values
        for v in s { XCTAssertEqual(v, 10000.3, accuracy: 0.01) }
        let c = Tensor(shape: [5000, 17], repeating: 0.1).sum(dims: [0]).values
        for v in c { XCTAssertEqual(v, 500, accuracy: 1e-3) }
    }
}

final class ShapeTests: XCTestCase {
    func testConcatSliceSplitSqueeze() throws {
        try checkOp("concat", inputs: 3) { Tensor.concat($0, dim: 1) }
        try checkOp("slice", inputs: 1) { $0[0].slice(dim: 2, start: 1, end: 7, step: 2) }
        try checkOp("split", inputs: 1) {
            let p = $0[0].split(sizes: [2, 3], dim: 1)
            return p[1] * 2 + p[0].sum(dims: [1], keepDims: true)
        }
        try checkOp("squeeze", inputs: 1) { $0[0].unsqueezed(dim: 0).permuted(0, 2, 1, 3).squeezed(dim: 0) }
    }

    func testViewsShareStorage() {
        let x = randomTensor([2, 3, 8])
        XCTAssertTrue(x.slice(dim: 2, start: 1, end: 7, step: 2).storage === x.storage)
        XCTAssertTrue(x.unsqueezed(dim: 1).storage === x.storage)
        XCTAssertTrue(x.unsqueezed(dim: -1).squeezed(dim: 3).storage === x.storage)
        XCTAssertEqual(x.unsqueezed(dim: -1).shape, [2, 3, 8, 1])
        XCTAssertEqual(x.chunk(3, dim: 2).map { $0.shape[2] }, [3, 3, 2])
        XCTAssertEqual(x.slice(dim: -1, start: -3).values, x.slice(dim: 2, start: 5, end: 8).values)
    }
}

final class LossTests: XCTestCase {
    func testLosses() throws {
        try checkOp("cosine", inputs: 2) { NN.cosineSimilarity($0[0], $0[1], dim: 1) }
        try checkOp("cosine_bcast", inputs: 2) { NN.cosineSimilarity($0[0], $0[1], dim: -1, eps: 1e-6) }
        // Not differentiable at the zero vector, so no finite-difference check there.
        try checkOp("cosine_zero", inputs: 2, gradCheck: false) { NN.cosineSimilarity($0[0], $0[1], dim: 1) }
        try checkOp("l1", inputs: 2, fdEps: 1e-3) { NN.l1Loss($0[0], $0[1]) }
        try checkOp("mse", inputs: 2) { NN.mseLoss($0[0], $0[1]) }
    }
}

/// matmul over every operand layout cblas can take directly, against a plain triple loop.
final class MatmulLayoutTests: XCTestCase {
    func naive(_ a: Tensor, _ b: Tensor) -> Tensor {
        let batch = Broadcast.shape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)))
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        let ae = a.expanded(to: batch + [m, k]).contiguous().values, be = b.expanded(to: batch + [k, n]).contiguous().values
        let nb = batch.reduce(1, *)
        var out = [Float](repeating: 0, count: nb * m * n)
        for i in 0..<nb { for r in 0..<m { for c in 0..<n {
            var s: Float = 0
            for j in 0..<k { s += ae[i * m * k + r * k + j] * be[i * k * n + j * n + c] }
            out[i * m * n + r * n + c] = s
        } } }
        return Tensor(shape: batch + [m, n], values: out)
    }

    func testLayouts() {
        let cases: [(Tensor, Tensor)] = [
            (randomTensor([5, 3], seed: 1), randomTensor([3, 4], seed: 2)),
            (randomTensor([3, 5], seed: 1).transposedLastTwo, randomTensor([4, 3], seed: 2).transposedLastTwo),
            (randomTensor([2, 1, 3], seed: 3), randomTensor([3, 4], seed: 4)),               // m = 1, tall path
            (randomTensor([2, 3, 5, 3], seed: 5), randomTensor([3, 6], seed: 6)),            // tall path
            (randomTensor([2, 3, 3, 5], seed: 5).transposedLastTwo, randomTensor([6, 3], seed: 6).transposedLastTwo),
            (randomTensor([4, 7], seed: 7).narrow(1..<3).reshaped([2, 7]), randomTensor([7, 1], seed: 8)), // n = 1
            (randomTensor([1, 4], seed: 9), randomTensor([3, 4, 2], seed: 10)),              // a broadcast over b's batch
            (randomTensor([2, 6, 4], seed: 11).slice(dim: 1, start: 0, end: 6, step: 2), randomTensor([2, 4, 3], seed: 12)), // row stride 8
            (randomTensor([3, 4], seed: 13).expanded(to: [2, 3, 4]), randomTensor([2, 4, 2], seed: 14)), // zero batch stride
        ]
        for (i, (a, b)) in cases.enumerated() {
            assertClose(a.matmul(b), naive(a, b), tol: 1e-5, "layout case \(i)")
        }
        // 1-D operands are promoted and the added dims removed, as in torch.matmul.
        let v = Tensor(shape: [3], values: [1, 2, 3]), m = randomTensor([3, 2], seed: 15)
        XCTAssertEqual(v.matmul(v).shape, [])
        XCTAssertEqual(v.matmul(v).item(), 14)
        XCTAssertEqual(v.matmul(m).shape, [2])
        assertClose(v.matmul(m), naive(v.reshaped([1, 3]), m).reshaped([2]), tol: 1e-6)
    }
}

/// The one-pass residual add against the separate ops it replaces (which also run when
/// a tape records): channel-padded partner, clamps and per-channel PReLU, odd plane sizes.
final class ResidualAddTests: XCTestCase {
    func testOnePassMatchesSeparateOps() {
        let a = randomTensor([2, 6, 5, 7], seed: 3), b = randomTensor([2, 4, 5, 7], seed: 4)
        let slopes = randomTensor([6], seed: 5, scale: 0.3)
        let bPadded = Tensor.concat([b, Tensor(zeros: [2, 2, 5, 7])], dim: 1)
        let same = randomTensor([2, 6, 5, 7], seed: 6)
        let cases: [(Tensor, NN.AddActivation, Tensor)] = [
            (same, .clamp(.none), a + same),
            (same, .clamp(.relu), (a + same).relu()),
            (b, .clamp(.relu6), (a + bPadded).relu6()),
            (b, .prelu(slopes), NN.prelu(a + bPadded, weight: slopes)),
            (same, .prelu(slopes), NN.prelu(a + same, weight: slopes)),
        ]
        for (k, (other, act, expected)) in cases.enumerated() {
            let y = NN.residualAdd(a, other, act)
            XCTAssertNil(y.gradFn)
            XCTAssertEqual(y.values, expected.values, "case \(k)")
        }
        // With a tape: the separate ops, so gradients reach both operands and the slopes.
        let x = a.copy(), s = slopes.copy()
        x.requiresGrad = true; s.requiresGrad = true
        let y = NN.residualAdd(x, b, .prelu(s))
        XCTAssertNotNil(y.gradFn)
        XCTAssertEqual(y.values, NN.prelu(a + bPadded, weight: slopes).values)
        y.sum().backward()
        XCTAssertNotNil(x.grad); XCTAssertNotNil(s.grad)
    }
}

/// DEPTH_TO_SPACE as one interleaving pass, against the reshape–permute view it replaces.
final class DepthToSpaceTests: XCTestCase {
    func testMatchesPermutedViewForwardAndBackward() {
        for (shape, b) in [([2, 12, 3, 5], 2), ([1, 18, 4, 3], 3), ([1, 4, 7, 9], 1)] {
            let x = randomTensor(shape, seed: UInt64(shape[1]))
            let (n, c, h, w) = (shape[0], shape[1] / (b * b), shape[2], shape[3])
            func viaView(_ t: Tensor) -> Tensor {
                t.reshaped([n, b, b, c, h, w]).permuted(0, 3, 4, 1, 5, 2).contiguous().reshaped([n, c, h * b, w * b])
            }
            XCTAssertEqual(NN.depthToSpace(x, block: b).values, viaView(x).values, "block \(b) forward")
            let seed = randomTensor([n, c, h * b, w * b], seed: 99)
            let (_, g1) = vectorJacobianProduct(at: x, seed: seed) { NN.depthToSpace($0, block: b) }
            let (_, g2) = vectorJacobianProduct(at: x, seed: seed, viaView)
            XCTAssertEqual(g1.values, g2.values, "block \(b) backward")
        }
    }
}

/// Fast paths of elementwise ops and pooling that the embedded networks hit, against plain loops.
final class BroadcastFastPathTests: XCTestCase {
    /// A [N, C, 1, 1] operand on either side of each op (a squeeze-and-excitation scale).
    func testPerChannelOperandOnEitherSide() {
        let x = randomTensor([2, 3, 5, 7], seed: 11), s = randomTensor([2, 3, 1, 1], seed: 12) + 3
        let xv = x.values, sv = s.values
        let ops: [(String, (Tensor, Tensor) -> Tensor, (Float, Float) -> Float)] = [
            ("add", { $0 + $1 }, { $0 + $1 }), ("sub", { $0 - $1 }, { $0 - $1 }),
            ("mul", { $0 * $1 }, { $0 * $1 }), ("div", { $0 / $1 }, { $0 / $1 }),
        ]
        for (name, f, g) in ops {
            let right = f(x, s).values, left = f(s, x).values
            for i in 0..<xv.count {
                let c = i / 35
                XCTAssertEqual(right[i], g(xv[i], sv[c]), "\(name) x∘s at \(i)")
                XCTAssertEqual(left[i], g(sv[c], xv[i]), "\(name) s∘x at \(i)")
            }
        }
        // A lower-rank operand broadcast from the right: [3, 1, 1] against [2, 3, 5, 7].
        let t = randomTensor([3, 1, 1], seed: 13)
        let y = (x * t).values, tv = t.values
        for i in 0..<xv.count { XCTAssertEqual(y[i], xv[i] * tv[(i / 35) % 3]) }
    }

    /// A window as wide as the plane (a global average pool) against a double-precision mean.
    func testGlobalAveragePool() {
        let x = randomTensor([1, 4, 9, 40], seed: 14)
        let y = NN.avgPool2d(x, kernel: NN.Pair(9, 40)).values, xv = x.values
        for c in 0..<4 {
            let mean = xv[(c * 360)..<((c + 1) * 360)].reduce(0.0) { $0 + Double($1) } / 360
            XCTAssertEqual(Double(y[c]), mean, accuracy: 1e-6)
        }
    }
}

/// Dense copies of strided views (permutes between NCHW and NHWC with size-1 dimensions,
/// broadcast views with zero strides, offset slices) against index arithmetic.
final class StridedCopyTests: XCTestCase {
    func reference(_ t: Tensor) -> [Float] {
        let all = t.storage.pointer
        var out: [Float] = [], idx = [Int](repeating: 0, count: t.rank)
        for _ in 0..<t.count {
            var o = t.offset
            for d in 0..<t.rank { o += idx[d] * t.strides[d] }
            out.append(all[o])
            var d = t.rank - 1
            while d >= 0 { idx[d] += 1; if idx[d] < t.shape[d] { break }; idx[d] = 0; d -= 1 }
        }
        return out
    }

    func testViewsCopyAsIndexedElementwise() {
        let x = randomTensor([2, 3, 5, 7], seed: 21)
        let plane = randomTensor([1, 1, 6, 9], seed: 22)
        let views: [(String, Tensor)] = [
            ("NCHW→NHWC", x.permuted(0, 2, 3, 1)),
            ("NHWC→NCHW", x.permuted(0, 2, 3, 1).contiguous().permuted(0, 3, 1, 2)),
            ("one channel to NHWC", plane.permuted(0, 2, 3, 1)),
            ("transposed plane", plane.permuted(0, 1, 3, 2)),
            ("broadcast", randomTensor([3, 1, 1], seed: 23).expanded(to: [2, 3, 5, 7])),
            ("slice of a permute", x.narrow(1..<2).permuted(1, 0, 3, 2)),
            ("5-D", randomTensor([2, 2, 3, 2, 4], seed: 24).permuted(4, 2, 0, 3, 1)),
        ]
        for (name, v) in views {
            XCTAssertEqual(v.contiguous().values, reference(v), name)
        }
    }
}
