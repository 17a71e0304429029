import Foundation

/// A value from the restricted unpickler. Containers live in an `PickleArena` and are referred to by
/// index, so a deep or cyclic pickle never recurses when released.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits: little-endian two's complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case ref(Int)
}

/// A tensor as torch pickles it: a view (byte offset, sizes, strides in elements) of a storage.
struct PickledTensor {
    let storageKey: String
    let dtype: DType
    let byteOffset: Int
    let size: [Int]
    let stride: [Int]
}

/// A storage reference from a persistent id. `byteOffset` is non-zero only for legacy storage views.
struct PickledStorage {
    let key: String
    let dtype: DType
    let byteOffset: Int
}

enum PickleNode {
    case tuple([PickleValue])
    case list([PickleValue])
    case dict(keys: [PickleValue], values: [PickleValue], index: [String: Int])
    /// A class or function named by GLOBAL/STACK_GLOBAL. Never imported or called.
    case global(module: String, name: String)
    /// An instance of a class not on the allowlist, made without running any of its code
    /// (NEWOBJ, copyreg._reconstructor); BUILD stores its state here.
    case object(module: String, name: String, args: [PickleValue], state: PickleValue?)
    case tensor(PickledTensor)
    case storage(PickledStorage)
    /// A harmless value we do not model (torch.device, ...): its description only.
    case opaque(String)
}

/// Ceilings on what one checkpoint's pickles may make us build. Without them a few kilobytes of
/// memo references can demand gigabytes: every value is cheap to refer to again and again.
struct PickleLimits {
    /// Values in the arena plus container slots filled by calls (OrderedDict(pairs), list(x), ...):
    /// this many plus 16 per byte of the pickle (each opcode makes at most a value or two), up to
    /// `maxObjects`.
    var objects = 1_000_000
    var maxObjects = 64_000_000
    /// Memo entries (PUT, BINPUT, MEMOIZE).
    var memo = 1 << 20
    /// Bytes of strings and bytes decoded, beyond the pickle's own size: a file can spell out its
    /// own length once, but not re-encode it without end.
    var extraBytes = 64 << 20
}

final class PickleArena {
    var nodes: [PickleNode] = []
    var limits = PickleLimits()
    /// Container slots filled by calls, counted against `limits.objects` with the nodes.
    var slots = 0
    /// Bytes of decoded strings and bytes.
    var decodedBytes = 0

    func add(_ n: PickleNode) -> PickleValue {
        nodes.append(n)
        return .ref(nodes.count - 1)
    }

    func node(_ v: PickleValue) -> PickleNode? {
        if case .ref(let i) = v { return nodes[i] }
        return nil
    }

    static func dictKey(_ k: PickleValue) -> String? {
        switch k {
        case .string(let s): return "s" + s
        case .int(let i): return "i\(i)"
        default: return nil
        }
    }

    /// Inserts or replaces, keeping first-insertion order as Python dicts do.
    func setItems(_ d: Int, _ pairs: [(PickleValue, PickleValue)]) -> Bool {
        guard case .dict(var keys, var values, var index) = nodes[d] else { return false }
        nodes[d] = .opaque("")  // keeps the arrays uniquely referenced while we mutate them
        for (k, v) in pairs {
            if let hk = PickleArena.dictKey(k), let at = index[hk] {
                values[at] = v
            } else {
                if let hk = PickleArena.dictKey(k) { index[hk] = keys.count }
                keys.append(k)
                values.append(v)
            }
        }
        nodes[d] = .dict(keys: keys, values: values, index: index)
        return true
    }

    func dictLookup(_ d: PickleNode, _ key: String) -> PickleValue? {
        guard case .dict(_, let values, let index) = d, let at = index["s" + key] else { return nil }
        return values[at]
    }

    func string(_ v: PickleValue) -> String? {
        if case .string(let s) = v { return s }
        return nil
    }

    func items(_ v: PickleValue) -> [PickleValue]? {
        switch node(v) {
        case .tuple(let a)?, .list(let a)?: return a
        default: return nil
        }
    }
}

/// A pickle reader that never imports or calls anything. Containers, numbers and strings are
/// decoded; the few callables torch checkpoints need (OrderedDict, tensor/parameter rebuilds,
/// torch.Size, set) are interpreted here; instances of other classes become inert records.
/// Calling any other callable is an error naming it: such a pickle could run code under
/// pickle.load, and reading on as if nothing happened would return garbage.
final class Unpickler {
    typealias PersistentLoad = (PickleValue, PickleArena) throws -> PickleValue

    let path: String
    let data: UnsafeRawBufferPointer
    private(set) var pos: Int
    let arena: PickleArena
    private let persistentLoad: PersistentLoad?
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(path: String, data: UnsafeRawBufferPointer, at pos: Int = 0, arena: PickleArena = PickleArena(),
         persistentLoad: PersistentLoad? = nil) {
        self.path = path
        self.data = data
        self.pos = pos
        self.arena = arena
        self.persistentLoad = persistentLoad
    }

    private func fail(_ why: String) -> FormatError { FormatError("\(path): \(why)") }
    /// A pickle that asks for more than the limits allow: the file is at fault, not an install.
    private func overBudget(_ why: String) -> FormatError { FormatError("\(path): \(why)", category: .input) }
    /// Set when a callable was refused, so a caller sniffing an unknown file can tell a pickle
    /// that tries to run code from bytes that are no pickle at all.
    private(set) var refusedCallable = false

    private func refuse(_ why: String) -> FormatError {
        refusedCallable = true
        return fail(why)
    }

    /// Stops a pickle that asks for more than `arena.limits` allow; checked after every opcode,
    /// each of which adds a bounded amount.
    private func checkBudget() throws {
        let l = arena.limits
        let objects = min(l.objects + 16 * data.count, l.maxObjects)
        if arena.nodes.count + arena.slots > objects {
            throw overBudget("pickle builds more than \(objects) objects; refusing it (a hostile or corrupted file?)")
        }
        if memo.count > l.memo {
            throw overBudget("pickle memo holds more than \(l.memo) entries; refusing it (a hostile or corrupted file?)")
        }
        if arena.decodedBytes > data.count + l.extraBytes {
            throw overBudget("pickle decodes more than \(data.count + l.extraBytes) bytes of strings; refusing it (a hostile or corrupted file?)")
        }
    }
    private var truncated: FormatError { fail("pickle ends early at byte \(data.count) (truncated?)") }

    // MARK: reading the byte stream

    private func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= data.count - pos else { throw truncated }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: data[pos..<(pos + n)])
    }

    private func u8() throws -> Int { Int(try take(1)[0]) }

    private func le(_ n: Int) throws -> UInt64 {
        let b = try take(n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
        return v
    }

    /// A length prefix, checked against what is left so nothing is allocated from an unchecked size.
    private func length(_ n: Int) throws -> Int {
        let v = try le(n)
        guard v <= UInt64(data.count - pos) else { throw truncated }
        return Int(v)
    }

    private func line() throws -> String {
        guard let nl = data[pos...].firstIndex(of: 0x0A) else { throw truncated }
        defer { pos = nl + 1 }
        arena.decodedBytes += nl - pos
        return String(decoding: UnsafeRawBufferPointer(rebasing: data[pos..<nl]), as: UTF8.self)
    }

    private func utf8(_ n: Int) throws -> String {
        let b = try take(n)
        arena.decodedBytes += n
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("pickle string is not valid UTF-8") }
        return s
    }

    /// Python 2 `str` (BINSTRING): bytes, read as Latin-1 so every byte maps to one character.
    private func latin1(_ n: Int) throws -> String {
        arena.decodedBytes += n
        return String(String.UnicodeScalarView(try take(n).map { Unicode.Scalar($0) }))
    }

    private func rawBytes(_ n: Int) throws -> [UInt8] {
        arena.decodedBytes += n
        return Array(try take(n))
    }

    // MARK: the stack

    private func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw fail("malformed pickle (stack underflow at byte \(pos))") }
        return stack.removeLast()
    }

    private func top() throws -> PickleValue {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw fail("malformed pickle (empty stack at byte \(pos))") }
        return v
    }

    private func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("malformed pickle (no MARK at byte \(pos))") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func pairs(_ items: [PickleValue]) throws -> [(PickleValue, PickleValue)] {
        guard items.count % 2 == 0 else { throw fail("malformed pickle (odd SETITEMS at byte \(pos))") }
        return stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
    }

    private func memoGet(_ i: Int) throws -> PickleValue {
        guard let v = memo[i] else { throw fail("malformed pickle (memo \(i) unset at byte \(pos))") }
        return v
    }

    private func global(_ module: String, _ name: String) -> PickleValue {
        arena.add(.global(module: module, name: name))
    }

    private func int(_ n: Int) throws -> PickleValue {
        let b = try take(n)
        if n == 0 { return .int(0) }
        if n <= 8 {
            var v: UInt64 = 0
            for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
            let shift = UInt64(64 - 8 * n)
            return .int(Int(Int64(bitPattern: v << shift) >> Int64(shift)))  // sign-extends
        }
        return .bigInt(Array(b))
    }

    // MARK: decoding

    /// Reads one pickle, up to and including its STOP; `pos` is then just past it.
    func load() throws -> PickleValue {
        while true {
            try checkBudget()
            let opAt = pos
            let op = try u8()
            switch op {
            case 0x80: _ = try u8()                                   // PROTO
            case 0x95: _ = try le(8)                                  // FRAME: framing is only a hint
            case 0x2E:                                                // STOP
                guard marks.isEmpty, stack.count == 1 else { throw fail("malformed pickle (STOP with \(stack.count) values)") }
                return stack.removeLast()
            case 0x28: marks.append(stack.count)                      // MARK
            case 0x30: _ = try pop()                                  // POP
            case 0x31: _ = try popMark()                              // POP_MARK
            case 0x32: stack.append(try top())                        // DUP
            case 0x4E: stack.append(.none)                            // NONE
            case 0x88: stack.append(.bool(true))                      // NEWTRUE
            case 0x89: stack.append(.bool(false))                     // NEWFALSE
            case 0x4B: stack.append(.int(try u8()))                   // BININT1
            case 0x4D: stack.append(.int(Int(try le(2))))             // BININT2
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: UInt32(try le(4))))))  // BININT
            case 0x8A: stack.append(try int(try u8()))                // LONG1
            case 0x8B: stack.append(try int(try length(4)))           // LONG4
            case 0x47:                                                // BINFLOAT, big-endian
                let b = try take(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x49:                                                // INT (text)
                let s = try line()
                if s == "01" || s == "00" { stack.append(.bool(s == "01")) }
                else if let v = Int(s) { stack.append(.int(v)) } else { throw fail("bad INT in pickle") }
            case 0x4C:                                                // LONG (text)
                let s = try line()
                guard let v = Int(s.hasSuffix("L") ? String(s.dropLast()) : s) else { throw fail("unsupported LONG in pickle") }
                stack.append(.int(v))
            case 0x46:                                                // FLOAT (text)
                guard let v = Double(try line()) else { throw fail("bad FLOAT in pickle") }
                stack.append(.float(v))
            case 0x8C: stack.append(.string(try utf8(try u8())))      // SHORT_BINUNICODE
            case 0x58: stack.append(.string(try utf8(try length(4)))) // BINUNICODE
            case 0x8D: stack.append(.string(try utf8(try length(8)))) // BINUNICODE8
            case 0x55: stack.append(.string(try latin1(try u8())))    // SHORT_BINSTRING
            case 0x54:                                                // BINSTRING (signed length)
                let n = Int32(bitPattern: UInt32(try le(4)))
                guard n >= 0 else { throw fail("negative BINSTRING length") }
                stack.append(.string(try latin1(Int(n))))
            case 0x53:                                                // STRING (text, quoted)
                stack.append(.string(try unquote(try line())))
            case 0x56: stack.append(.string(try line()))              // UNICODE (text)
            case 0x43: stack.append(.bytes(try rawBytes(try u8())))          // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(try rawBytes(try length(4))))     // BINBYTES
            case 0x8E, 0x96: stack.append(.bytes(try rawBytes(try length(8)))) // BINBYTES8, BYTEARRAY8
            case 0x29: stack.append(arena.add(.tuple([])))            // EMPTY_TUPLE
            case 0x85: stack.append(arena.add(.tuple([try pop()])))   // TUPLE1
            case 0x86:                                                // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(arena.add(.tuple([a, b])))
            case 0x87:                                                // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(arena.add(.tuple([a, b, c])))
            case 0x74: stack.append(arena.add(.tuple(try popMark()))) // TUPLE
            case 0x5D: stack.append(arena.add(.list([])))             // EMPTY_LIST
            case 0x6C: stack.append(arena.add(.list(try popMark())))  // LIST
            case 0x61: try append([try pop()])                        // APPEND
            case 0x65: try append(try popMark())                      // APPENDS
            case 0x7D: stack.append(arena.add(.dict(keys: [], values: [], index: [:])))  // EMPTY_DICT
            case 0x64:                                                // DICT
                let d = arena.add(.dict(keys: [], values: [], index: [:]))
                if case .ref(let i) = d { _ = arena.setItems(i, try pairs(try popMark())) }
                stack.append(d)
            case 0x73:                                                // SETITEM
                let v = try pop(), k = try pop()
                try setItems([(k, v)])
            case 0x75: try setItems(try pairs(try popMark()))         // SETITEMS
            case 0x8F: stack.append(arena.add(.list([])))             // EMPTY_SET, kept as a list
            case 0x90: try append(try popMark())                      // ADDITEMS
            case 0x91: stack.append(arena.add(.list(try popMark())))  // FROZENSET
            case 0x71: memo[try u8()] = try top()                     // BINPUT
            case 0x72: memo[Int(try le(4))] = try top()               // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                   // MEMOIZE
            case 0x70:                                                // PUT (text)
                guard let i = Int(try line()) else { throw fail("bad PUT in pickle") }
                memo[i] = try top()
            case 0x68: stack.append(try memoGet(try u8()))            // BINGET
            case 0x6A: stack.append(try memoGet(Int(try le(4))))      // LONG_BINGET
            case 0x67:                                                // GET (text)
                guard let i = Int(try line()) else { throw fail("bad GET in pickle") }
                stack.append(try memoGet(i))
            case 0x63:                                                // GLOBAL
                let module = try line(), name = try line()
                stack.append(global(module, name))
            case 0x93:                                                // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = arena.string(module), let n = arena.string(name) else { throw fail("malformed STACK_GLOBAL") }
                stack.append(global(m, n))
            case 0x52:                                                // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args))
            case 0x81:                                                // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try newObject(cls, args))
            case 0x92:                                                // NEWOBJ_EX (kwargs ignored: no code runs)
                _ = try pop()
                let args = try pop(), cls = try pop()
                stack.append(try newObject(cls, args))
            case 0x62:                                                // BUILD
                let state = try pop()
                try build(try top(), state)
            case 0x69:                                                // INST: calls the class, like REDUCE
                let module = try line(), name = try line()
                let args = arena.add(.tuple(try popMark()))
                stack.append(try call(global(module, name), args))
            case 0x6F:                                                // OBJ: calls the class, like REDUCE
                var items = try popMark()
                guard !items.isEmpty else { throw fail("malformed OBJ") }
                let cls = items.removeFirst()
                stack.append(try call(cls, arena.add(.tuple(items))))
            case 0x51, 0x50:                                          // BINPERSID, PERSID: data kept outside the pickle
                let pid = op == 0x51 ? try pop() : .string(try line())
                guard let persistentLoad else { throw fail("pickle refers to data outside it (a persistent id), and nothing holds such data here") }
                stack.append(try persistentLoad(pid, arena))
            case 0x82, 0x83, 0x84:
                throw fail("pickle uses the copyreg extension registry (EXT opcodes), which is not supported")
            case 0x97, 0x98:
                throw fail("pickle uses out-of-band buffers (protocol 5), which are not supported")
            default:
                throw fail(String(format: "unknown pickle opcode 0x%02x at byte %d; corrupted?", op, opAt))
            }
        }
    }

    private func unquote(_ s: String) throws -> String {
        guard s.count >= 2, let q = s.first, q == "'" || q == "\"", s.last == q else { throw fail("bad STRING in pickle") }
        var out = "", esc = false
        for c in s.dropFirst().dropLast() {
            if esc {
                switch c { case "n": out.append("\n"); case "t": out.append("\t"); case "r": out.append("\r"); default: out.append(c) }
                esc = false
            } else if c == "\\" { esc = true } else { out.append(c) }
        }
        return out
    }

    private func append(_ items: [PickleValue]) throws {
        guard case .ref(let i) = try top() else { throw fail("malformed pickle (APPEND to a non-list)") }
        // A list subclass made by NEWOBJ gets its items this way; it becomes a plain list.
        if case .object(_, _, _, nil) = arena.nodes[i] { arena.nodes[i] = .list([]) }
        guard case .list(var a) = arena.nodes[i] else { throw fail("malformed pickle (APPEND to a non-list)") }
        arena.nodes[i] = .opaque("")  // keeps `a` uniquely referenced
        a.append(contentsOf: items)
        arena.nodes[i] = .list(a)
    }

    private func setItems(_ pairs: [(PickleValue, PickleValue)]) throws {
        guard case .ref(let i) = try top() else { throw fail("malformed pickle (SETITEM on a non-dict)") }
        // A dict subclass made by NEWOBJ (Lightning's AttributeDict, ...) becomes a plain dict.
        if case .object(_, _, _, nil) = arena.nodes[i] { arena.nodes[i] = .dict(keys: [], values: [], index: [:]) }
        guard arena.setItems(i, pairs) else { throw fail("malformed pickle (SETITEM on a non-dict)") }
    }

    // MARK: the allowlist

    private func qualifiedName(_ v: PickleValue) -> (String, String)? {
        if case .global(let m, let n)? = arena.node(v) { return (m, n) }
        return nil
    }

    private static func canonical(_ module: String) -> String {
        switch module {
        case "__builtin__": return "builtins"
        case "copy_reg": return "copyreg"
        default: return module
        }
    }

    private func args(_ v: PickleValue, _ what: String) throws -> [PickleValue] {
        guard case .tuple(let a)? = arena.node(v) else { throw fail("\(what) called with malformed arguments") }
        return a
    }

    /// REDUCE, INST and OBJ: only allowlisted callables are interpreted; anything else is refused.
    private func call(_ callable: PickleValue, _ argsValue: PickleValue) throws -> PickleValue {
        guard let (module, name) = qualifiedName(callable) else {
            throw refuse("refusing to call a computed value (only named, allowlisted callables may be called)")
        }
        let full = Self.canonical(module) + "." + name
        func a() throws -> [PickleValue] { try args(argsValue, full) }
        switch full {
        case "collections.OrderedDict", "builtins.dict":
            let d = arena.add(.dict(keys: [], values: [], index: [:]))
            let given = try a()
            if let first = given.first, case .ref(let di) = d {
                guard let items = arena.items(first) else { throw fail("\(printable(full)) called with malformed arguments") }
                arena.slots += items.count
                try checkBudget()
                var kv: [(PickleValue, PickleValue)] = []
                for item in items {
                    guard let p = arena.items(item), p.count == 2 else { throw fail("\(printable(full)) called with malformed arguments") }
                    kv.append((p[0], p[1]))
                }
                _ = arena.setItems(di, kv)
            }
            return d
        case "builtins.set", "builtins.frozenset", "builtins.list", "builtins.tuple":
            let given = try a()
            let items = try given.first.map { v -> [PickleValue] in
                guard let x = arena.items(v) else { throw fail("\(printable(full)) called with malformed arguments") }
                return x
            } ?? []
            arena.slots += items.count
            return arena.add(full == "builtins.tuple" ? .tuple(items) : .list(items))
        case "torch.Size":
            let given = try a()
            return arena.add(.tuple(given.first.flatMap { arena.items($0) } ?? []))
        case "_codecs.encode":
            // Protocol 2 writes Python 3 bytes as _codecs.encode(str, 'latin1').
            let given = try a()
            guard let s = given.first.flatMap({ arena.string($0) }) else { throw fail("_codecs.encode called with malformed arguments") }
            arena.decodedBytes += s.utf8.count
            try checkBudget()
            let enc = given.count > 1 ? arena.string(given[1])?.lowercased() ?? "" : "utf-8"
            if enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1" {
                var out: [UInt8] = []
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw fail("_codecs.encode: string is not Latin-1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out)
            }
            return .bytes(Array(s.utf8))
        case "collections.defaultdict":
            return arena.add(.dict(keys: [], values: [], index: [:]))  // the factory is never called
        case "torch.device", "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath",
             "pathlib.PureWindowsPath", "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta",
             "builtins.slice", "builtins.complex", "builtins.range",
             "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
             "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
             // Whole modules pickled by torch 0.4-1.0 carry their backend and RNNs a placeholder.
             "torch.nn.backends.thnn._get_thnn_function_backend", "torch.backends.cudnn.rnn.Unserializable":
            // Plain-data constructors that training scripts leave in checkpoints (epochs as numpy
            // scalars, paths, dates). They hold no weights we read, so they stay opaque.
            return arena.add(.opaque(full))
        case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
            return try rebuildTensor(try a(), dtype: nil, full)
        case "torch._utils._rebuild_tensor_v3":
            let given = try a()
            guard given.count >= 7 else { throw fail("\(printable(full)) called with malformed arguments") }
            return try rebuildTensor(given, dtype: try dtypeGlobal(given[6]), full)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.nn.parameter.Parameter":
            guard let data = try a().first, case .tensor? = arena.node(data) else { throw fail("\(printable(full)) called without a tensor") }
            return data
        case "torch._tensor._rebuild_from_type_v2":
            // (func, type, args, state): func is called, so it must pass the allowlist too.
            let given = try a()
            guard given.count >= 3 else { throw fail("\(printable(full)) called with malformed arguments") }
            return try call(given[0], given[2])
        case "copyreg._reconstructor":
            // (cls, base, state): object.__new__(cls) for the common base; no code of cls runs.
            let given = try a()
            guard given.count >= 2, let (cm, cn) = qualifiedName(given[0]), let (bm, bn) = qualifiedName(given[1]) else {
                throw fail("\(printable(full)) called with malformed arguments")
            }
            guard Self.canonical(bm) == "builtins", ["object", "dict", "list"].contains(bn) else {
                throw refuse("refusing to call \(printable(bm)).\(printable(bn)) via copyreg._reconstructor (not on the allowlist)")
            }
            return arena.add(.object(module: cm, name: cn, args: [], state: nil))
        case "copyreg.__newobj__":
            let given = try a()
            guard let cls = given.first else { throw fail("\(printable(full)) called with malformed arguments") }
            return try newObject(cls, arena.add(.tuple(Array(given.dropFirst()))))
        default:
            throw refuse("refusing to call \(printable(module)).\(printable(name)) (not on the allowlist)")
        }
    }

    /// NEWOBJ: cls.__new__(cls, *args) makes an empty instance without running __init__; we keep
    /// an inert record of it. OrderedDict and set subclasses still get their container.
    private func newObject(_ cls: PickleValue, _ argsValue: PickleValue) throws -> PickleValue {
        guard let (module, name) = qualifiedName(cls) else { throw fail("malformed pickle (NEWOBJ of a non-class)") }
        switch Self.canonical(module) + "." + name {
        case "collections.OrderedDict", "builtins.dict": return arena.add(.dict(keys: [], values: [], index: [:]))
        case "builtins.set", "builtins.list": return arena.add(.list([]))
        case "torch.Size":  // older torch: torch.Size.__new__(torch.Size, (dims...))
            let given = try args(argsValue, "torch.Size")
            return arena.add(.tuple(given.first.flatMap { arena.items($0) } ?? []))
        default:
            return arena.add(.object(module: module, name: name, args: try args(argsValue, printable("\(module).\(name)")), state: nil))
        }
    }

    /// BUILD: sets an inert object's state. Python would call __setstate__; we only store it.
    private func build(_ target: PickleValue, _ state: PickleValue) throws {
        guard case .ref(let i) = target else { throw fail("malformed pickle (BUILD on a plain value)") }
        if case .object(let m, let n, let a, _) = arena.nodes[i] {
            arena.nodes[i] = .object(module: m, name: n, args: a, state: state)
        }
        // Dicts (OrderedDict._metadata), tensors (parameter state) and the rest keep their value.
    }

    private static let dtypeNames: [String: DType] = [
        "float32": .f32, "float": .f32, "float64": .f64, "double": .f64, "float16": .f16, "half": .f16,
        "bfloat16": .bf16, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32, "int16": .i16,
        "short": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
    ]

    private func dtypeGlobal(_ v: PickleValue) throws -> DType {
        guard let (module, name) = qualifiedName(v), module == "torch", let d = Self.dtypeNames[name] else {
            throw fail("unsupported tensor dtype in checkpoint")
        }
        return d
    }

    private func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard let items = arena.items(v) else { throw fail("tensor \(what) is not a tuple") }
        return try items.map {
            guard case .int(let i) = $0 else { throw fail("tensor \(what) holds a non-integer or an absurd value") }
            return i
        }
    }

    /// _rebuild_tensor(_v2/_v3)(storage, storage_offset, size, stride, ...): a view, checked later
    /// against the storage's bytes when it is materialised.
    private func rebuildTensor(_ a: [PickleValue], dtype: DType?, _ what: String) throws -> PickleValue {
        guard a.count >= 4, case .storage(let s)? = arena.node(a[0]), case .int(let offset) = a[1] else {
            throw fail("\(what) called with malformed arguments")
        }
        let size = try ints(a[2], "size"), stride = try ints(a[3], "stride")
        guard size.count == stride.count, offset >= 0, size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
            throw fail("\(what): tensor has a bad size \(size), stride \(stride) or offset \(offset)")
        }
        let dt = dtype ?? s.dtype
        let (off, o1) = offset.multipliedReportingOverflow(by: dt.byteSize)
        let (byteOffset, o2) = s.byteOffset.addingReportingOverflow(off)
        guard !o1, !o2 else { throw fail("\(what): tensor offset \(offset) is absurd") }
        return arena.add(.tensor(PickledTensor(storageKey: s.key, dtype: dt, byteOffset: byteOffset, size: size, stride: stride)))
    }
}
