extension NN {
    /// TFLite's DEPTH_TO_SPACE (ONNX's "DCR" order) on NCHW: x [N, b·b·C, H, W] → y [N, C, H·b, W·b]
    /// with y[n, c, h·b + i, w·b + j] = x[n, (i·b + j)·C + c, h, w]. A pure permutation, done
    /// as one pass of row interleaving instead of a generic strided copy of a 6-D view.
    public static func depthToSpace(_ x: Tensor, block b: Int) -> Tensor {
        precondition(x.rank == 4 && b > 0 && x.shape[1] % (b * b) == 0,
                     "depthToSpace: block \(b) for input \(x.shape)")
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let c = cin / (b * b)
        let xc = x.contiguous()
        let y = Tensor(uninitialized: [n, c, h * b, w * b])
        blockShuffle(n: n, c: c, h: h, w: w, b: b, xc.data, y.data, toSpace: true)
        if Autograd.shouldRecord(xc) {
            y.record("depth_to_space", [xc]) { g in
                let gc = g.contiguous(), gx = Tensor(uninitialized: [n, cin, h, w])
                blockShuffle(n: n, c: c, h: h, w: w, b: b, gx.data, UnsafeMutablePointer(mutating: gc.data), toSpace: false)
                return [gx]
            }
        }
        return y
    }

    /// Moves values between the depth layout `d` [N, b·b·C, H, W] and the space layout
    /// `s` [N, C, H·b, W·b], in the direction asked; the backward pass is the other direction.
    static func blockShuffle(n: Int, c: Int, h: Int, w: Int, b: Int, _ d: UnsafeMutablePointer<Float>,
                             _ s: UnsafeMutablePointer<Float>, toSpace: Bool) {
        let plane = h * w, outW = w * b
        // One job is one output row: (sample, channel, row h, sub-row i).
        Parallel.forEach(n * c * h * b, minChunk: max(1, 16384 / max(outW, 1))) { r in
            for job in r {
                let i = job % b, hh = (job / b) % h, cc = (job / (b * h)) % c, nn = job / (b * h * c)
                let row = s + ((nn * c + cc) * h * b + hh * b + i) * outW
                for j in 0..<b {
                    let src = d + ((nn * b * b + i * b + j) * c + cc) * plane + hh * w
                    if toSpace {
                        for k in 0..<w { row[k * b + j] = src[k] }
                    } else {
                        for k in 0..<w { src[k] = row[k * b + j] }
                    }
                }
            }
        }
    }
}
