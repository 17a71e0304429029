/// Scaled dot-product attention, one GEMM pair per (batch, head).
///
/// q [..., T, D], k [..., S, D], v [..., S, Dv] with equal leading dims (e.g. [B, H]).
/// Operands may be transposed views (guided-diffusion keeps q, k, v as [.., D, T]): they go
/// to cblas as transposes without copies. The T×S score matrix is the only large buffer:
/// inference reuses one per head; training keeps the probabilities for backward while they
/// fit `attentionProbabilityBudget`, and beyond it recomputes each head's in backward (one
/// more GEMM and softmax per head, bit-identical probabilities).
///
/// `keyBias` [S], when given, is added to every row of the scaled scores before the softmax
/// (a per-key log-weight: key j then counts exp(keyBias[j]) times). It is a constant: the
/// gradients of q, k and v follow the same formulas, and nothing flows into it.
extension NN {
    /// Most probability elements (floats) one attention op keeps for backward: 8 Mi floats =
    /// 32 MiB, e.g. 8 heads at T = 1024. Larger batches recompute instead.
    nonisolated(unsafe) public static var attentionProbabilityBudget = 8 << 20

    public static func scaledDotProductAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float? = nil,
                                                 keyBias: [Float]? = nil) -> Tensor {
        precondition(q.rank >= 2 && k.rank == q.rank && v.rank == q.rank, "attention: q \(q.shape), k \(k.shape), v \(v.shape)")
        let lead = Array(q.shape.dropLast(2))
        precondition(Array(k.shape.dropLast(2)) == lead && Array(v.shape.dropLast(2)) == lead,
                     "attention: leading dims differ, q \(q.shape), k \(k.shape), v \(v.shape)")
        let t = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
        let s = k.shape[k.rank - 2], dv = v.shape[v.rank - 1]
        precondition(k.shape[k.rank - 1] == d && v.shape[v.rank - 2] == s,
                     "attention: q \(q.shape), k \(k.shape), v \(v.shape) do not fit")
        precondition(keyBias.map { $0.count == s } ?? true, "attention: keyBias has \(keyBias?.count ?? 0) values for \(s) keys")
        let alpha = scale ?? 1 / Float(d).squareRoot()
        let bias = keyBias.map { Tensor(shape: [s], values: $0) }
        let batches = Tensor.product(lead)
        let (qq, lq) = q.gemmOperand(), (kk, lk) = k.gemmOperand(), (vv, lv) = v.gemmOperand()
        let oq = qq.batchOffsets(lead), ok = kk.batchOffsets(lead), ov = vv.batchOffsets(lead)
        let pq = qq.storage.pointer, pk = kk.storage.pointer, pv = vv.storage.pointer

        let recording = Autograd.shouldRecord([q, k, v])
        let keep = recording && batches * t * s <= attentionProbabilityBudget
        let probs = Tensor(uninitialized: keep ? lead + [t, s] : [t, s])
        let out = Tensor(uninitialized: lead + [t, dv])
        for i in 0..<batches {
            let p = probs.data + (keep ? i * t * s : 0)
            sgemm(lq.trans, !lk.trans, t, s, d, alpha, pq + oq[i], lq.ld, pk + ok[i], lk.ld, 0, p, s)
            if let bias { addRowBias(p, rows: t, bias.data, n: s) }
            SoftmaxKernel.rows(p, rows: t, n: s, log: false)
            sgemm(false, lv.trans, t, dv, s, 1, p, s, pv + ov[i], lv.ld, 0, out.data + i * t * dv, dv)
        }
        if recording {
            let pr = probs.detached(), o = out.detached()
            let qs = qq.detached(), ks = kk.detached(), vs = vv.detached()
            out.record("attention", [q, k, v]) { g in
                let gc = g.contiguous()
                let gq = Tensor(uninitialized: lead + [t, d])
                let gk = Tensor(uninitialized: lead + [s, d])
                let gv = Tensor(uninitialized: lead + [s, dv])
                let dp = Tensor(uninitialized: [t, s])
                let rowDot = Tensor(uninitialized: [t])
                let pq = qs.storage.pointer, pk = ks.storage.pointer, pv = vs.storage.pointer
                for i in 0..<batches {
                    let go = gc.data + i * t * dv, oo = o.data + i * t * dv
                    let p: UnsafeMutablePointer<Float>
                    if keep {
                        p = pr.data + i * t * s
                    } else {
                        p = pr.data
                        sgemm(lq.trans, !lk.trans, t, s, d, alpha, pq + oq[i], lq.ld, pk + ok[i], lk.ld, 0, p, s)
                        if let bias { addRowBias(p, rows: t, bias.data, n: s) }
                        SoftmaxKernel.rows(p, rows: t, n: s, log: false)
                    }
                    // dP = dO·Vᵀ and dV = Pᵀ·dO
                    sgemm(false, !lv.trans, t, s, dv, 1, go, dv, pv + ov[i], lv.ld, 0, dp.data, s)
                    sgemm(true, false, s, dv, t, 1, p, s, go, dv, 0, gv.data + i * s * dv, dv)
                    // dS = P ⊙ (dP − Σ_j dP·P), and Σ_j dP·P = Σ_c dO·O per row.
                    let rd = rowDot.data
                    Parallel.forEach(t, minChunk: 64) { r in
                        for row in r { rd[row] = Float(Loop.dot(go + row * dv, oo + row * dv, dv)) }
                    }
                    let dpp = dp.data
                    Parallel.forEach(t, minChunk: Swift.max(1, 4096 / Swift.max(s, 1))) { r in
                        for row in r {
                            let pr = p + row * s, dr = dpp + row * s
                            let m = F8(repeating: rd[row])
                            var j = 0
                            while j + 8 <= s { store8(load8(pr + j) * (load8(dr + j) - m), dr + j); j += 8 }
                            while j < s { dr[j] = pr[j] * (dr[j] - rd[row]); j += 1 }
                        }
                    }
                    // dQ = α·dS·K and dK = α·dSᵀ·Q
                    sgemm(false, lk.trans, t, d, s, alpha, dp.data, s, pk + ok[i], lk.ld, 0, gq.data + i * t * d, d)
                    sgemm(true, lq.trans, s, d, t, alpha, dp.data, s, pq + oq[i], lq.ld, 0, gk.data + i * s * d, d)
                }
                return [gq, gk, gv]
            }
        }
        return out
    }

    /// rows × n scores += bias [n] on every row.
    static func addRowBias(_ p: UnsafeMutablePointer<Float>, rows: Int, _ bias: UnsafeMutablePointer<Float>, n: Int) {
        Parallel.forEach(rows, minChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
            for row in r {
                let pr = p + row * n
                var j = 0
                while j + 8 <= n { store8(load8(pr + j) + load8(bias + j), pr + j); j += 8 }
                while j < n { pr[j] += bias[j]; j += 1 }
            }
        }
    }
}

extension Tensor {
    /// Storage offset of each matrix in a tensor whose leading dims are `lead`.
    func batchOffsets(_ lead: [Int]) -> [Int] {
        let n = Tensor.product(lead)
        var offs = [Int](repeating: offset, count: n)
        for i in 0..<n {
            var rem = i, o = offset
            for dd in stride(from: lead.count - 1, through: 0, by: -1) {
                o += (rem % lead[dd]) * strides[dd]; rem /= lead[dd]
            }
            offs[i] = o
        }
        return offs
    }
}
