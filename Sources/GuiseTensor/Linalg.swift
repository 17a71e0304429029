import COpenBLAS

/// How one matrix (the last two dims of a tensor) is laid out for cblas: row-major with a
/// leading dimension, or transposed (a permuted view), so transposes never copy.
struct MatrixLayout {
    let trans: Bool
    let ld: Int

    /// nil when the last two dims are neither row- nor column-dense (then copy first).
    init?(_ t: Tensor) {
        let r = t.rank
        let rows = t.shape[r - 2], cols = t.shape[r - 1]
        let rs = t.strides[r - 2], cs = t.strides[r - 1]
        if (cs == 1 || cols == 1) && (rows == 1 || rs >= max(cols, 1)) {
            trans = false; ld = rows == 1 ? max(cols, 1) : rs
        } else if (rs == 1 || rows == 1) && (cols == 1 || cs >= max(rows, 1)) {
            trans = true; ld = cols == 1 ? max(rows, 1) : cs
        } else {
            return nil
        }
    }
}

/// C[m×n] = alpha·op(A)[m×k]·op(B)[k×n] + beta·C, all row-major.
@inline(__always)
func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
           _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
           _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    pooledGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc)
}

extension Tensor {
    /// A view of self whose last two dims cblas can read directly, copying only when needed.
    func gemmOperand() -> (Tensor, MatrixLayout) {
        if let l = MatrixLayout(self) { return (self, l) }
        let c = Autograd.noGrad { copy() }
        return (c, MatrixLayout(c)!)
    }

    /// Matrix product with PyTorch's matmul rules: 1-D operands are promoted and the added
    /// dim removed again; leading (batch) dims broadcast. Transposed views go to cblas as
    /// transposes, without copies. Differentiable in both operands.
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank >= 1 && other.rank >= 1, "matmul of a scalar")
        if rank == 1 && other.rank == 1 {
            return reshaped([1, shape[0]]).matmul(other.reshaped([other.shape[0], 1])).reshaped([])
        }
        if rank == 1 {
            return reshaped([1, shape[0]]).matmul(other).squeezed(dim: -2)
        }
        if other.rank == 1 {
            return matmul(other.reshaped([other.shape[0], 1])).squeezed(dim: -1)
        }
        let a = self, b = other
        let m = a.shape[rank - 2], k = a.shape[rank - 1]
        let k2 = b.shape[b.rank - 2], n = b.shape[b.rank - 1]
        precondition(k == k2, "matmul: inner dims differ, \(a.shape) × \(b.shape)")
        let batch = Broadcast.shape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)))
        let out = Tensor(uninitialized: batch + [m, n])
        let (aa, la) = a.gemmOperand(), (bb, lb) = b.gemmOperand()
        let batches = Tensor.product(batch)

        // A batch of rows times one shared matrix is a single tall GEMM.
        let bBroadcast = bb.rank == 2 || Broadcast.strides(of: bb, as: batch + [k, n]).dropLast(2).allSatisfy { $0 == 0 }
        if bBroadcast && !la.trans && aa.rank >= 2 && aa.shape.dropLast(2) == batch[...]
            && aa.stridesAreDense(upTo: aa.rank - 1, rowStride: la.ld) {
            sgemm(false, lb.trans, batches * m, n, k, 1, aa.storage.pointer + aa.offset, la.ld,
                  bb.storage.pointer + bb.offset, lb.ld, 0, out.data, n)
        } else {
            let sa = Broadcast.strides(of: aa, as: batch + [m, k]).dropLast(2)
            let sb = Broadcast.strides(of: bb, as: batch + [k, n]).dropLast(2)
            for i in 0..<batches {
                var rem = i, oa = aa.offset, ob = bb.offset
                for d in stride(from: batch.count - 1, through: 0, by: -1) {
                    let idx = rem % batch[d]; rem /= batch[d]
                    oa += idx * sa[sa.startIndex + d]; ob += idx * sb[sb.startIndex + d]
                }
                sgemm(la.trans, lb.trans, m, n, k, 1, aa.storage.pointer + oa, la.ld,
                      bb.storage.pointer + ob, lb.ld, 0, out.data + i * m * n, n)
            }
        }
        if Autograd.shouldRecord(a, b) {
            let ad = a.detached(), bd = b.detached()
            out.record("matmul", [a, b]) { g in
                let ga = a.tracksGradient ? g.matmul(bd.transposedLastTwo).summed(toShape: ad.shape) : nil
                let gb = b.tracksGradient ? ad.transposedLastTwo.matmul(g).summed(toShape: bd.shape) : nil
                return [ga, gb]
            }
        }
        return out
    }

    /// Batched matrix product of [B, m, k] and [B, k, n]; transposed views need no copies.
    public func bmm(_ other: Tensor) -> Tensor {
        precondition(rank == 3 && other.rank == 3 && shape[0] == other.shape[0],
                     "bmm needs [B,m,k] × [B,k,n], got \(shape) × \(other.shape)")
        return matmul(other)
    }

    /// True when dims 0..<upTo-1 step through memory as one run of rows `rowStride` apart.
    func stridesAreDense(upTo last: Int, rowStride: Int) -> Bool {
        var expect = rowStride
        for d in stride(from: last - 1, through: 0, by: -1) {
            if shape[d] != 1 && strides[d] != expect { return false }
            expect *= shape[d]
        }
        return true
    }
}

extension NN {
    /// y = x·Wᵀ + b over the last dim: x [..., in], weight [out, in], bias [out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2 && x.rank >= 1 && x.shape.last == weight.shape[1],
                     "linear: input \(x.shape) with weight \(weight.shape)")
        if let bias { precondition(bias.count == weight.shape[0], "linear: bias \(bias.shape) for weight \(weight.shape)") }
        let inF = weight.shape[1], outF = weight.shape[0]
        let x2 = x.contiguous()
        let rows = x2.count / max(inF, 1)
        let w = weight.contiguous()
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
        let o = out.data
        var beta: Float = 0
        if let bias {
            let bp = bias.contiguous().data
            for r in 0..<rows { (o + r * outF).update(from: bp, count: outF) }
            beta = 1
        }
        sgemm(false, true, rows, outF, inF, 1, x2.data, inF, w.data, inF, beta, o, outF)
        if Autograd.shouldRecord([x2, w, bias]) {
            let xd = x2.detached(), wd = w.detached()
            let needX = x2.tracksGradient, needW = w.tracksGradient
            out.record("linear", [x2, w] + (bias.map { [$0] } ?? [])) { g in
                let gc = g.contiguous()
                var gx: Tensor?, gw: Tensor?
                if needX {
                    let t = Tensor(uninitialized: xd.shape)
                    sgemm(false, false, rows, inF, outF, 1, gc.data, outF, wd.data, inF, 0, t.data, inF)
                    gx = t
                }
                if needW {
                    let t = Tensor(uninitialized: wd.shape)
                    sgemm(true, false, outF, inF, rows, 1, gc.data, outF, xd.data, inF, 0, t.data, inF)
                    gw = t
                }
                var grads: [Tensor?] = [gx, gw]
                if let bias { grads.append(gc.reshaped([rows, outF]).sum(dims: [0]).reshaped(bias.shape)) }
                return grads
            }
        }
        return out
    }
}
