import GuiseFormats
import GuiseTensor

/// dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) on the engine:
/// a 150×150 RGB face chip (0–255) to a 128-d descriptor; distance < 0.6 means the same person.
/// Differentiable with respect to the chip.
///
/// dlib does not store which tag a skip or add_prev refers to, so the file's tag/skip markers
/// are read with the shape of dlib's residual templates, the only ones this network uses:
///   residual:       tag1, block, add_prev1
///   residual_down:  tag1, block, tag2, skip1, avg_pool, add_prev2
/// i.e. a lone marker is a tag, a pair of markers is (tag2, skip back to tag1), and add_prev
/// adds the latest tag and closes the block.
public final class DlibFaceEncoder {
    public let path: String
    public let chipSize: Int
    /// The most elements any layer's output has for one chip.
    public let largestActivation: Int
    private let layers: [DlibLayer]
    private let mean: Tensor

    public convenience init(path: String) throws {
        try self.init(network: DlibNetwork(path: path), path: path)
    }

    /// `net` as read from `path` (which names it in errors). Every layer's shapes are checked
    /// against the activation it will see, from the input layer through each tag and skip, so a
    /// file whose layers do not fit together fails here, naming the layer, rather than in a
    /// kernel that trusts its shapes.
    public init(network net: DlibNetwork, path: String) throws {
        self.path = path
        guard case .inputRGB(let m, let rows, let cols)? = net.layers.first, rows == cols else {
            throw FormatError("\(path): the network does not start with a square RGB input layer")
        }
        guard case .fullyConnected? = net.layers.last else {
            throw FormatError("\(path): the network does not end with a fully connected layer")
        }
        // Every marker run must be one (tag) or two (tag, skip), and skips must precede a pool.
        var k = 1
        while k < net.layers.count {
            guard case .tagOrSkip = net.layers[k] else { k += 1; continue }
            var run = 0
            while k + run < net.layers.count, case .tagOrSkip = net.layers[k + run] { run += 1 }
            guard run <= 2 else { throw FormatError("\(path): \(run) consecutive tag/skip layers; not a dlib residual network") }
            k += run
        }
        chipSize = rows
        layers = Array(net.layers.dropFirst())
        mean = Tensor(shape: [1, 3, 1, 1], values: m)
        largestActivation = try Self.checkShapes(layers, chip: rows, path: path)
    }

    /// The most elements one sample's activation may have (1 GiB of float32).
    static let maxActivation = 1 << 28

    /// Follows the activation's shape [C, H, W] through `layers` exactly as `callAsFunction`
    /// runs them, and throws at the first layer that could not run on it. Returns the largest
    /// activation's element count.
    static func checkShapes(_ layers: [DlibLayer], chip: Int, path: String) throws -> Int {
        func fail(_ k: Int, _ why: String) -> FormatError {
            FormatError("\(path): layer #\(k + 1) (\(layers[k].name)): \(why)")
        }
        func count(_ s: [Int]) -> Int? {
            var n = 1
            for d in s {
                let (m, overflow) = n.multipliedReportingOverflow(by: d)
                guard !overflow, m <= maxActivation else { return nil }
                n = m
            }
            return n
        }
        /// The output side of a window of `size` (stride, padding) over `input`, or nil when
        /// the window does not fit the padded input.
        func side(_ input: Int, _ size: Int, _ stride: Int, _ pad: Int) -> Int? {
            // Sizes come from the file unbounded; past 2³⁰ nothing fits and the sums below could wrap.
            guard size > 0, size <= 1 << 30, stride > 0, pad >= 0, pad < size, input + 2 * pad >= size else { return nil }
            return (input + 2 * pad - size) / stride + 1
        }
        var h = [3, chip, chip]
        var largest = 3 * chip * chip
        var tags: [[Int]] = []
        var k = 0
        while k < layers.count {
            let at = k
            switch layers[k] {
            case .tagOrSkip:
                tags.append(h)
                if k + 1 < layers.count, case .tagOrSkip = layers[k + 1] {
                    guard tags.count >= 2 else { throw fail(k, "skips back to a tag that was never set") }
                    h = tags[tags.count - 2]
                    k += 1
                }
            case .conv(let w, let b, let s, let p):
                let ws = w.shape
                guard ws.count == 4, ws[0] > 0, ws[1] == h[0], b.shape == [ws[0]] else {
                    throw fail(k, "filters \(ws) do not fit an input of \(h[0]) channels")
                }
                guard let oh = side(h[1], ws[2], s.y, p.y), let ow = side(h[2], ws[3], s.x, p.x) else {
                    throw fail(k, "a \(ws[2])×\(ws[3]) filter (stride \(s.y)×\(s.x), padding \(p.y)×\(p.x)) does not fit a \(h[1])×\(h[2]) input")
                }
                h = [ws[0], oh, ow]
            case .affine(let g, let b, let perChannel):
                let want = perChannel ? h[0] : count(h) ?? -1
                guard g.count == want, b.count == want else {
                    throw fail(k, "\(g.count) scales for an input of shape \(h) (\(perChannel ? "per channel" : "per element"))")
                }
            case .relu:
                break
            case .maxPool(let p), .avgPool(let p):
                if case .avgPool = layers[k], p.rows == 0 && p.cols == 0 {
                    h = [h[0], 1, 1]
                    break
                }
                // The pooling kernels take padding up to half the window.
                guard p.padding.y <= p.rows / 2, p.padding.x <= p.cols / 2,
                      let oh = side(h[1], p.rows, p.stride.y, p.padding.y), let ow = side(h[2], p.cols, p.stride.x, p.padding.x) else {
                    throw fail(k, "a \(p.rows)×\(p.cols) window (stride \(p.stride.y)×\(p.stride.x), padding \(p.padding.y)×\(p.padding.x)) does not fit a \(h[1])×\(h[2]) input")
                }
                h = [h[0], oh, ow]
            case .addPrev:
                guard let t = tags.last else { throw fail(k, "adds a tag that was never set") }
                h = zip(h, t).map { max($0, $1) }
                tags.removeAll()
            case .fullyConnected(let w, let b):
                guard k == layers.count - 1 else { throw fail(k, "a fully connected layer must be the last") }
                guard w.rank == 2, w.shape[0] == count(h), b.map({ $0.count == w.shape[1] }) ?? true else {
                    throw fail(k, "weights \(w.shape) do not fit an input of shape \(h)")
                }
                h = [w.shape[1], 1, 1]
            case .inputRGB:
                throw fail(k, "an input layer inside the network")
            }
            guard let n = count(h) else { throw fail(at, "makes an activation of shape \(h), over \(maxActivation) elements") }
            largest = max(largest, n)
            k += 1
        }
        return largest
    }

    /// x: [N, 3, 150, 150] RGB in 0…255. Returns [N, 128].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == 3, x.shape[2] == chipSize, x.shape[3] == chipSize else {
            throw NetworkError("\(path): input must be [N, 3, \(chipSize), \(chipSize)] RGB, got \(x.shape)")
        }
        // dlib's input layer: (pixel − channel mean) / 256.
        var h = (x - mean) * (1 / 256)
        var tags: [Tensor] = []
        var k = 0
        while k < layers.count {
            switch layers[k] {
            case .tagOrSkip:
                if k + 1 < layers.count, case .tagOrSkip = layers[k + 1] {
                    tags.append(h)
                    h = tags[tags.count - 2]
                    k += 1
                } else {
                    tags.append(h)
                }
            case .conv(let w, let b, let s, let p):
                h = NN.conv2d(h, weight: w, bias: b, stride: NN.Pair(s.y, s.x), padding: NN.Padding(p.y, p.x))
            case .affine(let g, let b, let perChannel):
                if perChannel {
                    h = h * g.reshaped([1, g.count, 1, 1]) + b.reshaped([1, b.count, 1, 1])
                } else {
                    h = h * g.reshaped([1] + Array(h.shape.dropFirst())) + b.reshaped([1] + Array(h.shape.dropFirst()))
                }
            case .relu:
                h = h.relu()
            case .maxPool(let p):
                h = NN.maxPool2d(h, kernel: NN.Pair(p.rows, p.cols), stride: NN.Pair(p.stride.y, p.stride.x),
                                 padding: NN.Pair(p.padding.y, p.padding.x))
            case .avgPool(let p):
                if p.rows == 0 && p.cols == 0 {
                    h = NN.globalAvgPool2d(h)
                } else {
                    h = NN.avgPool2d(h, kernel: NN.Pair(p.rows, p.cols), stride: NN.Pair(p.stride.y, p.stride.x),
                                     padding: NN.Pair(p.padding.y, p.padding.x))
                }
            case .addPrev:
                h = Self.addPadded(h, tags.last!)
                tags.removeAll()
            case .fullyConnected(let w, let b):
                let flat = h.reshaped([h.shape[0], h.count / h.shape[0]])
                h = flat.matmul(w)
                if let b { h = h + b.reshaped([1, b.count]) }
            case .inputRGB:
                preconditionFailure("input layer inside the network")
            }
            k += 1
        }
        return h
    }

    /// dlib's add_prev: the output takes the larger size on every axis and each operand
    /// contributes where it exists (a stride-2 conv and a 2×2 pool of an even size differ by one).
    static func addPadded(_ a: Tensor, _ b: Tensor) -> Tensor {
        if a.shape == b.shape { return a + b }
        let target = zip(a.shape, b.shape).map { max($0, $1) }
        func grow(_ t: Tensor) -> Tensor {
            var y = t
            if y.shape[2] < target[2] || y.shape[3] < target[3] {
                y = NN.pad(y, NN.Padding(top: 0, bottom: target[2] - y.shape[2], left: 0, right: target[3] - y.shape[3]))
            }
            if y.shape[1] < target[1] {
                y = Tensor.concat([y, Tensor(zeros: [y.shape[0], target[1] - y.shape[1], y.shape[2], y.shape[3]])], dim: 1)
            }
            return y
        }
        return grow(a) + grow(b)
    }

    /// Euclidean distance between two descriptors; dlib's threshold for "same person" is 0.6.
    public static func distance(_ a: Tensor, _ b: Tensor) -> Float {
        let d = (a - b).values
        return d.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }
}
