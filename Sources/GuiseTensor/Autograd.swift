/// One recorded op: its inputs and how to turn the output's gradient into theirs.
public final class GradFn {
    public let name: String
    let inputs: [Tensor]
    /// Given dL/d(output), returns dL/d(input) for each input (nil where none flows).
    let backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Reverse-mode autodiff. The tape is the graph of `GradFn`s hanging off outputs, and it
/// exists only when an op's input requires a gradient: plain inference records nothing.
public enum Autograd {
    nonisolated(unsafe) static var disabledDepth = 0

    /// False inside `noGrad`.
    public static var isEnabled: Bool { disabledDepth == 0 }

    /// Runs `body` with recording switched off, e.g. a forward pass through parameters that
    /// require gradients when only the output is wanted.
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

        // Topological order by iterative DFS, so deep networks can't overflow the stack.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            for i in t.gradFn?.inputs ?? [] where i.tracksGradient && !visited.contains(ObjectIdentifier(i)) {
                stack.append((i, false))
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seedGrad]
        Autograd.noGrad {
            for t in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                if t.requiresGrad && t.gradFn == nil {
                    t.grad = t.grad.map { $0.adding(g) } ?? g.contiguous()
                }
                guard let fn = t.gradFn else { continue }
                let inputGrads = fn.backward(g)
                precondition(inputGrads.count == fn.inputs.count, "\(fn.name) backward returned \(inputGrads.count) grads for \(fn.inputs.count) inputs")
                for (input, ig) in zip(fn.inputs, inputGrads) {
                    guard let ig, input.tracksGradient else { continue }
                    precondition(ig.shape == input.shape, "\(fn.name) backward: grad \(ig.shape) for input \(input.shape)")
                    let key = ObjectIdentifier(input)
                    grads[key] = grads[key].map { $0.adding(ig) } ?? ig
                }
            }
        }
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
