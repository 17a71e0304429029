import Foundation

/// A plain value from a pickled module's attributes (its `__dict__`): what a network needs to
/// rebuild a layer's settings (kernel_size, stride, padding, eps, num_parameters, training, …).
public enum TorchAttribute: Equatable, Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// A tuple or list of numbers, integers widened to Double only when the list mixes them.
    case ints([Int])
    case floats([Double])

    /// An int, or a tuple of equal ints (PyTorch's `_pair` of one value), as one int.
    public var int: Int? {
        switch self {
        case .int(let i): return i
        case .ints(let a) where !a.isEmpty && a.allSatisfy({ $0 == a[0] }): return a[0]
        default: return nil
        }
    }

    /// The value as a list of ints (an int alone becomes one element).
    public var ints: [Int]? {
        switch self {
        case .int(let i): return [i]
        case .ints(let a): return a
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }

    /// How the value reads in a message (strings escaped).
    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return String(d)
        case .string(let s): return "'\(printable(s, max: 60))'"
        case .ints(let a): return "(" + a.map(String.init).joined(separator: ", ") + ")"
        case .floats(let a): return "(" + a.map { String($0) }.joined(separator: ", ") + ")"
        }
    }
}

/// An `nn.Module` as torch.save pickles a whole model: an inert record of its class name, its
/// plain attributes, its parameters and buffers (read from the file, never computed) and its
/// submodules. Nothing of the module's code exists or runs; the record is what its `__dict__`
/// held when it was pickled.
public final class TorchModule {
    /// The class as the pickle names it, e.g. "torch.nn.modules.conv" and "Conv2d".
    public let module: String
    public let name: String
    public let attributes: [String: TorchAttribute]
    /// In registration order, as state_dict lists them; nil where the module holds None (bias=False).
    public let parameters: [(name: String, tensor: StoredTensor?)]
    /// Persistent buffers only (non-persistent ones are not part of a state dict).
    public let buffers: [(name: String, tensor: StoredTensor?)]
    public let children: [(name: String, module: TorchModule?)]

    init(module: String, name: String, attributes: [String: TorchAttribute], parameters: [(name: String, tensor: StoredTensor?)],
         buffers: [(name: String, tensor: StoredTensor?)], children: [(name: String, module: TorchModule?)]) {
        self.module = module
        self.name = name
        self.attributes = attributes
        self.parameters = parameters
        self.buffers = buffers
        self.children = children
    }

    /// "module.Class", escaped for messages.
    public var className: String { printable(module) + "." + printable(name) }

    public subscript(child: String) -> TorchModule? {
        children.first { $0.name == child }?.module
    }

    /// `training` as pickled (false when absent).
    public var training: Bool { attributes["training"] == .bool(true) }

    /// The state dict torch would give (parameters, then persistent buffers, then submodules,
    /// depth first) and every submodule by its dotted prefix ("" for this one). A module shared
    /// by two parents is listed under both, as state_dict does; a web of shared modules that
    /// would multiply names past `limit` entries is refused.
    public func flattened(limit: Int = 1 << 16) throws -> (tensors: [(String, StoredTensor)], modules: [(String, TorchModule)]) {
        var tensors: [(String, StoredTensor)] = [], modules: [(String, TorchModule)] = []
        var todo: [(String, TorchModule)] = [("", self)]
        while let (prefix, m) = todo.popLast() {
            modules.append((prefix, m))
            func join(_ n: String) -> String { prefix.isEmpty ? n : prefix + "." + n }
            for (n, t) in m.parameters + m.buffers { if let t { tensors.append((join(n), t)) } }
            guard tensors.count + modules.count <= limit else {
                throw FormatError("pickled module names more than \(limit) tensors and submodules (shared submodules?); refusing it",
                                  category: .input)
            }
            for (n, c) in m.children.reversed() { if let c { todo.append((join(n), c)) } }
        }
        return (tensors, modules)
    }
}

extension TorchCheckpoint {
    /// The pickled `nn.Module` in a PyTorch checkpoint (a whole model saved with torch.save), or
    /// nil when the file holds no module where it is looked for: at `select` (a dotted key path,
    /// e.g. "model") when given; otherwise the pickle's root if it is a module, or the first
    /// well-known key of a root dict ("model", …) whose value is one. Nothing is executed.
    public static func pickledModule(path: String, select: String? = nil) throws -> TorchModule? {
        let file = try MappedFile(path: path)
        let (_, root, arena, storages) = try unpickle(path, file.bytes)
        var builder = ModuleBuilder(path: path, arena: arena, storages: storages, owner: file,
                                    limit: file.bytes.count.multipliedReportingOverflow(by: 4).partialValue + (64 << 20))
        var v = root
        if let select {
            for key in select.split(separator: ".").map(String.init) {
                guard let d = arena.node(v), let sub = arena.dictLookup(d, key) else {
                    throw FormatError("\(path): cannot select '\(printable(select))': no key '\(printable(key))'")
                }
                v = sub
            }
        } else if builder.moduleState(v) == nil, let d = arena.node(v), case .dict = d {
            guard let key = wellKnownKeys.first(where: { arena.dictLookup(d, $0).map { builder.moduleState($0) != nil } ?? false }) else {
                return nil
            }
            v = arena.dictLookup(d, key)!
        }
        guard builder.moduleState(v) != nil else { return nil }
        return try builder.build(v, depth: 0)
    }
}

/// Turns inert pickled objects into `TorchModule` records. Each object is built once (shared
/// submodules stay shared), a module inside itself is refused, depth is bounded, and tensors are
/// materialised once each, their bytes counted against `limit`.
private struct ModuleBuilder {
    let path: String
    let arena: PickleArena
    let storages: TorchCheckpoint.StorageTable
    let owner: AnyObject
    let limit: Int
    var built: [Int: TorchModule] = [:]
    var tensors: [Int: StoredTensor] = [:]
    var onPath = Set<Int>()
    var bytes = 0
    static let maxDepth = 200

    init(path: String, arena: PickleArena, storages: TorchCheckpoint.StorageTable, owner: AnyObject, limit: Int) {
        self.path = path
        self.arena = arena
        self.storages = storages
        self.owner = owner
        self.limit = limit
    }

    private func fail(_ why: String) -> FormatError { FormatError("\(path): \(why)") }

    /// The instance dict of a pickled nn.Module (an object whose state holds `_parameters` and
    /// `_modules`), with its class; nil for anything else.
    func moduleState(_ v: PickleValue) -> (module: String, name: String, state: PickleNode)? {
        guard case .object(let module, let name, _, let state?)? = arena.node(v) else { return nil }
        var dict = arena.node(state)
        // Classes with __slots__ pickle (__dict__, slots).
        if case .tuple(let parts)? = dict, let first = parts.first { dict = arena.node(first) }
        guard let d = dict, case .dict = d, arena.dictLookup(d, "_parameters") != nil, arena.dictLookup(d, "_modules") != nil else {
            return nil
        }
        return (module, name, d)
    }

    private func entries(_ v: PickleValue?) -> [(String, PickleValue)] {
        entries(node: v.flatMap { arena.node($0) })
    }

    /// A dict's string-keyed entries in insertion order.
    private func entries(node: PickleNode?) -> [(String, PickleValue)] {
        guard case .dict(let keys, let values, _)? = node else { return [] }
        return zip(keys, values).compactMap { k, x in arena.string(k).map { ($0, x) } }
    }

    private func attribute(_ v: PickleValue) -> TorchAttribute? {
        switch v {
        case .none: return TorchAttribute.none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .float(let d): return .float(d)
        case .string(let s): return .string(s)
        case .ref:
            guard let items = arena.items(v), items.count <= 16 else { return nil }
            var ints: [Int] = [], floats: [Double] = []
            for x in items {
                switch x {
                case .int(let i): ints.append(i); floats.append(Double(i))
                case .float(let d): floats.append(d)
                default: return nil
                }
            }
            return ints.count == items.count ? .ints(ints) : .floats(floats)
        default: return nil
        }
    }

    private mutating func tensor(_ v: PickleValue, _ name: String) throws -> StoredTensor? {
        if case .none = v { return nil }
        guard case .ref(let i) = v, case .tensor(let t) = arena.nodes[i] else {
            throw fail("'\(printable(name))' of a pickled module is neither a tensor nor None")
        }
        if let made = tensors[i] { return made }
        guard let storage = storages.bytes[t.storageKey] else {
            throw fail("tensor '\(printable(name))' refers to storage '\(printable(t.storageKey))', which the file lacks; truncated?")
        }
        let s = try TorchCheckpoint.materialise(t, storage, name: name, path: path, limit: limit, owner: owner)
        bytes += s.bytes.count
        guard bytes <= limit else {
            throw FormatError("\(path): tensors total more than \(limit) bytes (4 × the file + 64 MiB); refusing a hostile or corrupted file",
                              category: .input)
        }
        tensors[i] = s
        return s
    }

    mutating func build(_ v: PickleValue, depth: Int) throws -> TorchModule {
        guard depth < Self.maxDepth else { throw FormatError("\(path): pickled modules nest deeper than \(Self.maxDepth) levels", category: .input) }
        guard case .ref(let i) = v, let (module, name, d) = moduleState(v) else {
            throw fail("a submodule of the pickled model is not an nn.Module record")
        }
        if let m = built[i] { return m }
        guard onPath.insert(i).inserted else { throw FormatError("\(path): a pickled module contains itself", category: .input) }
        defer { onPath.remove(i) }
        var attributes: [String: TorchAttribute] = [:]
        for (k, x) in entries(node: d) where !["_parameters", "_buffers", "_modules"].contains(k) {
            if let a = attribute(x) { attributes[k] = a }
        }
        var transient = Set<String>()
        if let set = arena.dictLookup(d, "_non_persistent_buffers_set"), let items = arena.items(set) {
            transient = Set(items.compactMap { arena.string($0) })
        }
        var parameters: [(name: String, tensor: StoredTensor?)] = []
        for (k, x) in entries(arena.dictLookup(d, "_parameters")) { parameters.append((k, try tensor(x, k))) }
        var buffers: [(name: String, tensor: StoredTensor?)] = []
        for (k, x) in entries(arena.dictLookup(d, "_buffers")) where !transient.contains(k) { buffers.append((k, try tensor(x, k))) }
        var children: [(name: String, module: TorchModule?)] = []
        for (k, x) in entries(arena.dictLookup(d, "_modules")) {
            if case .none = x { children.append((k, nil)); continue }
            children.append((k, try build(x, depth: depth + 1)))
        }
        let m = TorchModule(module: module, name: name, attributes: attributes, parameters: parameters, buffers: buffers, children: children)
        built[i] = m
        return m
    }
}
