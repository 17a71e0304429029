import GuiseTensor

/// TFLite's sparse tensor encoding (schema.fbs `SparsityParameters`).
///
/// A dense tensor of rank n, optionally cut into k-dimensional blocks, is viewed as n + k
/// dimensions: the n block-grid dimensions d0…dn−1 and the k in-block dimensions dn…dn+k−1,
/// where block dimension dn+b splits original dimension `blockMap[b]`. `traversalOrder` lists
/// these n + k dimensions outermost first, and `dimMetadata[p]` describes the p-th one in that
/// order: DENSE (every index 0..<denseSize is present) or SPARSE_CSR (the indices present under
/// parent position j are `arrayIndices[arraySegments[j] ..< arraySegments[j+1]]`). Walking the
/// levels in order enumerates the stored values in storage order.
public struct TFLiteSparsity {
    public enum Format: Int8, Sendable { case dense = 0, sparseCSR = 1 }

    public struct Dimension {
        public let format: Format
        public let denseSize: Int
        public let arraySegments: [Int]
        public let arrayIndices: [Int]
    }

    public let traversalOrder: [Int]
    public let blockMap: [Int]
    public let dimMetadata: [Dimension]

    public init(traversalOrder: [Int], blockMap: [Int], dimMetadata: [Dimension]) {
        self.traversalOrder = traversalOrder
        self.blockMap = blockMap
        self.dimMetadata = dimMetadata
    }

    init(table s: FBTable, fb: FlatBuffer) throws {
        traversalOrder = (try s.ints(0, Int32.self, "traversal_order") ?? []).map(Int.init)
        blockMap = (try s.ints(1, Int32.self, "block_map") ?? []).map(Int.init)
        dimMetadata = try s.tables(2, "dim_metadata").map { d in
            let f = try d.scalar(0, Int8.self, default: 0)
            guard let format = Format(rawValue: f) else { throw fb.fail("unknown sparse dimension format \(f)", d.pos) }
            return Dimension(format: format, denseSize: Int(try d.scalar(1, Int32.self, default: 0)),
                             arraySegments: try Self.indexVector(d, typeField: 2, valueField: 3, "array_segments"),
                             arrayIndices: try Self.indexVector(d, typeField: 4, valueField: 5, "array_indices"))
        }
    }

    /// The `SparseIndexVector` union: Int32Vector (1), Uint16Vector (2) or Uint8Vector (3).
    private static func indexVector(_ d: FBTable, typeField: Int, valueField: Int, _ name: String) throws -> [Int] {
        let kind = try d.scalar(typeField, UInt8.self, default: 0)
        guard kind != 0, let v = try d.table(valueField, name) else { return [] }
        switch kind {
        case 1: return (try v.ints(0, Int32.self, name) ?? []).map(Int.init)
        case 2: return (try v.ints(0, UInt16.self, name) ?? []).map(Int.init)
        case 3: return (try v.ints(0, UInt8.self, name) ?? []).map(Int.init)
        default: throw d.fb.fail("unknown sparse index vector type \(kind)", d.pos)
        }
    }

    /// Scatters the stored `values` into a dense row-major array of `shape`.
    public static func densify(values: [Float], shape: [Int], sparsity sp: TFLiteSparsity, what: String) throws -> [Float] {
        let n = shape.count, k = sp.blockMap.count
        func bad(_ why: String) -> FormatError { FormatError("\(what): bad sparsity parameters: \(why)") }
        guard sp.traversalOrder.count == n + k, sp.dimMetadata.count == n + k,
              Set(sp.traversalOrder) == Set(0..<(n + k)) else {
            throw bad("traversal order \(sp.traversalOrder) and \(sp.dimMetadata.count) dimensions for rank \(n) with \(k) block dimensions")
        }
        let (total, overflow) = shape.reduce((1, false)) { acc, d in
            let (m, o) = acc.0.multipliedReportingOverflow(by: max(d, 0)); return (m, acc.1 || o)
        }
        guard shape.allSatisfy({ $0 >= 0 }), !overflow, total <= 1 << 30 else { throw bad("impossible dense shape \(shape)") }
        // The dense copy is made at load: a few stored values must not ask for gigabytes. Real
        // sparse weights keep a third of their values or more (MediaPipe's full-range detector).
        guard total <= 64 * values.count + 4096 else {
            throw bad("dense shape \(shape) holds \(total) values for \(values.count) stored, over 64 times as many")
        }
        // Block size of in-block dimension n+b is the dense size of its level.
        var blockSize = [Int](repeating: 1, count: k)
        var blockOf = [Int](repeating: -1, count: n)
        for b in 0..<k {
            let orig = sp.blockMap[b]
            guard orig >= 0, orig < n, blockOf[orig] == -1 else { throw bad("block map \(sp.blockMap)") }
            let level = sp.traversalOrder.firstIndex(of: n + b)!
            blockSize[b] = sp.dimMetadata[level].denseSize
            guard blockSize[b] > 0, shape[orig] % blockSize[b] == 0 else {
                throw bad("block size \(blockSize[b]) does not divide dimension \(orig) of \(shape)")
            }
            blockOf[orig] = b
        }
        var expandedSize = [Int](repeating: 0, count: n + k)
        for d in 0..<n { expandedSize[d] = blockOf[d] >= 0 ? shape[d] / blockSize[blockOf[d]] : shape[d] }
        for b in 0..<k { expandedSize[n + b] = blockSize[b] }
        for (p, m) in sp.dimMetadata.enumerated() where m.format == .dense && m.denseSize != expandedSize[sp.traversalOrder[p]] {
            throw bad("dense level \(p) has size \(m.denseSize), expected \(expandedSize[sp.traversalOrder[p]])")
        }

        let denseStrides = Tensor.denseStrides(shape)
        var dense = [Float](repeating: 0, count: total)
        var index = [Int](repeating: 0, count: n + k)
        var written = 0

        func visit(_ level: Int, _ parent: Int) throws {
            if level == n + k {
                guard parent < values.count else { throw bad("value position \(parent) beyond the \(values.count) stored values") }
                var flat = 0
                for d in 0..<n {
                    let c = blockOf[d] >= 0 ? index[d] * blockSize[blockOf[d]] + index[n + blockOf[d]] : index[d]
                    flat += c * denseStrides[d]
                }
                dense[flat] = values[parent]
                written += 1
                return
            }
            let dim = sp.traversalOrder[level], m = sp.dimMetadata[level]
            switch m.format {
            case .dense:
                for i in 0..<m.denseSize {
                    index[dim] = i
                    try visit(level + 1, parent * m.denseSize + i)
                }
            case .sparseCSR:
                guard parent + 1 < m.arraySegments.count else {
                    throw bad("level \(level) has \(m.arraySegments.count) segment bounds, needs position \(parent + 1)")
                }
                let lo = m.arraySegments[parent], hi = m.arraySegments[parent + 1]
                guard lo >= 0, lo <= hi, hi <= m.arrayIndices.count else {
                    throw bad("level \(level) segment \(lo)..<\(hi) outside its \(m.arrayIndices.count) indices")
                }
                for j in lo..<hi {
                    let i = m.arrayIndices[j]
                    guard i >= 0, i < expandedSize[dim] else { throw bad("level \(level) index \(i) outside 0..<\(expandedSize[dim])") }
                    index[dim] = i
                    try visit(level + 1, j)
                }
            }
        }
        try visit(0, 0)
        guard written == values.count else { throw bad("the structure addresses \(written) values but \(values.count) are stored") }
        return dense
    }
}
