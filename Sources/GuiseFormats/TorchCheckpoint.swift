import Foundation

/// Bytes we allocated for a materialised strided view; the StoredTensor pointing in keeps it alive.
final class OwnedBytes {
    let buffer: UnsafeMutableRawBufferPointer
    init(count: Int) { buffer = .allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { buffer.deallocate() }
}

/// A PyTorch checkpoint read without Python: the zip format (`<archive>/data.pkl` with storages in
/// `<archive>/data/<key>`) and the legacy format (`_use_new_zipfile_serialization=False`).
///
/// The result is a flat state dict. Which part of the pickle becomes the state dict:
/// - `select` (a dotted key path such as "ema" or "model.module") picks a subtree explicitly;
/// - otherwise a dict with tensors among its values is used as it is, and a dict without any
///   descends into the first well-known key that leads to tensors (`state_dict`,
///   `model_state_dict`, `model`, ...), repeatedly;
/// - the chosen value is then flattened: nested dicts, lists and tuples give dotted names, and a
///   pickled nn.Module gives its parameters and persistent buffers under their state_dict names.
/// When every name starts with "module." (DataParallel), that prefix is stripped.
public struct TorchCheckpoint {
    public let path: String
    public let format: CheckpointFormat
    /// Tensor names in the order the checkpoint lists them.
    public let names: [String]
    public let tensors: [String: StoredTensor]
    private let owner: AnyObject

    public static let wellKnownKeys = [
        "state_dict", "model_state_dict", "model", "module", "net", "network", "params", "ema", "params_ema",
        "model_ema", "ema_model", "generator", "weights",
    ]

    public init(path: String, select: String? = nil, stripModulePrefix: Bool = true) throws {
        let file = try MappedFile(path: path)
        try self.init(path: path, bytes: file.bytes, owner: file, select: select, stripModulePrefix: stripModulePrefix)
    }

    /// Reads from bytes in memory that `owner` keeps alive; `path` only names them in messages.
    init(path: String, bytes b: UnsafeRawBufferPointer, owner: AnyObject, select: String? = nil,
         stripModulePrefix: Bool = true) throws {
        self.owner = owner
        self.path = path
        let (format, root, arena, storages) = try Self.unpickle(path, b)
        self.format = format

        var walker = Walker(path: path, arena: arena)
        let chosen = try select.map { try walker.descend(root, $0) } ?? walker.autoSelect(root)
        try walker.walk(chosen, "", 0)
        var found = walker.found
        if stripModulePrefix {
            while !found.isEmpty && found.allSatisfy({ $0.0.hasPrefix("module.") }) {
                found = found.map { (String($0.0.dropFirst("module.".count)), $0.1, $0.2) }
            }
        }

        // A materialised copy can exceed its storage only for overlapping views (stride 0), so sizes
        // beyond a few times the file are refused rather than allocated.
        // The same bound holds for all tensors together, views included: a tensor named many times
        // is no more data, but `convert` would write each name's bytes out again.
        let limit = b.count.multipliedReportingOverflow(by: 4).partialValue + (64 << 20)
        var tensors: [String: StoredTensor] = [:]
        var names: [String] = []
        var made: [Int: StoredTensor] = [:]  // by arena node: a tensor named twice is copied once
        var total = 0
        for (name, node, t) in found {
            guard tensors[name] == nil else {
                throw FormatError("\(path): two tensors are both named '\(printable(name))'")
            }
            guard let storage = storages.bytes[t.storageKey] else {
                throw FormatError("\(path): tensor '\(printable(name))' refers to storage '\(printable(t.storageKey))', which the file lacks; truncated?")
            }
            let s = try made[node] ?? Self.materialise(t, storage, name: name, path: path, limit: limit, owner: owner)
            made[node] = s
            total += s.bytes.count
            guard total <= limit else {
                throw FormatError("\(path): tensors total more than \(limit) bytes (\(names.count + 1) names, 4 × the file + 64 MiB); refusing a hostile or corrupted file",
                                  category: .input)
            }
            tensors[name] = s
            names.append(name)
        }
        self.names = names
        self.tensors = tensors
    }

    public subscript(name: String) -> StoredTensor? { tensors[name] }

    /// The file's pickle, unpickled (nothing called), and the storages its tensors refer to.
    static func unpickle(_ path: String, _ b: UnsafeRawBufferPointer) throws
        -> (format: CheckpointFormat, root: PickleValue, arena: PickleArena, storages: StorageTable) {
        let storages = StorageTable()
        let arena = PickleArena()
        if ZipArchive.looksLikeZip(b) {
            return (.torchZip, try Self.readZip(path, b, arena, storages), arena, storages)
        } else if b.count > 0 && b[0] == 0x80 {
            return (.torchLegacy, try Self.readLegacy(path, b, arena, storages), arena, storages)
        } else if b.count > 262 && String(decoding: UnsafeRawBufferPointer(rebasing: b[257..<262]), as: UTF8.self) == "ustar" {
            throw FormatError("\(path): a tar-format PyTorch checkpoint (torch < 0.4), which is not supported")
        }
        // Protocols 0 and 1 have no PROTO header. Such a pickle is no torch checkpoint, but one
        // that calls something is named for what it calls, as at the newer protocols.
        let sniff = Unpickler(path: path, data: b, arena: PickleArena())
        do { _ = try sniff.load() } catch let e as FormatError where sniff.refusedCallable { throw e } catch {}
        throw FormatError("\(path): not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    }

    // MARK: containers

    final class StorageTable {
        var bytes: [String: UnsafeRawBufferPointer] = [:]
        /// Legacy storages: their dtype from the pickle, their bytes found after it.
        var legacyDTypes: [String: DType] = [:]
    }

    private static func storageID(_ path: String, _ pid: PickleValue, _ arena: PickleArena, count: Int)
        throws -> (key: String, dtype: DType, numel: Int, rest: [PickleValue]) {
        guard let t = arena.items(pid), t.count >= count, arena.string(t[0]) == "storage",
              let key = arena.string(t[2]), case .int(let numel) = t[4], numel >= 0 else {
            throw FormatError("\(path): malformed storage reference in the pickle")
        }
        return (key, try storageDType(path, t[1], arena), numel, Array(t[count...]))
    }

    private static func storageDType(_ path: String, _ v: PickleValue, _ arena: PickleArena) throws -> DType {
        let types: [String: DType] = [
            "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
            "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
            "ByteStorage": .u8, "BoolStorage": .bool, "UntypedStorage": .u8,
        ]
        guard case .global(let module, let name)? = arena.node(v) else {
            throw FormatError("\(path): malformed storage type in the pickle")
        }
        guard ["torch", "torch.cuda", "torch.storage"].contains(module), let d = types[name] else {
            throw FormatError("\(path): unsupported storage type \(printable(module)).\(printable(name))")
        }
        return d
    }

    private static func byteCount(_ path: String, _ numel: Int, _ dtype: DType, _ key: String) throws -> Int {
        let (n, o) = numel.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o else { throw FormatError("\(path): storage '\(printable(key))' has an absurd size (\(numel) elements)") }
        return n
    }

    private static func readZip(_ path: String, _ b: UnsafeRawBufferPointer, _ arena: PickleArena,
                                _ storages: StorageTable) throws -> PickleValue {
        let zip = try ZipArchive(path: path, bytes: b)
        guard let pkl = zip.entries.first(where: {
            $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/", omittingEmptySubsequences: false).count == 2
        }) else {
            if zip.entries.contains(where: { $0.name.hasSuffix("/constants.pkl") }) {
                throw FormatError("\(path): a TorchScript archive (torch.jit.save), not a torch.save checkpoint; not supported")
            }
            throw FormatError("\(path): zip archive has no <archive>/data.pkl; not a PyTorch checkpoint")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        if let bo = zip.entry(prefix + "byteorder"),
           String(decoding: try zip.data(bo), as: UTF8.self) != "little" {
            throw FormatError("\(path): big-endian checkpoints are not supported")
        }
        let pickle = try zip.data(pkl)
        guard CRC32.of(pickle) == pkl.crc32 else { throw FormatError("\(path): \(printable(pkl.name)) fails its CRC check; the file is corrupted") }
        let u = Unpickler(path: path, data: pickle, arena: arena) { pid, arena in
            let s = try storageID(path, pid, arena, count: 5)
            guard let e = zip.entry(prefix + "data/" + s.key) else {
                throw FormatError("\(path): storage '\(printable(s.key))' is missing from the archive; truncated?")
            }
            let data = try zip.data(e)
            let need = try byteCount(path, s.numel, s.dtype, s.key)
            guard data.count >= need else {
                throw FormatError("\(path): storage '\(printable(s.key))' holds \(data.count) bytes but needs \(need); truncated?")
            }
            storages.bytes[s.key] = UnsafeRawBufferPointer(rebasing: data[0..<need])
            return arena.add(.storage(PickledStorage(key: s.key, dtype: s.dtype, byteOffset: 0)))
        }
        return try u.load()
    }

    private static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Legacy layout: pickles of the magic number, the protocol version, sys_info, the object and
    /// the storage keys; then each storage in key order as an 8-byte element count and its bytes.
    private static func readLegacy(_ path: String, _ b: UnsafeRawBufferPointer, _ arena: PickleArena,
                                   _ storages: StorageTable) throws -> PickleValue {
        var pos = 0
        func next(_ load: Unpickler.PersistentLoad? = nil) throws -> PickleValue {
            let u = Unpickler(path: path, data: b, at: pos, arena: arena, persistentLoad: load)
            let v = try u.load()
            pos = u.pos
            return v
        }
        guard case .bigInt(let magic) = try next(), magic == legacyMagic else {
            throw FormatError("\(path): a pickle without PyTorch's magic number; not a torch.save checkpoint")
        }
        guard case .int(1001) = try next() else { throw FormatError("\(path): unsupported legacy PyTorch protocol version") }
        let sysInfo = try next()
        if let d = arena.node(sysInfo), case .bool(false)? = arena.dictLookup(d, "little_endian") {
            throw FormatError("\(path): big-endian checkpoints are not supported")
        }
        let root = try next { pid, arena in
            if let t = arena.items(pid), t.count >= 2, arena.string(t[0]) == "module" {
                return t[1]  // a module class, sent with its source code so torch can warn of changes
            }
            let s = try storageID(path, pid, arena, count: 5)
            if let known = storages.legacyDTypes[s.key], known != s.dtype {
                throw FormatError("\(path): storage '\(printable(s.key))' is used with two dtypes")
            }
            storages.legacyDTypes[s.key] = s.dtype
            var byteOffset = 0
            // A view of a larger storage (old torch): (view_key, offset, size) in elements.
            if let view = s.rest.first, let v = arena.items(view) {
                guard v.count == 3, case .int(let off) = v[1], off >= 0 else {
                    throw FormatError("\(path): malformed storage view in the pickle")
                }
                byteOffset = try byteCount(path, off, s.dtype, s.key)
            }
            return arena.add(.storage(PickledStorage(key: s.key, dtype: s.dtype, byteOffset: byteOffset)))
        }
        guard let keys = arena.items(try next()) else { throw FormatError("\(path): malformed storage key list") }
        let f = ByteView(bytes: b)
        for k in keys {
            guard let key = arena.string(k), let dtype = storages.legacyDTypes[key] else {
                throw FormatError("\(path): storage key list names a storage the pickle never used")
            }
            guard f.has(pos, 8) else { throw FormatError("\(path): storage '\(printable(key))' is missing; truncated?") }
            let count = f.u64(pos)
            guard count <= UInt64(b.count) else { throw FormatError("\(path): storage '\(printable(key))' claims \(count) elements; corrupted") }
            let n = try byteCount(path, Int(count), dtype, key)
            guard f.has(pos + 8, n) else {
                throw FormatError("\(path): storage '\(printable(key))' needs \(n) bytes but the file ends first; truncated?")
            }
            storages.bytes[key] = UnsafeRawBufferPointer(rebasing: b[(pos + 8)..<(pos + 8 + n)])
            pos += 8 + n
        }
        return root
    }

    // MARK: tensors

    /// A dense row-major copy of a strided view; a contiguous view is a slice of the mapping.
    static func materialise(_ t: PickledTensor, _ storage: UnsafeRawBufferPointer, name: String, path: String,
                            limit: Int, owner: AnyObject) throws -> StoredTensor {
        let es = t.dtype.byteSize
        func bad(_ why: String) -> FormatError { FormatError("\(path): tensor '\(printable(name))' \(why)") }
        var count = 1, span = 0, overflow = false
        for (s, st) in zip(t.size, t.stride) {
            let (c, o1) = count.multipliedReportingOverflow(by: s)
            let (reach, o2) = max(s - 1, 0).multipliedReportingOverflow(by: st)
            let (sp, o3) = span.addingReportingOverflow(reach)
            count = c; span = sp; overflow = overflow || o1 || o2 || o3
        }
        let (bytes, o4) = count.multipliedReportingOverflow(by: es)
        guard !overflow, !o4, bytes <= limit else { throw bad("has an absurd size \(t.size)") }
        if count == 0 {
            return StoredTensor(dtype: t.dtype, shape: t.size, bytes: UnsafeRawBufferPointer(start: nil, count: 0), owner: nil)
        }
        // The last byte the view touches must lie inside the storage.
        let (lastElem, o5) = span.multipliedReportingOverflow(by: es)
        let (end, o6) = t.byteOffset.addingReportingOverflow(lastElem)
        guard !o5, !o6, end <= storage.count - es else {
            throw bad("(size \(t.size), stride \(t.stride)) reaches past its storage of \(storage.count) bytes")
        }
        var contiguous = true, expect = 1
        for (s, st) in zip(t.size, t.stride).reversed() where s != 1 {
            if st != expect { contiguous = false; break }
            expect *= s
        }
        if contiguous {
            return StoredTensor(dtype: t.dtype, shape: t.size,
                                bytes: UnsafeRawBufferPointer(rebasing: storage[t.byteOffset..<(t.byteOffset + bytes)]), owner: owner)
        }
        let out = OwnedBytes(count: bytes)
        let src = storage.baseAddress!, dst = out.buffer.baseAddress!
        let rank = t.size.count
        var index = [Int](repeating: 0, count: rank)
        // Innermost runs with stride 1 copy as one block; others element by element.
        let inner = t.size[rank - 1], innerStride = t.stride[rank - 1]
        var written = 0
        while written < bytes {
            var at = t.byteOffset
            for d in 0..<(rank - 1) { at += index[d] * t.stride[d] * es }
            if innerStride == 1 {
                (dst + written).copyMemory(from: src + at, byteCount: inner * es)
            } else {
                for j in 0..<inner { (dst + written + j * es).copyMemory(from: src + at + j * innerStride * es, byteCount: es) }
            }
            written += inner * es
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < t.size[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return StoredTensor(dtype: t.dtype, shape: t.size, bytes: UnsafeRawBufferPointer(out.buffer), owner: out)
    }
}

/// Walks unpickled values for tensors. A container shared by two parents (a module used twice)
/// is named under both, as torch's state_dict does; a container inside itself is not re-entered.
/// Budgets on visits, names and tensor references keep a hostile web of shared containers (a few
/// kilobytes can name a tensor 2^60 times) from taking forever or filling memory; probing a
/// subtree for tensors visits each shared container once.
private struct Walker {
    let path: String
    let arena: PickleArena
    var found: [(String, Int, PickledTensor)] = []
    private var onPath = Set<Int>()
    private var visits = 0, nameBytes = 0
    private var probeVisits = 0
    let maxVisits: Int
    let maxReferences: Int
    static let maxDepth = 200
    static let maxNameBytes = 64 << 20
    static let maxNameLength = 4096

    init(path: String, arena: PickleArena) {
        self.path = path
        self.arena = arena
        // Every container in the file may be reached a few times (shared submodules) and every
        // tensor named a few times (tied weights); far more is a web built to multiply.
        var tensorNodes = 0
        for n in arena.nodes { if case .tensor = n { tensorNodes += 1 } }
        maxVisits = 65_536 + 4 * arena.nodes.count
        maxReferences = 16_384 + 4 * tensorNodes
    }

    private func fail(_ why: String) -> FormatError { FormatError("\(path): \(why)", category: .input) }

    private func isTensor(_ v: PickleValue) -> Bool {
        if case .tensor? = arena.node(v) { return true }
        return false
    }

    /// The values `walk` would descend into from node `i`, in its order, with their names.
    private func children(_ i: Int) -> [(String?, PickleValue)] {
        switch arena.nodes[i] {
        case .dict(let keys, let values, _):
            if let params = arena.dictLookup(arena.nodes[i], "_parameters"), arena.dictLookup(arena.nodes[i], "_modules") != nil {
                return moduleChildren(arena.nodes[i], params)
            }
            return zip(keys, values).compactMap { k, x in Self.keyName(k).map { (Optional($0), x) } }
        case .list(let items), .tuple(let items):
            return items.enumerated().map { (Optional(String($0.offset)), $0.element) }
        case .object(_, _, _, let state?):
            // Instance state is its __dict__, or (__dict__, slots) for classes with __slots__.
            if case .tuple(let parts)? = arena.node(state), let first = parts.first { return [(nil, first)] }
            return [(nil, state)]
        default:
            return []
        }
    }

    /// An nn.Module's __dict__: parameters, persistent buffers, then submodules, as state_dict orders them.
    private func moduleChildren(_ module: PickleNode, _ params: PickleValue) -> [(String?, PickleValue)] {
        func entries(_ v: PickleValue?) -> [(String?, PickleValue)] {
            guard let v, case .dict(let keys, let values, _)? = arena.node(v) else { return [] }
            return zip(keys, values).compactMap { k, x in Self.keyName(k).map { ($0, x) } }
        }
        var out = entries(params).filter { isTensor($0.1) }
        var transient = Set<String>()
        if let set = arena.dictLookup(module, "_non_persistent_buffers_set"), let items = arena.items(set) {
            transient = Set(items.compactMap { arena.string($0) })
        }
        out += entries(arena.dictLookup(module, "_buffers")).filter { isTensor($0.1) && !transient.contains($0.0 ?? "") }
        out += entries(arena.dictLookup(module, "_modules"))
        return out
    }

    /// Whether a walk from `v` finds a tensor. Iterative and visiting each node once, so neither
    /// depth nor sharing makes it costly; all probes together share one budget.
    private mutating func hasTensors(_ v: PickleValue) throws -> Bool {
        var seen = Set<Int>(), todo = [v]
        while let x = todo.popLast() {
            guard case .ref(let i) = x, seen.insert(i).inserted else { continue }
            if case .tensor = arena.nodes[i] { return true }
            probeVisits += 1
            guard probeVisits <= maxVisits else {
                throw fail("checkpoint structure is too large to search (more than \(maxVisits) containers visited); refusing it")
            }
            todo += children(i).map { $0.1 }
        }
        return false
    }

    private static func keyName(_ k: PickleValue) -> String? {
        switch k {
        case .string(let s): return s
        case .int(let i): return String(i)
        default: return nil
        }
    }

    /// A child's name; nil for an instance's state, which adds no name.
    private static func join(_ prefix: String, _ name: String?) -> String {
        guard let name else { return prefix }
        return prefix.isEmpty ? name : prefix + "." + name
    }

    mutating func autoSelect(_ root: PickleValue) throws -> PickleValue {
        var v = root
        for _ in 0..<Self.maxDepth {
            guard let d = arena.node(v), case .dict(_, let values, _) = d, !values.contains(where: isTensor) else { break }
            var next: PickleValue?
            for key in TorchCheckpoint.wellKnownKeys {
                if let sub = arena.dictLookup(d, key), try hasTensors(sub) { next = sub; break }
            }
            guard let n = next else { break }
            v = n
        }
        return v
    }

    func descend(_ root: PickleValue, _ keyPath: String) throws -> PickleValue {
        var v = root
        for key in keyPath.split(separator: ".").map(String.init) {
            guard let d = arena.node(v), case .dict(let keys, _, _) = d else {
                throw FormatError("\(path): cannot select '\(printable(keyPath))': '\(printable(key))' is not inside a dict")
            }
            guard let sub = arena.dictLookup(d, key) else {
                let have = keys.compactMap(Self.keyName).prefix(20).map { printable($0, max: 60) }.joined(separator: ", ")
                throw FormatError("\(path): cannot select '\(printable(keyPath))': no key '\(printable(key))' (keys: \(have))")
            }
            v = sub
        }
        return v
    }

    mutating func walk(_ v: PickleValue, _ prefix: String, _ depth: Int) throws {
        guard depth < Self.maxDepth else { throw fail("checkpoint nests deeper than \(Self.maxDepth) levels") }
        guard case .ref(let i) = v else { return }
        if case .tensor(let t) = arena.nodes[i] {
            guard found.count < maxReferences else {
                throw fail("checkpoint names its tensors more than \(maxReferences) times (shared containers?); refusing it")
            }
            found.append((prefix, i, t))
            return
        }
        visits += 1
        guard visits <= maxVisits else {
            throw fail("checkpoint structure is too large to walk (more than \(maxVisits) containers visited; shared containers?)")
        }
        guard onPath.insert(i).inserted else { return }
        defer { onPath.remove(i) }
        for (name, x) in children(i) {
            let full = Self.join(prefix, name)
            nameBytes += full.utf8.count
            guard full.utf8.count <= Self.maxNameLength else {
                throw fail("a tensor name in the checkpoint is longer than \(Self.maxNameLength) bytes: '\(printable(full, max: 60))'")
            }
            guard nameBytes <= Self.maxNameBytes else {
                throw fail("checkpoint tensor names total more than \(Self.maxNameBytes) bytes; refusing it")
            }
            try walk(x, full, depth + 1)
        }
    }
}
