import GuiseFormats
import GuiseTensor

/// Checks a TFLite graph as a whole before any of it is prepared: every operator has the
/// operands it reads, each activation is made before it is read, and each output has the shape
/// its op computes from its inputs' shapes and options. The kernels run without bounds checks
/// and trust the declared shapes, so a corrupt file must be stopped here, with the operator
/// or tensor named, rather than read out of range later.
struct TFLiteGraphCheck {
    let model: TFLiteModel
    let graph: TFLiteSubGraph
    /// Stored tensors and what DEQUANTIZE/DENSIFY make of them: those are folded at load, so
    /// their results count as constants from the start (a convolution may come before the
    /// DEQUANTIZE of its weights).
    let constants: Set<Int>

    init(model: TFLiteModel, graph: TFLiteSubGraph) {
        self.model = model
        self.graph = graph
        var constants = Set(graph.tensors.indices.filter { model.data(of: graph.tensors[$0]).count > 0 })
        for op in graph.operators where ["DEQUANTIZE", "DENSIFY"].contains(model.opName(op)) {
            if op.inputs.count == 1, op.outputs.count == 1, op.inputs[0] >= 0, op.outputs[0] >= 0, constants.contains(op.inputs[0]) {
                constants.insert(op.outputs[0])
            }
        }
        self.constants = constants
    }

    /// (required inputs, optional inputs after them) per op; every op here has one output.
    static let arity: [String: (Int, Int)] = [
        "ADD": (2, 0), "SUB": (2, 0), "MUL": (2, 0),
        "CONV_2D": (2, 1), "DEPTHWISE_CONV_2D": (2, 1), "Convolution2DTransposeBias": (2, 1),
        "MAX_POOL_2D": (1, 0), "AVERAGE_POOL_2D": (1, 0), "CONCATENATION": (1, Int.max),
        "RESHAPE": (1, 1), "RESIZE_BILINEAR": (1, 1), "PAD": (2, 0),
        "RELU": (1, 0), "RELU6": (1, 0), "LOGISTIC": (1, 0), "HARD_SWISH": (1, 0), "PRELU": (2, 0),
        "DEPTH_TO_SPACE": (1, 0), "DEQUANTIZE": (1, 0), "DENSIFY": (1, 0),
    ]

    func fail(_ i: Int, _ name: String, _ why: String) -> FormatError {
        FormatError("\(model.path): operator #\(i) \(printable(name)): \(why)")
    }

    func label(_ t: Int) -> String { "tensor #\(t) '\(printable(graph.tensors[t].name))' \(graph.tensors[t].shape)" }

    func shape(_ t: Int) -> [Int] { graph.tensors[t].shape }

    func isStored(_ t: Int) -> Bool { model.data(of: graph.tensors[t]).count > 0 }

    func check() throws {
        let g = graph
        var available = Set(g.inputs)
        for t in g.inputs where !shape(t).allSatisfy({ $0 > 0 }) || g.tensors[t].type != .float32 {
            throw FormatError("\(model.path): input \(label(t)) must be float32 with every dimension positive")
        }
        available.formUnion(constants)
        var produced = Set<Int>()
        for (i, op) in g.operators.enumerated() {
            let name = model.opName(op)
            guard let (required, optional) = Self.arity[name] else { throw fail(i, name, "is not supported") }
            guard op.inputs.count >= required, op.inputs.count - required <= optional else {
                throw fail(i, name, "has \(op.inputs.count) inputs; it takes \(required)\(optional > 0 ? " or more" : "")")
            }
            guard op.outputs.count == 1, op.outputs[0] >= 0 else { throw fail(i, name, "has \(op.outputs.count) outputs; it makes 1") }
            let out = op.outputs[0]
            for (k, t) in op.inputs.enumerated() {
                if t < 0 {
                    guard k >= required, name != "CONCATENATION" else { throw fail(i, name, "input \(k) is missing") }
                    continue
                }
                guard available.contains(t) else { throw fail(i, name, "reads \(label(t)) before any operator makes it") }
                guard shape(t).allSatisfy({ $0 > 0 }) else { throw fail(i, name, "input \(label(t)) has an empty or unknown dimension") }
            }
            // The data operand is what the step is run on: a constant there would leave it with no
            // activation to read (elementwise ops take constants on either side, and DEQUANTIZE
            // and DENSIFY fold them).
            if !["ADD", "SUB", "MUL", "DEQUANTIZE", "DENSIFY"].contains(name), op.inputs[0] >= 0, constants.contains(op.inputs[0]) {
                throw fail(i, name, "input \(label(op.inputs[0])) is a constant; it must be an activation")
            }
            guard !isStored(out), !g.inputs.contains(out), produced.insert(out).inserted else {
                throw fail(i, name, "writes \(label(out)), which is already a constant or another operator's output")
            }
            guard shape(out).allSatisfy({ $0 > 0 }) else { throw fail(i, name, "output \(label(out)) has an empty or unknown dimension") }
            if let want = try expectedOutput(i, name, op), want != shape(out) {
                throw fail(i, name, "output \(label(out)) should have shape \(want) for its inputs")
            }
            available.insert(out)
        }
        for t in g.outputs where !produced.contains(t) && !g.inputs.contains(t) {
            throw FormatError("\(model.path): output \(label(t)) is made by no operator")
        }
    }

    /// The output shape `op` computes from its operands, or nil where the op's own build checks it.
    func expectedOutput(_ i: Int, _ name: String, _ op: TFLiteOperator) throws -> [Int]? {
        let x = shape(op.inputs[0])
        func rank4(_ s: [Int], _ what: String) throws {
            guard s.count == 4 else { throw fail(i, name, "\(what) \(s) is not 4-D") }
        }
        func bias(_ channels: Int) throws {
            guard op.inputs.count > 2, op.inputs[2] >= 0 else { return }
            let b = shape(op.inputs[2])
            guard Tensor.product(b) == channels, b.count <= 1 || b.dropLast().allSatisfy({ $0 == 1 }) else {
                throw fail(i, name, "bias \(label(op.inputs[2])) must hold one value per output channel (\(channels))")
            }
        }
        func positive(_ values: [Int], _ what: String) throws {
            guard values.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }) else { throw fail(i, name, "\(what) \(values) must be positive") }
        }
        /// Output size along one axis of a window op (TFLite's SAME and VALID rules).
        func window(_ input: Int, _ kernel: Int, _ stride: Int, _ dilation: Int, _ p: TFLitePadding) throws -> Int {
            let span = (kernel - 1) * dilation + 1
            // SAME pads by up to span − 1 and the kernels build the padded copy, so a dilation that
            // spreads the taps far past the input would make it any size (a 6-pixel input dilated
            // by 65536 asked for 800 MB). Undilated windows always pass.
            guard span <= 2 * input + kernel else {
                throw fail(i, name, "window \(kernel) (dilation \(dilation)) spans \(span) pixels, far past the input \(x)")
            }
            if p == .same { return (input + stride - 1) / stride }
            guard input >= span else { throw fail(i, name, "window \(kernel) (dilation \(dilation)) is larger than input \(x)") }
            return (input - span) / stride + 1
        }

        switch (name, op.options) {
        case ("CONV_2D", .conv2D(let o)):
            let w = shape(op.inputs[1])
            try rank4(x, "input"); try rank4(w, "weight")
            try positive([o.strideH, o.strideW], "strides"); try positive([o.dilationH, o.dilationW], "dilations")
            guard x[3] % w[3] == 0, w[0] % (x[3] / w[3]) == 0 else {
                throw fail(i, name, "weight \(label(op.inputs[1])) does not fit \(x[3]) input channels")
            }
            try bias(w[0])
            return [x[0], try window(x[1], w[1], o.strideH, o.dilationH, o.padding),
                    try window(x[2], w[2], o.strideW, o.dilationW, o.padding), w[0]]

        case ("DEPTHWISE_CONV_2D", .depthwiseConv2D(let o)):
            let w = shape(op.inputs[1])
            try rank4(x, "input"); try rank4(w, "weight")
            try positive([o.strideH, o.strideW], "strides"); try positive([o.dilationH, o.dilationW], "dilations")
            guard w[0] == 1, w[3] == x[3] * max(o.depthMultiplier, 1) else {
                throw fail(i, name, "weight \(label(op.inputs[1])) does not fit \(x[3]) input channels")
            }
            try bias(w[3])
            return [x[0], try window(x[1], w[1], o.strideH, o.dilationH, o.padding),
                    try window(x[2], w[2], o.strideW, o.dilationW, o.padding), w[3]]

        case ("Convolution2DTransposeBias", _):
            let w = shape(op.inputs[1]), out = shape(op.outputs[0])
            try rank4(x, "input"); try rank4(w, "weight"); try rank4(out, "output")
            guard w[3] == x[3] else { throw fail(i, name, "weight \(label(op.inputs[1])) does not fit \(x[3]) input channels") }
            try bias(w[0])
            // The spatial size is checked against the options where the step is built.
            return [x[0], out[1], out[2], w[0]]

        case ("MAX_POOL_2D", .pool2D(let o)), ("AVERAGE_POOL_2D", .pool2D(let o)):
            try rank4(x, "input")
            try positive([o.strideH, o.strideW], "strides"); try positive([o.filterH, o.filterW], "filter size")
            return [x[0], try window(x[1], o.filterH, o.strideH, 1, o.padding), try window(x[2], o.filterW, o.strideW, 1, o.padding), x[3]]

        case ("ADD", _), ("SUB", _), ("MUL", _):
            // TFLite broadcasts from the right; each dimension pair must agree or one be 1.
            let a = x, b = shape(op.inputs[1])
            guard a.count <= 4, b.count <= 4 else { throw fail(i, name, "operands \(a) and \(b) have more than 4 dimensions") }
            // A 4-D activation is kept NCHW inside, any other as it is: two activations only line
            // up when they have one rank. (A constant is laid out to match its partner.)
            guard a.count == b.count || constants.contains(op.inputs[0]) || constants.contains(op.inputs[1]) else {
                throw fail(i, name, "activations \(label(op.inputs[0])) and \(label(op.inputs[1])) differ in rank")
            }
            let r = max(a.count, b.count)
            let pa = [Int](repeating: 1, count: r - a.count) + a, pb = [Int](repeating: 1, count: r - b.count) + b
            return try zip(pa, pb).map { p, q in
                guard p == q || p == 1 || q == 1 else { throw fail(i, name, "operands \(a) and \(b) do not broadcast") }
                return max(p, q)
            }

        case ("CONCATENATION", .concatenation(let axis, _)):
            let rank = shape(op.outputs[0]).count
            let a0 = axis < 0 ? axis + rank : axis
            guard a0 >= 0, a0 < rank else { throw fail(i, name, "axis \(axis) for rank \(rank)") }
            var out = x
            guard x.count == rank else { throw fail(i, name, "input \(label(op.inputs[0])) is not of rank \(rank)") }
            for t in op.inputs.dropFirst() {
                let s = shape(t)
                guard s.count == rank, s.indices.allSatisfy({ $0 == a0 || s[$0] == x[$0] }) else {
                    throw fail(i, name, "input \(label(t)) does not match \(label(op.inputs[0])) off axis \(a0)")
                }
                out[a0] += s[a0]
            }
            return out

        case ("RESHAPE", _):
            let out = shape(op.outputs[0])
            guard !out.isEmpty, !x.isEmpty, out[0] == x[0] || x[0] == 1, Tensor.product(out) == Tensor.product(x) else {
                throw fail(i, name, "cannot reshape \(label(op.inputs[0])) to \(out)")
            }
            return nil

        case ("RESIZE_BILINEAR", _):
            let out = shape(op.outputs[0])
            try rank4(x, "input"); try rank4(out, "output")
            return [x[0], out[1], out[2], x[3]]

        case ("PAD", _):
            try rank4(x, "input")
            guard let p = try model.intConstant(op.inputs[1]), p.count == 8, p.allSatisfy({ $0 >= 0 && $0 <= 1 << 16 }) else {
                throw fail(i, name, "paddings \(label(op.inputs[1])) must be a constant 4×2 of sizes")
            }
            return (0..<4).map { x[$0] + p[2 * $0] + p[2 * $0 + 1] }

        case ("DEPTH_TO_SPACE", .depthToSpace(let b)):
            try rank4(x, "input")
            guard b > 0, b <= 1 << 8, x[3] % (b * b) == 0 else { throw fail(i, name, "block \(b) for input \(x)") }
            return [x[0], x[1] * b, x[2] * b, x[3] / (b * b)]

        case ("PRELU", _):
            let alpha = shape(op.inputs[1])
            guard Tensor.product(alpha) == 1 || (x.last.map { Tensor.product(alpha) == $0 && alpha.last == $0 } ?? false) else {
                throw fail(i, name, "slopes \(label(op.inputs[1])) must be one per channel")
            }
            return x

        case ("RELU", _), ("RELU6", _), ("LOGISTIC", _), ("HARD_SWISH", _), ("DEQUANTIZE", _), ("DENSIFY", _):
            return x

        default:
            return nil  // options the step builder refuses by name
        }
    }
}
