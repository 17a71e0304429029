/// Pooling over the H and W of NCHW tensors. Every plane is independent, so forward and
/// backward are split across cores by plane and backward scatters need no locks.
extension NN {
    /// Max pooling as `F.max_pool2d` (floor mode). Padding counts as -∞. Backward routes each
    /// output's gradient to the first position of its window's maximum, as PyTorch does.
    public static func maxPool2d(_ x: Tensor, kernel: Pair, stride: Pair? = nil, padding: Pair = 0,
                                 dilation: Pair = 1) -> Tensor {
        let s = stride ?? kernel
        precondition(x.rank == 4, "max_pool2d: input \(x.shape) must be 4-D")
        precondition(kernel.h > 0 && kernel.w > 0 && s.h > 0 && s.w > 0 && dilation.h > 0 && dilation.w > 0,
                     "max_pool2d: kernel \(kernel), stride \(s) and dilation \(dilation) must be positive")
        precondition(padding.h >= 0 && padding.w >= 0 && padding.h * 2 <= kernel.h && padding.w * 2 <= kernel.w,
                     "max_pool2d: padding \(padding) must be at most half the kernel \(kernel)")
        let xc = x.contiguous()
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + 2 * padding.h - dilation.h * (kernel.h - 1) - 1) / s.h + 1
        let ow = (w + 2 * padding.w - dilation.w * (kernel.w - 1) - 1) / s.w + 1
        precondition(oh > 0 && ow > 0, "max_pool2d: kernel \(kernel) is larger than the padded input \(h)×\(w)")
        let y = Tensor(uninitialized: [n, c, oh, ow])
        if kernel == Pair(2, 2) && s == Pair(2, 2) && padding == Pair(0, 0) && dilation == Pair(1, 1) && !Autograd.shouldRecord(xc) {
            // Inference of the common 2×2/2 pool: no argmax to keep, no bounds to test.
            let src = xc.data, dst = y.data
            @inline(__always) func larger(_ a: Float, _ b: Float) -> Float { b > a || b.isNaN ? b : a }
            Parallel.forEach(n * c * oh, minChunk: max(1, 8192 / (4 * ow))) { rows in
                for r in rows {
                    let pl = r / oh, i = r % oh
                    let a = src + pl * h * w + 2 * i * w, b = a + w, d = dst + r * ow
                    for j in 0..<ow { d[j] = larger(larger(a[2 * j], a[2 * j + 1]), larger(b[2 * j], b[2 * j + 1])) }
                }
            }
            return y
        }
        // Flat in-plane index of each output's maximum, kept for backward.
        let argmax = UnsafeMutablePointer<Int32>.allocate(capacity: max(y.count, 1))
        let src = xc.data, dst = y.data
        Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
            for pl in planes {
                let xp = src + pl * h * w, yp = dst + pl * oh * ow, ap = argmax + pl * oh * ow
                for i in 0..<oh {
                    for j in 0..<ow {
                        var best = -Float.infinity, at = -1
                        for ki in 0..<kernel.h {
                            let ih = i * s.h - padding.h + ki * dilation.h
                            if ih < 0 || ih >= h { continue }
                            for kj in 0..<kernel.w {
                                let iw = j * s.w - padding.w + kj * dilation.w
                                if iw < 0 || iw >= w { continue }
                                let v = xp[ih * w + iw]
                                if v > best || v.isNaN || at < 0 { best = v; at = ih * w + iw }
                            }
                        }
                        yp[i * ow + j] = best
                        ap[i * ow + j] = Int32(at)
                    }
                }
            }
        }
        let indices = IndexBuffer(argmax)
        if Autograd.shouldRecord(xc) {
            y.record("max_pool2d", [xc]) { g in
                let gy = g.contiguous()
                let gx = Tensor(zeros: [n, c, h, w])
                let gp = gy.data, gxp = gx.data, ap = indices.pointer
                Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
                    for pl in planes {
                        let d = gxp + pl * h * w, s = gp + pl * oh * ow, a = ap + pl * oh * ow
                        for i in 0..<(oh * ow) { d[Int(a[i])] += s[i] }
                    }
                }
                return [gx]
            }
        }
        return y
    }

    /// Average pooling as `F.avg_pool2d` (floor mode). With `countIncludePad` (PyTorch's
    /// default) the divisor counts padded cells, otherwise only cells inside the input.
    public static func avgPool2d(_ x: Tensor, kernel: Pair, stride: Pair? = nil, padding: Pair = 0,
                                 countIncludePad: Bool = true) -> Tensor {
        let s = stride ?? kernel
        precondition(x.rank == 4, "avg_pool2d: input \(x.shape) must be 4-D")
        precondition(kernel.h > 0 && kernel.w > 0 && s.h > 0 && s.w > 0, "avg_pool2d: kernel \(kernel) and stride \(s) must be positive")
        precondition(padding.h >= 0 && padding.w >= 0 && padding.h * 2 <= kernel.h && padding.w * 2 <= kernel.w,
                     "avg_pool2d: padding \(padding) must be at most half the kernel \(kernel)")
        let (h, w) = (x.shape[2], x.shape[3])
        let oh = (h + 2 * padding.h - kernel.h) / s.h + 1
        let ow = (w + 2 * padding.w - kernel.w) / s.w + 1
        precondition(oh > 0 && ow > 0, "avg_pool2d: kernel \(kernel) is larger than the padded input \(h)×\(w)")
        // PyTorch's divisor is separable: (rows in window) × (columns in window).
        func windows(_ out: Int, _ size: Int, _ k: Int, _ st: Int, _ pad: Int) -> [BoxWindow] {
            (0..<out).map { o in
                let start = o * st - pad
                let end = min(start + k, size + pad)
                let padded = end - start
                let lo = max(start, 0), hi = min(end, size)
                return BoxWindow(range: lo..<hi, scale: 1 / Float(countIncludePad ? padded : hi - lo))
            }
        }
        return boxPool(x, rows: windows(oh, h, kernel.h, s.h, padding.h), cols: windows(ow, w, kernel.w, s.w, padding.w), name: "avg_pool2d")
    }

    /// Adaptive average pooling as `F.adaptive_avg_pool2d`: output cell i covers
    /// [⌊i·In/Out⌋, ⌈(i+1)·In/Out⌉).
    public static func adaptiveAvgPool2d(_ x: Tensor, outputSize: Pair) -> Tensor {
        precondition(x.rank == 4, "adaptive_avg_pool2d: input \(x.shape) must be 4-D")
        precondition(outputSize.h > 0 && outputSize.w > 0, "adaptive_avg_pool2d: output size \(outputSize) must be positive")
        func windows(_ out: Int, _ size: Int) -> [BoxWindow] {
            (0..<out).map { o in
                let lo = o * size / out, hi = ((o + 1) * size + out - 1) / out
                return BoxWindow(range: lo..<hi, scale: 1 / Float(hi - lo))
            }
        }
        return boxPool(x, rows: windows(outputSize.h, x.shape[2]), cols: windows(outputSize.w, x.shape[3]), name: "adaptive_avg_pool2d")
    }

    /// Mean over H and W, keeping them as 1×1.
    public static func globalAvgPool2d(_ x: Tensor) -> Tensor {
        adaptiveAvgPool2d(x, outputSize: 1)
    }
}

/// Argmax indices owned by a backward closure, freed with it.
final class IndexBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>
    init(_ p: UnsafeMutablePointer<Int32>) { pointer = p }
    deinit { pointer.deallocate() }
}

/// One output cell's input span along one axis and its share of the divisor.
struct BoxWindow {
    let range: Range<Int>
    let scale: Float
}

/// y[i, j] = scaleᵢ·scaleⱼ·Σ x over rows[i] × cols[j]: avg, adaptive-avg and area resize.
func boxPool(_ x: Tensor, rows: [BoxWindow], cols: [BoxWindow], name: String) -> Tensor {
    let xc = x.contiguous()
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let oh = rows.count, ow = cols.count
    let y = Tensor(uninitialized: [n, c, oh, ow])
    let src = xc.data, dst = y.data
    Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
        for pl in planes {
            let xp = src + pl * h * w, yp = dst + pl * oh * ow
            for i in 0..<oh {
                let r = rows[i]
                for j in 0..<ow {
                    let cw = cols[j]
                    var acc: Float = 0
                    if cw.range.count >= 32 {
                        // Wide windows (a global pool): eight-lane partial sums, not one long chain.
                        var v = F8()
                        for ih in r.range {
                            let row = xp + ih * w
                            var iw = cw.range.lowerBound
                            while iw + 8 <= cw.range.upperBound { v += load8(row + iw); iw += 8 }
                            while iw < cw.range.upperBound { acc += row[iw]; iw += 1 }
                        }
                        acc += v.sum()
                    } else {
                        for ih in r.range { for iw in cw.range { acc += xp[ih * w + iw] } }
                    }
                    yp[i * ow + j] = acc * r.scale * cw.scale
                }
            }
        }
    }
    if Autograd.shouldRecord(xc) {
        y.record(name, [xc]) { g in
            let gy = g.contiguous()
            let gx = Tensor(zeros: [n, c, h, w])
            let gp = gy.data, gxp = gx.data
            Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
                for pl in planes {
                    let d = gxp + pl * h * w, s = gp + pl * oh * ow
                    for i in 0..<oh {
                        let r = rows[i]
                        for j in 0..<ow {
                            let cw = cols[j]
                            let v = s[i * ow + j] * r.scale * cw.scale
                            for ih in r.range { for iw in cw.range { d[ih * w + iw] += v } }
                        }
                    }
                }
            }
            return [gx]
        }
    }
    return y
}
