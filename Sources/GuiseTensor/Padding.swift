/// Spatial padding of NCHW tensors, as `F.pad(x, (left, right, top, bottom), mode)`.
extension NN {
    public enum PadMode: Equatable {
        case constant(Float)
        /// Mirror without repeating the edge (PyTorch 'reflect'); each pad must be < the size.
        case reflect
        /// Repeat the edge (PyTorch 'replicate').
        case replicate
    }

    public static func pad(_ x: Tensor, _ p: Padding, mode: PadMode = .constant(0)) -> Tensor {
        precondition(x.rank == 4, "pad: input \(x.shape) must be 4-D")
        precondition(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0, "pad: negative padding \(p)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        if mode == .reflect {
            precondition(p.top < h && p.bottom < h && p.left < w && p.right < w,
                         "pad: reflect padding \(p) must be smaller than the input's \(h)×\(w)")
        }
        if mode == .replicate { precondition(h > 0 && w > 0, "pad: cannot replicate an empty input") }
        let oh = h + p.top + p.bottom, ow = w + p.left + p.right
        // Source index of every output row and column; -1 where a constant goes.
        func sources(_ out: Int, _ size: Int, _ before: Int) -> [Int] {
            (0..<out).map { o in
                var i = o - before
                switch mode {
                case .constant: return i >= 0 && i < size ? i : -1
                case .replicate: return min(max(i, 0), size - 1)
                case .reflect:
                    if i < 0 { i = -i }
                    if i >= size { i = 2 * (size - 1) - i }
                    return i
                }
            }
        }
        let rowSrc = sources(oh, h, p.top), colSrc = sources(ow, w, p.left)
        var fill: Float = 0
        if case .constant(let v) = mode { fill = v }
        let xc = x.contiguous()
        let y = Tensor(uninitialized: [n, c, oh, ow])
        let src = xc.data, dst = y.data
        Parallel.forEach(n * c, minChunk: max(1, 4096 / max(oh * ow, 1))) { planes in
            for pl in planes {
                let xp = src + pl * h * w, yp = dst + pl * oh * ow
                for i in 0..<oh {
                    let d = yp + i * ow, sr = rowSrc[i]
                    if sr < 0 { d.update(repeating: fill, count: ow); continue }
                    let s = xp + sr * w
                    for j in 0..<ow { let sc = colSrc[j]; d[j] = sc < 0 ? fill : s[sc] }
                }
            }
        }
        if Autograd.shouldRecord(xc) {
            y.record("pad", [xc]) { g in
                let gy = g.contiguous()
                let gx = Tensor(zeros: [n, c, h, w])
                let gp = gy.data, gxp = gx.data
                Parallel.forEach(n * c, minChunk: max(1, 4096 / max(oh * ow, 1))) { planes in
                    for pl in planes {
                        let d = gxp + pl * h * w, s = gp + pl * oh * ow
                        for i in 0..<oh {
                            let sr = rowSrc[i]
                            if sr < 0 { continue }
                            let row = d + sr * w, srow = s + i * ow
                            for j in 0..<ow { let sc = colSrc[j]; if sc >= 0 { row[sc] += srow[j] } }
                        }
                    }
                }
                return [gx]
            }
        }
        return y
    }
}
