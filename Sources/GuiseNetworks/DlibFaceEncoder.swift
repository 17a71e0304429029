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
    private let layers: [DlibLayer]
    private let mean: Tensor

    public init(path: String) throws {
        let net = try DlibNetwork(path: path)
        self.path = path
        guard case .inputRGB(let m, let rows, let cols)? = net.layers.first, rows == cols else {
            throw FormatError("\(path): the network does not start with a square RGB input layer")
        }
        guard case .fullyConnected? = net.layers.last else {
            throw FormatError("\(path): the network does not end with a fully connected layer")
        }
        // Every marker run must be one (tag) or two (tag, skip) long, and skips must precede a pool.
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
