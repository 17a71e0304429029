import XCTest
@testable import GuiseTensor
import GuiseTestSupport

/// Optimiser trajectories against torch.optim on Σ c ⊙ (p − t)², step by step, to 1e-6.
final class OptimizerTests: XCTestCase {
    func trajectory(_ name: String, file: StaticString = #filePath, line: UInt = #line,
                    _ make: ([Tensor]) -> Optimizer) throws {
        let t = try (0..<2).map { try coreOps.tensor("opt.t\($0)") }
        let c = try (0..<2).map { try coreOps.tensor("opt.c\($0)") }
        let params = try (0..<2).map { i -> Tensor in
            let p = try coreOps.tensor("opt.p\(i)").copy()
            p.requiresGrad = true
            return p
        }
        let opt = make(params)
        let ema = EMA(params, decay: 0.9)
        for step in 0..<5 {
            opt.zeroGrad()
            var loss = (c[0] * (params[0] - t[0]).squared()).sum()
            if !(name.hasSuffix("_skip") && step % 2 == 1) {
                loss = loss + (c[1] * (params[1] - t[1]).squared()).sum()
            }
            loss.backward()
            opt.step()
            ema.update(from: params)
            for (i, p) in params.enumerated() {
                assertClose(p.detached(), try coreOps.tensor("opt.\(name).step\(step).p\(i)"), tol: 1e-6,
                            "\(name) step \(step) parameter \(i)", file: file, line: line)
            }
        }
        for i in 0..<2 {
            assertClose(ema.shadow[i], try coreOps.tensor("opt.\(name).ema.p\(i)"), tol: 1e-6, "\(name) EMA \(i)", file: file, line: line)
            if let adam = opt as? Adam {
                assertClose(adam.firstMoments[i], try coreOps.tensor("opt.\(name).exp_avg.p\(i)"), tol: 1e-6, "exp_avg", file: file, line: line)
                assertClose(adam.secondMoments[i], try coreOps.tensor("opt.\(name).exp_avg_sq.p\(i)"), tol: 1e-6, "exp_avg_sq", file: file, line: line)
            }
            if let sgd = opt as? SGD, let buf = sgd.momentumBuffers[i] {
                assertClose(buf, try coreOps.tensor("opt.\(name).momentum_buffer.p\(i)"), tol: 1e-6, "momentum", file: file, line: line)
            }
        }
    }

    func testSGD() throws {
        try trajectory("sgd") { SGD($0, lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01) }
        try trajectory("sgd_nesterov") { SGD($0, lr: 0.05, momentum: 0.9, nesterov: true) }
    }

    func testAdam() throws {
        try trajectory("adam") { Adam($0, lr: 0.05) }
        try trajectory("adam_l2") { Adam($0, lr: 0.05, betas: (0.8, 0.99), weightDecay: 0.1) }
        try trajectory("adamw") { Adam.adamW($0, lr: 0.05, weightDecay: 0.1) }
        try trajectory("adamw_skip") { Adam.adamW($0, lr: 0.05, betas: (0.3, 0.9), weightDecay: 0.1) }
    }

    func testEMACopiesIntoParameters() {
        let p = Tensor(shape: [3], values: [1, 2, 3])
        let ema = EMA([p], decay: 0.5)
        p.data.update(repeating: 5, count: 3)
        ema.update(from: [p])
        let target = Tensor(zeros: [3])
        ema.copy(into: [target])
        XCTAssertEqual(target.values, [3, 3.5, 4])
        XCTAssertEqual(p.values, [5, 5, 5])
    }
}

/// Inference records nothing, and a repeated computation stops allocating.
final class MemoryTests: XCTestCase {
    struct Block {
        let gnW = randomTensor([8], seed: 3), gnB = randomTensor([8], seed: 4)
        let w = randomTensor([8, 8], seed: 5, scale: 0.3), b = randomTensor([8], seed: 6)
        let prelu = Tensor(shape: [1], values: [0.2])

        var parameters: [Tensor] { [gnW, gnB, w, b, prelu] }

        /// Returns every intermediate so tests can inspect them.
        func forward(_ x: Tensor) -> [Tensor] {
            let h1 = NN.groupNorm(x, groups: 2, weight: gnW, bias: gnB)
            let h2 = h1.silu()
            let h3 = h2.reshaped([1, 8, 16]).permuted(0, 2, 1)
            let h4 = NN.linear(h3, weight: w, bias: b)
            let qkv = h4.reshaped([1, 16, 2, 4]).permuted(0, 2, 1, 3)
            let h5 = NN.scaledDotProductAttention(qkv, qkv, qkv)
            let h6 = NN.layerNorm(h5, normalizedShape: [4]).gelu()
            let h7 = Tensor.concat([h6, h6.slice(dim: 2, start: 0, end: 8, step: 2)], dim: 2).softmax(dim: -1)
            let h8 = NN.prelu(h7.reshaped([1, 2, 24, 4]), weight: prelu).mean(dims: [1, 2])
            let loss = NN.mseLoss(h8, Tensor(zeros: [1, 4])) + NN.cosineSimilarity(h8, h8 + 1, dim: 1).sum()
            return [h1, h2, h3, h4, qkv, h5, h6, h7, h8, loss]
        }
    }

    func testInferenceAllocatesNoTape() {
        let block = Block(), x = randomTensor([1, 8, 4, 4], seed: 7)
        // Parameters that do not require gradients: nothing is recorded.
        for (i, t) in block.forward(x).enumerated() { XCTAssertNil(t.gradFn, "intermediate \(i) has a gradFn") }
        // Parameters that do, inside noGrad: still nothing.
        for p in block.parameters { p.requiresGrad = true }
        Autograd.noGrad {
            for (i, t) in block.forward(x).enumerated() { XCTAssertNil(t.gradFn, "intermediate \(i) under noGrad has a gradFn") }
        }
        // And the same graph outside noGrad does record, so the check above can fail.
        XCTAssertNotNil(block.forward(x).last?.gradFn)
    }

    func testRepeatedComputationReusesBuffers() {
        // Idle buffers left by earlier tests can fill the pool to its cap, and then a returned
        // buffer is freed instead of kept: start from an empty pool.
        BufferPool.shared.drain()
        let block = Block(), x = randomTensor([1, 8, 4, 4], seed: 7)
        var counts: [Int] = []
        for _ in 0..<4 {
            _ = block.forward(x)
            counts.append(BufferPool.shared.allocations)
        }
        XCTAssertEqual(Set(counts.dropFirst()).count, 1, "inference allocations kept growing: \(counts)")

        for p in block.parameters { p.requiresGrad = true }
        counts = []
        for _ in 0..<4 {
            for p in block.parameters { p.grad = nil }
            block.forward(x).last!.backward()
            counts.append(BufferPool.shared.allocations)
        }
        XCTAssertEqual(Set(counts.dropFirst()).count, 1, "training-step allocations kept growing: \(counts)")
    }
}

final class BufferPoolTests: XCTestCase {
    func testTakesAnIdleBufferUpToTwiceTheSize() {
        let pool = BufferPool()
        let big = 10 * BufferPool.looseFrom
        let (a, am) = pool.take(big)
        XCTAssertEqual(am, big)
        pool.give(a, capacity: am)
        let (b, bm) = pool.take(6 * BufferPool.looseFrom)
        XCTAssertEqual(b, a, "a request for 6/10 of an idle buffer should reuse it")
        XCTAssertEqual(bm, big)
        pool.give(b, capacity: bm)
        let (c, cm) = pool.take(4 * BufferPool.looseFrom)
        XCTAssertNotEqual(c, a, "a buffer more than twice the request should not be used")
        XCTAssertEqual(cm, 4 * BufferPool.looseFrom)
        XCTAssertEqual(pool.counts.idle, big)
        XCTAssertEqual(pool.allocations, 2)
        XCTAssertEqual(pool.reuses, 1)
        pool.give(c, capacity: cm)
        // Small requests take exact sizes only.
        let (d, dm) = pool.take(100)
        pool.give(d, capacity: dm)
        let (e, em) = pool.take(60)
        XCTAssertNotEqual(e, d)
        XCTAssertEqual(em, 60)
        pool.give(e, capacity: em)
        pool.drain()
        XCTAssertEqual(pool.counts.idle, 0)
    }

    func testIdleMemoryNeverRaisesThePeak() {
        let pool = BufferPool()
        pool.capacity = 0
        let a = pool.take(1000), b = pool.take(1000)
        pool.give(a.0, capacity: a.1)
        pool.give(b.0, capacity: b.1)
        XCTAssertEqual(pool.counts.idle, 2000, "buffers up to the peak are kept")
        // A larger request raises the peak to 3000 live: nothing may stay idle beside it.
        let c = pool.take(3000)
        XCTAssertEqual(pool.counts.idle, 0)
        XCTAssertEqual(pool.counts.peak, 3000)
        pool.give(c.0, capacity: c.1)

        // Random traffic: live + idle stays within max(peak, live + capacity) throughout.
        pool.capacity = 500
        var rng = SystemRandomNumberGenerator()
        var held: [(UnsafeMutablePointer<Float>, Int)] = []
        for _ in 0..<2000 {
            if held.isEmpty || (held.count < 12 && Bool.random(using: &rng)) {
                held.append(pool.take(Int.random(in: 1...1500, using: &rng)))
            } else {
                let (p, m) = held.remove(at: Int.random(in: 0..<held.count, using: &rng))
                pool.give(p, capacity: m)
            }
            let k = pool.counts
            XCTAssertEqual(k.live, held.reduce(0) { $0 + $1.1 })
            XCTAssertLessThanOrEqual(k.live + k.idle, max(k.peak, k.live + pool.capacity))
        }
        for (p, m) in held { pool.give(p, capacity: m) }
        pool.drain()
    }
}
