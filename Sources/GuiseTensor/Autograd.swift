import CThreadPool

/// One recorded op: where its inputs' gradients go, and how to turn the output's gradient
/// into theirs.
///
/// It points at the ops that made its inputs, not at the input tensors, so an intermediate
/// tensor's memory is freed as soon as nothing else holds it; only what a backward closure
/// captures stays alive (as in PyTorch, where an add saves nothing and a product saves its
/// operands). This is what keeps the peak memory of a UNet's backward pass down.
public final class GradFn {
    public let name: String
    let edges: [Edge]
    /// Given dL/d(output), returns dL/d(input) for each input (nil where none flows).
    /// Kept after use: a graph may be back-propagated more than once, e.g. through a value a
    /// network caches across calls.
    let backward: (Tensor) -> [Tensor?]

    enum Edge {
        /// The input was made by a recorded op; its gradient flows on to that op.
        case op(GradFn, shape: [Int])
        /// The input is a leaf that requires a gradient; it is accumulated into `grad`.
        case leaf(Tensor)
        /// The input needs no gradient.
        case none
    }

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.edges = inputs.map { t in
            if let fn = t.gradFn { return .op(fn, shape: t.shape) }
            return t.requiresGrad ? .leaf(t) : .none
        }
        self.backward = backward
    }
}

/// Reverse-mode autodiff. The tape is the graph of `GradFn`s hanging off outputs, and it
/// exists only when an op's input requires a gradient: plain inference records nothing.
public enum Autograd {
    /// Nested `noGrad` scopes around the current thread. Per thread, not per process: ops are
    /// recorded on the thread that calls them (the engine's pool workers run kernel loops only),
    /// so two pipelines on two threads each see only their own switch.
    @inline(__always)
    static var disabledDepth: Int32 {
        get { guise_grad_disabled() }
        set { guise_grad_set_disabled(newValue) }
    }

    /// False inside `noGrad` on this thread.
    public static var isEnabled: Bool { disabledDepth == 0 }

    /// Runs `body` with recording switched off on this thread, e.g. a forward pass through
    /// parameters that require gradients when only the output is wanted.
    public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
        disabledDepth += 1
        defer { disabledDepth -= 1 }
        return try body()
    }

    /// Runs `body` with recording switched on even inside `noGrad` or a backward closure: what
    /// gradient checkpointing needs to rebuild a segment's graph during the backward pass.
    public static func enableGrad<T>(_ body: () throws -> T) rethrows -> T {
        let saved = disabledDepth
        disabledDepth = 0
        defer { disabledDepth = saved }
        return try body()
    }

    @inline(__always)
    public static func shouldRecord(_ a: Tensor) -> Bool {
        disabledDepth == 0 && (a.requiresGrad || a.gradFn != nil)
    }

    @inline(__always)
    public static func shouldRecord(_ a: Tensor, _ b: Tensor) -> Bool {
        disabledDepth == 0 && (a.requiresGrad || a.gradFn != nil || b.requiresGrad || b.gradFn != nil)
    }

    public static func shouldRecord(_ ts: [Tensor?]) -> Bool {
        disabledDepth == 0 && ts.contains { $0.map { $0.requiresGrad || $0.gradFn != nil } ?? false }
    }
}

extension Tensor {
    var tracksGradient: Bool { requiresGrad || gradFn != nil }

    /// Attaches the op that made `self`. Call only after `Autograd.shouldRecord` said yes.
    public func record(_ name: String, _ inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        gradFn = GradFn(name: name, inputs: inputs, backward: backward)
    }

    /// Back-propagates from this tensor, adding into `grad` of every leaf that requires one.
    /// `seed` defaults to ones, which for a scalar is dL/dL = 1.
    public func backward(seed: Tensor? = nil) {
        precondition(tracksGradient, "backward() on a tensor that does not depend on anything requiring a gradient")
        let seedGrad = seed ?? Tensor(shape: shape, repeating: 1)
        precondition(seedGrad.shape == shape, "seed shape \(seedGrad.shape) for output \(shape)")
        guard let root = gradFn else {
            accumulateGrad(seedGrad)
            return
        }

        // Topological order of the ops by iterative DFS, so deep networks can't overflow the stack.
        // An op is marked when expanded, not when pushed: only then does every op come after
        // all the ops it feeds, whatever order the inputs are met in.
        var order: [GradFn] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradFn, Bool)] = [(root, false)]
        while let (fn, expanded) = stack.popLast() {
            if expanded { order.append(fn); continue }
            if !visited.insert(ObjectIdentifier(fn)).inserted { continue }
            stack.append((fn, true))
            for case .op(let input, _) in fn.edges where !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seedGrad]
        Autograd.noGrad {
            for fn in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(fn)) else { continue }
                let inputGrads = fn.backward(g)
                precondition(inputGrads.count == fn.edges.count, "\(fn.name) backward returned \(inputGrads.count) grads for \(fn.edges.count) inputs")
                for (edge, ig) in zip(fn.edges, inputGrads) {
                    guard let ig else { continue }
                    switch edge {
                    case .none:
                        continue
                    case .leaf(let t):
                        precondition(ig.shape == t.shape, "\(fn.name) backward: grad \(ig.shape) for input \(t.shape)")
                        t.accumulateGrad(ig)
                    case .op(let input, let shape):
                        precondition(ig.shape == shape, "\(fn.name) backward: grad \(ig.shape) for input \(shape)")
                        let key = ObjectIdentifier(input)
                        grads[key] = grads[key].map { $0.adding(ig) } ?? ig
                    }
                }
            }
        }
    }

    private func accumulateGrad(_ g: Tensor) {
        grad = grad.map { $0.adding(g) } ?? g.contiguous()
    }

    /// Breaks the graph hanging off this tensor so its memory can be freed.
    public func releaseGraph() { gradFn = nil }
}

/// The value of a scalar function and its gradient with respect to `x`.
/// This is the call classifier guidance makes every step: `x` itself is not modified,
/// and no gradient is accumulated into any parameter unless it requires one.
public func valueAndGradient(at x: Tensor, _ f: (Tensor) throws -> Tensor) rethrows -> (value: Tensor, gradient: Tensor) {
    let leaf = x.detached()
    leaf.requiresGrad = true
    let y = try f(leaf)
    precondition(y.count == 1, "valueAndGradient needs a scalar function, got shape \(y.shape)")
    if !y.tracksGradient { return (y, Tensor(zeros: x.shape)) }
    y.backward()
    return (y.detached(), leaf.grad ?? Tensor(zeros: x.shape))
}

/// Vector–Jacobian product: d sum(f(x) ⊙ seed) / dx.
public func vectorJacobianProduct(at x: Tensor, seed: Tensor, _ f: (Tensor) throws -> Tensor) rethrows -> (value: Tensor, gradient: Tensor) {
    let leaf = x.detached()
    leaf.requiresGrad = true
    let y = try f(leaf)
    if !y.tracksGradient { return (y, Tensor(zeros: x.shape)) }
    y.backward(seed: seed)
    return (y.detached(), leaf.grad ?? Tensor(zeros: x.shape))
}
