import Dispatch
import Foundation
import GuiseFormats
import GuiseTensor

/// A TFLite graph run on Guise's tensor engine, so gradients flow from any output back to
/// the inputs.
///
/// Inputs and outputs are in the model's own layout (NHWC for images). Inside, every 4-D
/// activation is kept NCHW, the engine's layout; anything of another rank keeps TFLite's layout.
/// Constant conversions (DEQUANTIZE of fp16 weights, DENSIFY of sparse ones) are folded at load,
/// weights are permuted to the engine's layouts once, and every op is checked at load, so an
/// unsupported op or option is reported by name before anything runs.
public final class TFLiteNetwork {
    public static let supportedOps: Set<String> = [
        "ADD", "SUB", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION",
        "RESHAPE", "RESIZE_BILINEAR", "PAD", "RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "PRELU", "DEPTH_TO_SPACE",
        "DEQUANTIZE", "DENSIFY", "Convolution2DTransposeBias",
    ]

    /// The largest constant magnitude accepted at load.
    static let weightLimit: Float = 1e6

    public let path: String
    public let inputNames: [String]
    public let outputNames: [String]
    /// Shapes as the model declares them (batch 1, NHWC for images).
    public let inputShapes: [[Int]]
    public let outputShapes: [[Int]]

    private let graph: TFLiteSubGraph
    private let steps: [Step]
    /// Intermediate tensors that no step produces, because the op making them was merged into
    /// its consumer at load (see `Fusion`), each with the operator it went into.
    private let foldedTensors: [Int: Int]
    /// How many operators were merged into others at load.
    public let fusedOperators: Int
    /// Per step, the tensors it is the last reader of.
    private let releases: [[Int]]

    /// Time spent in one step (one TFLite operator) over the runs since profiling was switched on.
    public struct StepTime {
        public let op: String
        /// The operator's index in the graph, its output shape (TFLite layout) and, for convolutions, its kernel.
        public let detail: String
        public var runs = 0
        public var seconds = 0.0
    }
    /// Per-step timings, gathered while non-nil (`startProfiling()`); for finding where time goes.
    public private(set) var profile: [StepTime]?

    /// Nanoseconds: on one thread the thread's CPU time, which other processes on a busy machine
    /// barely disturb; otherwise wall time, since work also runs on other threads.
    static func profileClock() -> UInt64 {
        guard Parallel.threads == 1 else { return DispatchTime.now().uptimeNanoseconds }
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    public func startProfiling() {
        profile = steps.map { s in
            let out = s.outputs.first.map { graph.tensors[$0].shape } ?? []
            return StepTime(op: s.name, detail: "#\(s.index) → \(out)\(s.kernel.isEmpty ? "" : " " + s.kernel)")
        }
    }

    private struct Step {
        let index: Int
        let name: String
        let inputs: [Int]
        let outputs: [Int]
        var kernel = ""
        let run: ([Tensor]) -> [Tensor]
    }

    public convenience init(path: String) throws {
        try self.init(model: TFLiteModel(path: path))
    }

    public init(model: TFLiteModel) throws {
        path = model.path
        try model.checkOperators(supported: Self.supportedOps)
        try TFLiteGraphCheck(model: model, graph: model.mainGraph).check()
        let g = model.mainGraph
        graph = g
        inputNames = g.inputs.map { g.tensors[$0].name }
        outputNames = g.outputs.map { g.tensors[$0].name }
        inputShapes = g.inputs.map { g.tensors[$0].shape }
        outputShapes = g.outputs.map { g.tensors[$0].shape }

        // Constants in TFLite layout, by tensor index, including the folded DEQUANTIZE/DENSIFY outputs.
        var raw: [Int: Tensor] = [:]
        func constant(_ t: Int) throws -> Tensor? {
            if let c = raw[t] { return c }
            guard t >= 0, g.tensors[t].type != .int32, g.tensors[t].type != .int64 else { return nil }
            let c = try model.constant(t)
            // A flipped exponent bit turns a weight into ±1e30 or so, or into inf or NaN, which runs
            // but makes every output non-finite; no weight of a working network comes near 1e6.
            if let c, let k = c.values.firstIndex(where: { !(abs($0) <= Self.weightLimit) }) {
                throw FormatError("\(model.path): tensor #\(t) '\(printable(g.tensors[t].name))' holds \(c.values[k]) at element \(k), beyond ±\(Self.weightLimit) for a weight")
            }
            raw[t] = c
            return c
        }
        var steps: [Step] = []
        let builder = StepBuilder(model: model, graph: g)
        let fusion = try Fusion(model: model, graph: g)
        // fp16 → fp32 and sparse → dense are exact, so constants fold (all before any step is
        // built: a fused step may read a constant whose DEQUANTIZE comes later in the graph).
        for op in g.operators where ["DEQUANTIZE", "DENSIFY"].contains(model.opName(op)) {
            if let c = try constant(op.inputs[0]) { raw[op.outputs[0]] = c }
        }
        for (i, op) in g.operators.enumerated() where !fusion.absorbed.contains(i) {
            let name = model.opName(op)
            if name == "DEQUANTIZE" || name == "DENSIFY" {
                // Activations pass through.
                if raw[op.outputs[0]] != nil { continue }
                let t = g.tensors[op.inputs[0]].type
                guard t == .float32 || t == .float16 else {
                    throw FormatError("\(path): operator #\(i) \(printable(name)) of a \(t) activation: quantised graphs are not supported")
                }
                steps.append(Step(index: i, name: name, inputs: [op.inputs[0]], outputs: op.outputs, run: { $0 }))
                continue
            }
            let plan = fusion.plans[i] ?? Fusion.Plan()
            let run = try builder.make(index: i, name: name, op: op, plan: plan, constant: constant)
            var inputs = op.inputs
            for (k, t) in plan.replacedInputs { inputs[k] = t }
            let activationInputs = inputs.filter { $0 >= 0 && raw[$0] == nil && model.data(of: g.tensors[$0]).count == 0 }
            var kernel = ""
            if name.contains("CONV"), op.inputs.count > 1, op.inputs[1] >= 0 { kernel = "w\(g.tensors[op.inputs[1]].shape)" }
            if !plan.absorbed.isEmpty { kernel += (kernel.isEmpty ? "" : " ") + "+" + plan.absorbed.joined(separator: "+") }
            steps.append(Step(index: i, name: name, inputs: activationInputs, outputs: plan.outputs ?? op.outputs,
                              kernel: kernel, run: run))
        }
        foldedTensors = fusion.folded
        // Each activation is dropped after the last step that reads it, so its buffer goes back
        // to the pool while still warm in cache and the next step of that size reuses it.
        var lastUse: [Int: Int] = [:]
        for (k, step) in steps.enumerated() { for t in step.inputs { lastUse[t] = k } }
        var releases = [[Int]](repeating: [], count: steps.count)
        for (t, k) in lastUse { releases[k].append(t) }
        self.releases = releases
        fusedOperators = fusion.absorbed.count
        self.steps = steps
    }

    /// Runs the graph on NHWC inputs (in `inputNames` order); returns the outputs in
    /// `outputNames` order, in the model's layout. The batch may be larger than the model's 1.
    public func callAsFunction(_ inputs: [Tensor]) throws -> [Tensor] {
        try run(inputs, fetching: graph.outputs)
    }

    /// Like `callAsFunction`, but returns the named tensors, which may be intermediate ones
    /// (e.g. logits before a final sigmoid, whose gradients don't vanish where it saturates).
    public func callAsFunction(_ inputs: [Tensor], fetching names: [String]) throws -> [Tensor] {
        let ids = try names.map { n -> Int in
            guard let t = graph.tensorIndex(named: n) else { throw NetworkError("\(path): no tensor named '\(printable(n))'") }
            return t
        }
        return try run(inputs, fetching: ids)
    }

    private func run(_ inputs: [Tensor], fetching fetch: [Int]) throws -> [Tensor] {
        guard inputs.count == graph.inputs.count else {
            throw NetworkError("\(path): the model takes \(graph.inputs.count) inputs, got \(inputs.count)")
        }
        var values = [Tensor?](repeating: nil, count: graph.tensors.count)
        let fetched = Set(fetch)
        for (k, (t, x)) in zip(graph.inputs, inputs).enumerated() {
            let want = graph.tensors[t].shape
            guard x.rank == want.count, Array(x.shape.dropFirst()) == Array(want.dropFirst()) else {
                throw NetworkError("\(path): input '\(printable(inputNames[k]))' must have shape \(want) (any batch), got \(x.shape)")
            }
            values[t] = x.rank == 4 ? x.permuted(0, 3, 1, 2) : x
        }
        for (k, step) in steps.enumerated() {
            let args = step.inputs.map { values[$0]! }
            let t0 = profile == nil ? 0 : Self.profileClock()
            let outs = step.run(args)
            if profile != nil { profile![k].seconds += Double(Self.profileClock() - t0) / 1e9; profile![k].runs += 1 }
            for (t, y) in zip(step.outputs, outs) { values[t] = y }
            for t in releases[k] where !fetched.contains(t) { values[t] = nil }
        }
        return try fetch.map { t in
            if let into = foldedTensors[t] {
                throw NetworkError("\(path): tensor '\(printable(graph.tensors[t].name))' is computed inside operator #\(into) and never stored", category: .unsupported)
            }
            guard let y = values[t] else { throw NetworkError("\(path): tensor '\(printable(graph.tensors[t].name))' is a constant or unused") }
            return y.rank == 4 ? y.permuted(0, 2, 3, 1).contiguous() : y
        }
    }

    public func callAsFunction(named inputs: [String: Tensor]) throws -> [String: Tensor] {
        let ordered = try inputNames.map { n -> Tensor in
            guard let x = inputs[n] else { throw NetworkError("\(path): missing input '\(printable(n))'") }
            return x
        }
        return Dictionary(uniqueKeysWithValues: zip(outputNames, try self(ordered)))
    }
}

/// Turns each TFLite operator into a closure over engine ops, with weights prepared once.
private struct StepBuilder {
    let model: TFLiteModel
    let graph: TFLiteSubGraph

    init(model: TFLiteModel, graph: TFLiteSubGraph) {
        self.model = model
        self.graph = graph
    }

    func fail(_ i: Int, _ name: String, _ why: String) -> FormatError {
        FormatError("\(model.path): operator #\(i) \(printable(name)): \(why)")
    }

    func shape(_ t: Int) -> [Int] { graph.tensors[t].shape }

    /// TFLite's SAME padding for one axis: the output is ⌈in/stride⌉ and the extra goes after.
    static func samePadding(input: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (Int, Int) {
        let out = (input + stride - 1) / stride
        let total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - input, 0)
        return (total / 2, total - total / 2)
    }

    func make(index i: Int, name: String, op: TFLiteOperator, plan: Fusion.Plan,
              constant: (Int) throws -> Tensor?) throws -> ([Tensor]) -> [Tensor] {
        let outShape = shape(op.outputs[0])
        func weight(_ k: Int) throws -> Tensor {
            guard k < op.inputs.count, op.inputs[k] >= 0, let w = try constant(op.inputs[k]) else {
                throw fail(i, name, "input \(k) must be a constant")
            }
            return w
        }
        /// The slopes of a PRELU merged into this op: one constant per channel, as a flat tensor.
        func preluSlopes(_ t: Int, channels: Int) throws -> Tensor {
            guard let alpha = try constant(t), alpha.count == channels, alpha.shape.last == alpha.count else {
                throw fail(i, name, "the PReLU after it needs one constant slope per channel")
            }
            return alpha.reshaped([alpha.count])
        }
        /// The bias, if any, flat: the graph check lets through one value per output channel in
        /// any shape whose leading dimensions are 1 ([1, 1, C]), and the kernels take [C].
        func optionalBias(_ k: Int) throws -> Tensor? {
            guard k < op.inputs.count, op.inputs[k] >= 0 else { return nil }
            let b = try weight(k)
            return b.reshaped([b.count])
        }

        switch (name, op.options) {
        case ("CONV_2D", .conv2D(let o)):
            let w = try weight(1), b = try optionalBias(2)
            let x = shape(op.inputs[0])
            guard w.rank == 4, x.count == 4, x[3] % w.shape[3] == 0 else { throw fail(i, name, "weight \(w.shape) for input \(x)") }
            let wt = w.permuted(0, 3, 1, 2).contiguous()
            let groups = x[3] / w.shape[3]
            let pad = Self.padding(o.padding, input: x, kernel: (w.shape[1], w.shape[2]), stride: (o.strideH, o.strideW),
                                   dilation: (o.dilationH, o.dilationW)) + plan.extraPadding
            let act = o.activation
            try Self.checkActivation(act, fail(i, name, "unsupported fused activation \(act)"))
            let (clamp, rest) = Self.split(act, then: plan.activation)
            var slopes: Tensor? = nil
            if case .prelu(let t)? = plan.activation { slopes = try preluSlopes(t, channels: w.shape[0]) }
            return { a in
                [Self.activate(NN.conv2d(a[0], weight: wt, bias: b, stride: NN.Pair(o.strideH, o.strideW), padding: pad,
                                         dilation: NN.Pair(o.dilationH, o.dilationW), groups: groups, clamp: clamp,
                                         prelu: slopes), rest)]
            }

        case ("DEPTHWISE_CONV_2D", .depthwiseConv2D(let o)):
            let w = try weight(1), b = try optionalBias(2)
            let x = shape(op.inputs[0])
            guard w.rank == 4, w.shape[0] == 1, x.count == 4, w.shape[3] == x[3] * max(o.depthMultiplier, 1) else {
                throw fail(i, name, "weight \(w.shape) for input \(x)")
            }
            // [1, kh, kw, C·M] → [C·M, 1, kh, kw]: output channel c·M + m reads input channel c, as a grouped conv.
            let wt = w.permuted(3, 0, 1, 2).contiguous()
            let pad = Self.padding(o.padding, input: x, kernel: (w.shape[1], w.shape[2]), stride: (o.strideH, o.strideW),
                                   dilation: (o.dilationH, o.dilationW)) + plan.extraPadding
            let act = o.activation, groups = x[3]
            try Self.checkActivation(act, fail(i, name, "unsupported fused activation \(act)"))
            let (clamp, rest) = Self.split(act, then: plan.activation)
            return { a in
                [Self.activate(NN.conv2d(a[0], weight: wt, bias: b, stride: NN.Pair(o.strideH, o.strideW), padding: pad,
                                         dilation: NN.Pair(o.dilationH, o.dilationW), groups: groups, clamp: clamp), rest)]
            }

        case ("Convolution2DTransposeBias", _):
            let o = try TFLiteTransposeConvBiasOptions(customOptions: op.customOptions, what: "\(model.path): operator #\(i) \(printable(name))")
            let w = try weight(1), b = try optionalBias(2)
            let x = shape(op.inputs[0])
            guard w.rank == 4, x.count == 4, w.shape[3] == x[3], outShape.count == 4 else {
                throw fail(i, name, "weight \(w.shape) for input \(x)")
            }
            // MediaPipe stores [Cout, kh, kw, Cin]; the engine wants [Cin, Cout, kh, kw].
            let wt = w.permuted(3, 0, 1, 2).contiguous()
            func axis(_ inSize: Int, _ outSize: Int, _ k: Int, _ s: Int) -> (Int, Int, Int) {
                // Padding as for the forward conv that maps the output back to the input.
                let total = o.padding == .same ? max((inSize - 1) * s + k - outSize, 0) : 0
                let natural = (inSize - 1) * s + k - total
                return (total / 2, total - total / 2, outSize - natural)
            }
            let (pt, pb, oph) = axis(x[1], outShape[1], w.shape[1], o.strideH)
            let (pl, pr, opw) = axis(x[2], outShape[2], w.shape[2], o.strideW)
            // The padding cropped off the full transposed output stays within the kernel, as it
            // does for any output TFLite would compute; more would be a padded buffer of any size.
            guard oph >= 0, opw >= 0, oph < o.strideH, opw < o.strideW, pt + pb < w.shape[1], pl + pr < w.shape[2] else {
                throw fail(i, name, "output \(outShape) does not follow from input \(x) and kernel \(w.shape)")
            }
            let pad = NN.Padding(top: pt, bottom: pb, left: pl, right: pr)
            return { a in
                [NN.convTranspose2d(a[0], weight: wt, bias: b, stride: NN.Pair(o.strideH, o.strideW), padding: pad,
                                    outputPadding: NN.Pair(oph, opw))]
            }

        case ("MAX_POOL_2D", .pool2D(let o)), ("AVERAGE_POOL_2D", .pool2D(let o)):
            let x = shape(op.inputs[0])
            var p = NN.Pair(0, 0)
            if o.padding == .same {
                let (t, bt) = Self.samePadding(input: x[1], kernel: o.filterH, stride: o.strideH)
                let (l, r) = Self.samePadding(input: x[2], kernel: o.filterW, stride: o.strideW)
                guard t == bt, l == r else { throw fail(i, name, "asymmetric SAME pooling is not supported") }
                p = NN.Pair(t, l)
            }
            let act = o.activation
            try Self.checkActivation(act, fail(i, name, "unsupported fused activation \(act)"))
            let k = NN.Pair(o.filterH, o.filterW), s = NN.Pair(o.strideH, o.strideW)
            if name == "MAX_POOL_2D" {
                return { a in [Self.activate(NN.maxPool2d(a[0], kernel: k, stride: s, padding: p), act)] }
            }
            // TFLite averages over the cells inside the input only.
            return { a in [Self.activate(NN.avgPool2d(a[0], kernel: k, stride: s, padding: p, countIncludePad: false), act)] }

        case ("ADD", _), ("SUB", _), ("MUL", _):
            var fused = TFLiteActivation.none
            switch op.options {
            case .arithmetic(let act): fused = act
            case .none: break
            default: throw fail(i, name, "unexpected options \(op.options)")
            }
            try Self.checkActivation(fused, fail(i, name, "unsupported fused activation \(fused)"))
            let rank = max(shape(op.inputs[0]).count, shape(op.inputs[1]).count)
            // A constant operand is prepared once, in the layout its partner has inside the engine.
            var c: [Tensor?] = [nil, nil]
            for k in 0..<2 {
                if let v = try constant(op.inputs[k]) { c[k] = Self.internalLayout(v, rank: rank) }
                else if model.data(of: graph.tensors[op.inputs[k]]).count > 0 { throw fail(i, name, "operand \(k) is not a float constant") }
            }
            if plan.residual {
                // Both operands are activations of one shape (but for a channel PAD merged in):
                // one pass for the add, the partner's padding and the activation after it.
                let (clamp, rest) = Self.split(fused)
                var act = NN.AddActivation.clamp(clamp)
                switch plan.activation {
                case nil: break
                case .clamp(let k)?: act = .clamp(k)
                case .prelu(let t)?: act = .prelu(try preluSlopes(t, channels: shape(op.outputs[0])[3]))
                }
                let swap = plan.paddedOperand == 0
                return { a in [Self.activate(NN.residualAdd(swap ? a[1] : a[0], swap ? a[0] : a[1], act), rest)] }
            }
            let f: (Tensor, Tensor) -> Tensor = name == "ADD" ? { $0 + $1 } : name == "SUB" ? { $0 - $1 } : { $0 * $1 }
            let (c0, c1) = (c[0], c[1])
            return { a in
                let lhs = c0 ?? a[0]
                let rhs = c1 ?? a[c0 == nil ? 1 : 0]
                return [Self.activate(f(lhs, rhs), fused)]
            }

        case ("CONCATENATION", .concatenation(let axis, let act)):
            let rank = outShape.count
            let a0 = axis < 0 ? axis + rank : axis
            guard a0 >= 0, a0 < rank else { throw fail(i, name, "axis \(axis) for rank \(rank)") }
            guard op.inputs.allSatisfy({ model.data(of: graph.tensors[$0]).count == 0 }) else {
                throw fail(i, name, "constant operands are not supported")
            }
            try Self.checkActivation(act, fail(i, name, "unsupported fused activation \(act)"))
            let dim = rank == 4 ? [0, 2, 3, 1][a0] : a0
            return { a in [Self.activate(Tensor.concat(a, dim: dim), act)] }

        case ("RESHAPE", _):
            let inRank = shape(op.inputs[0]).count
            let target = outShape
            return { a in
                let x = inRank == 4 ? a[0].permuted(0, 2, 3, 1) : a[0]
                var s = target
                s[0] = x.shape[0] * (Tensor.product(Array(x.shape.dropFirst()))) / max(Tensor.product(Array(target.dropFirst())), 1)
                let y = x.reshaped(s)
                return [s.count == 4 ? y.permuted(0, 3, 1, 2) : y]
            }

        case ("RESIZE_BILINEAR", .resizeBilinear(let o)):
            guard outShape.count == 4 else { throw fail(i, name, "output \(outShape) is not 4-D") }
            guard o.alignCorners || o.halfPixelCenters else {
                throw fail(i, name, "the legacy mode (neither align_corners nor half_pixel_centers) is not supported")
            }
            let size = NN.Pair(outShape[1], outShape[2]), ac = o.alignCorners
            return { a in [NN.upsampleBilinear(a[0], size: size, alignCorners: ac)] }

        case ("PAD", _):
            guard let p = try model.intConstant(op.inputs[1]), p.count == 8, shape(op.inputs[0]).count == 4 else {
                throw fail(i, name, "paddings must be a constant 4×2 for a 4-D input")
            }
            guard p[0] == 0, p[1] == 0, p.allSatisfy({ $0 >= 0 }) else { throw fail(i, name, "paddings \(p) are not supported") }
            let spatial = NN.Padding(top: p[2], bottom: p[3], left: p[4], right: p[5])
            let (cBefore, cAfter) = (p[6], p[7])
            return { a in
                var y = a[0]
                if spatial != 0 { y = NN.pad(y, spatial) }
                if cBefore + cAfter > 0 {
                    let (n, h, w) = (y.shape[0], y.shape[2], y.shape[3])
                    var parts: [Tensor] = []
                    if cBefore > 0 { parts.append(Tensor(zeros: [n, cBefore, h, w])) }
                    parts.append(y)
                    if cAfter > 0 { parts.append(Tensor(zeros: [n, cAfter, h, w])) }
                    y = Tensor.concat(parts, dim: 1)
                }
                return [y]
            }

        case ("RELU", _): return { a in [a[0].relu()] }
        case ("RELU6", _): return { a in [a[0].relu6()] }
        case ("LOGISTIC", _): return { a in [a[0].sigmoid()] }
        case ("HARD_SWISH", _): return { a in [a[0].hardSwish()] }

        case ("PRELU", _):
            let alpha = try weight(1)
            let x = shape(op.inputs[0])
            guard x.count == 4, alpha.count == x[3] || alpha.count == 1, alpha.shape.last == alpha.count else {
                throw fail(i, name, "slopes \(alpha.shape) for input \(x): only one slope per channel is supported")
            }
            let slopes = alpha.reshaped([alpha.count])
            return { a in [NN.prelu(a[0], weight: slopes)] }

        case ("DEPTH_TO_SPACE", .depthToSpace(let b)):
            let x = shape(op.inputs[0])
            guard b > 0, x.count == 4, x[3] % (b * b) == 0 else { throw fail(i, name, "block \(b) for input \(x)") }
            return { a in [NN.depthToSpace(a[0], block: b)] }

        default:
            throw fail(i, name, "options \(op.options) are not supported")
        }
    }

    static func padding(_ p: TFLitePadding, input x: [Int], kernel: (Int, Int), stride: (Int, Int), dilation: (Int, Int)) -> NN.Padding {
        guard p == .same else { return 0 }
        let (t, b) = samePadding(input: x[1], kernel: kernel.0, stride: stride.0, dilation: dilation.0)
        let (l, r) = samePadding(input: x[2], kernel: kernel.1, stride: stride.1, dilation: dilation.1)
        return NN.Padding(top: t, bottom: b, left: l, right: r)
    }

    static func checkActivation(_ a: TFLiteActivation, _ error: @autoclosure () -> FormatError) throws {
        guard a != .signBit else { throw error() }
    }

    /// A conv's own fused activation with, when Fusion merged one in, the RELU/RELU6 op after it
    /// (only merged when the conv has none of its own).
    static func split(_ a: TFLiteActivation, then after: Fusion.Activation?) -> (NN.Clamp, TFLiteActivation) {
        if case .clamp(let k)? = after, a == .none { return (k, .none) }
        return split(a)
    }

    /// A fused activation that is a clamp goes into the conv's output pass; any other stays an op.
    static func split(_ a: TFLiteActivation) -> (NN.Clamp, TFLiteActivation) {
        switch a {
        case .relu: return (.relu, .none)
        case .relu6: return (.relu6, .none)
        case .reluN1To1: return (NN.Clamp(low: -1, high: 1), .none)
        default: return (.none, a)
        }
    }

    static func activate(_ x: Tensor, _ a: TFLiteActivation) -> Tensor {
        switch a {
        case .none: return x
        case .relu: return x.relu()
        case .relu6: return x.relu6()
        case .reluN1To1: return x.clamped(min: -1, max: 1)
        case .tanh: return x.tanh()
        case .signBit: preconditionFailure("rejected at load")
        }
    }

    /// A constant operand of an elementwise op, in the layout its partner has inside the engine:
    /// TFLite broadcasts from the right in NHWC, so a lower-rank constant is first padded to the
    /// op's rank, then a 4-D one is permuted to NCHW.
    static func internalLayout(_ c: Tensor, rank: Int) -> Tensor {
        guard rank == 4 else { return c }
        let padded = c.reshaped([Int](repeating: 1, count: 4 - c.rank) + c.shape)
        return padded.permuted(0, 3, 1, 2).contiguous()
    }
}

/// Ops merged into their consumers at load, so a run makes fewer passes over memory. Each
/// rewrite keeps the arithmetic of the ops it replaces (the same sums, in the same order):
/// - a spatial PAD feeding only convolutions becomes their padding (the conv kernels pad as
///   they read, so the padded copy is never built);
/// - a channel PAD feeding only a residual ADD is done inside the add (`NN.residualAdd`);
/// - a RELU, RELU6 or PRELU that is the only consumer of an ADD is applied as the add writes;
/// - a RELU or RELU6 that is the only consumer of a conv is the conv's output clamp, and a
///   PRELU after a CONV_2D is applied as it writes too.
/// Tensors produced by absorbed ops are never stored; fetching one by name is an error.
struct Fusion {
    enum Activation {
        case clamp(NN.Clamp)
        /// The slopes' tensor index.
        case prelu(Int)
    }

    struct Plan {
        /// Operand position → the tensor read instead (a folded PAD's input).
        var replacedInputs: [Int: Int] = [:]
        /// Added to a convolution's own padding.
        var extraPadding: NN.Padding = 0
        /// An ADD of two activations of one shape, run by `NN.residualAdd`.
        var residual = false
        /// Which ADD operand lost its channel PAD (it has fewer channels than the other).
        var paddedOperand: Int? = nil
        var activation: Activation? = nil
        /// The step's outputs when an absorbed op's outputs replace its own.
        var outputs: [Int]? = nil
        /// Names of the absorbed ops, for profiles.
        var absorbed: [String] = []
    }

    private(set) var plans: [Int: Plan] = [:]
    private(set) var absorbed: Set<Int> = []
    /// Tensor → the operator that now computes it internally.
    private(set) var folded: [Int: Int] = [:]

    init(model: TFLiteModel, graph g: TFLiteSubGraph) throws {
        var consumers: [Int: [Int]] = [:]
        for (i, op) in g.operators.enumerated() {
            for t in Set(op.inputs) where t >= 0 { consumers[t, default: []].append(i) }
        }
        let graphOutputs = Set(g.outputs)
        func name(_ i: Int) -> String { model.opName(g.operators[i]) }
        // Constants: stored data, and what DEQUANTIZE/DENSIFY make of it (folded at load).
        var constants = Set(g.tensors.indices.filter { model.data(of: g.tensors[$0]).count > 0 })
        for (i, op) in g.operators.enumerated() where ["DEQUANTIZE", "DENSIFY"].contains(name(i)) {
            if op.inputs.allSatisfy({ constants.contains($0) }) { constants.formUnion(op.outputs) }
        }
        func isActivation(_ t: Int) -> Bool { t >= 0 && !constants.contains(t) }
        /// What a RELU, RELU6 or PRELU (with constant slopes) operator `u` applies; nil for others.
        func activation(of u: Int) -> Activation? {
            let after = g.operators[u]
            switch name(u) {
            case "RELU": return .clamp(.relu)
            case "RELU6": return .clamp(.relu6)
            case "PRELU" where after.inputs.count == 2 && !isActivation(after.inputs[1]): return .prelu(after.inputs[1])
            default: return nil
            }
        }
        /// The only consumer of `t`, if `t` is an intermediate tensor with exactly one.
        func soleConsumer(_ t: Int) -> Int? {
            guard !graphOutputs.contains(t), let c = consumers[t], c.count == 1 else { return nil }
            return c[0]
        }

        for (i, op) in g.operators.enumerated() where name(i) == "PAD" {
            guard op.inputs.count >= 2, let p = try model.intConstant(op.inputs[1]), p.count == 8,
                  p.allSatisfy({ $0 >= 0 }), p[0] == 0, p[1] == 0, !graphOutputs.contains(op.outputs[0]),
                  let users = consumers[op.outputs[0]] else { continue }
            let out = op.outputs[0]
            if p[6] == 0 && p[7] == 0 {
                // Spatial: every consumer must be a conv reading it as its input.
                let convs = users.allSatisfy { u in
                    ["CONV_2D", "DEPTHWISE_CONV_2D"].contains(name(u)) && g.operators[u].inputs.first == out
                        && !g.operators[u].inputs.dropFirst().contains(out)
                }
                guard convs else { continue }
                for u in users {
                    var plan = plans[u] ?? Plan()
                    plan.replacedInputs[0] = op.inputs[0]
                    plan.extraPadding = NN.Padding(top: p[2], bottom: p[3], left: p[4], right: p[5])
                    plan.absorbed.append("PAD")
                    plans[u] = plan
                }
                absorbed.insert(i); folded[out] = users[0]
            } else if p[2...5].allSatisfy({ $0 == 0 }) && p[6] == 0, let u = soleConsumer(out), name(u) == "ADD" {
                // Channels added at the end, only to be summed with a wider partner.
                let add = g.operators[u]
                guard add.inputs.count == 2, add.inputs[0] != add.inputs[1], let k = add.inputs.firstIndex(of: out),
                      isActivation(add.inputs[1 - k]), g.tensors[add.inputs[1 - k]].shape == g.tensors[out].shape else { continue }
                var plan = plans[u] ?? Plan()
                plan.replacedInputs[k] = op.inputs[0]
                plan.paddedOperand = k
                plan.residual = true  // the add must run as NN.residualAdd to restore the padding
                plan.absorbed.append("PAD")
                plans[u] = plan
                absorbed.insert(i); folded[out] = u
            }
        }

        for (i, op) in g.operators.enumerated() where ["CONV_2D", "DEPTHWISE_CONV_2D"].contains(name(i)) {
            // A RELU or RELU6 op after a conv without a fused activation becomes the conv's clamp;
            // a PRELU after a CONV_2D is applied in the same output pass.
            var own = TFLiteActivation.none
            switch op.options {
            case .conv2D(let o): own = o.activation
            case .depthwiseConv2D(let o): own = o.activation
            default: continue
            }
            guard own == .none, op.outputs.count == 1, let u = soleConsumer(op.outputs[0]),
                  g.operators[u].inputs.first == op.outputs[0] else { continue }
            guard let after = activation(of: u) else { continue }
            if case .prelu = after, name(i) != "CONV_2D" { continue }
            var plan = plans[i] ?? Plan()
            plan.activation = after
            plan.outputs = g.operators[u].outputs
            plan.absorbed.append(name(u))
            plans[i] = plan
            absorbed.insert(u); folded[op.outputs[0]] = i
        }

        for (i, op) in g.operators.enumerated() where name(i) == "ADD" {
            guard op.inputs.count == 2, op.outputs.count == 1, isActivation(op.inputs[0]), isActivation(op.inputs[1]) else { continue }
            var plan = plans[i] ?? Plan()
            let a = g.tensors[op.inputs[0]].shape, b = g.tensors[op.inputs[1]].shape
            guard a.count == 4, a == b || plan.paddedOperand != nil else { continue }
            plan.residual = true
            if case .arithmetic(let act) = op.options, act != .none {
                plans[i] = plan
                continue
            }
            if let u = soleConsumer(op.outputs[0]), g.operators[u].inputs.first == op.outputs[0], let after = activation(of: u) {
                plan.activation = after
                plan.outputs = g.operators[u].outputs
                plan.absorbed.append(name(u))
                absorbed.insert(u); folded[op.outputs[0]] = i
            }
            plans[i] = plan
        }
    }
}
