import GuiseTensor

/// A tensor as a file stores it: dtype, shape and little-endian bytes, not yet widened.
/// `bytes` points into a mapping or buffer that `owner` keeps alive.
public struct StoredTensor {
    public let dtype: DType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer
    let owner: AnyObject?

    public init(dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject?) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
    }

    public var count: Int { shape.reduce(1, *) }

    /// The values as a float32 tensor. f16/bf16 widen exactly; integers convert by value.
    public func toTensor() -> Tensor {
        let t = Tensor(uninitialized: shape)
        let n = count
        if n == 0 { return t }  // an empty tensor may have no bytes at all
        let dst = t.data
        let src = bytes.baseAddress!
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4)
        case .f16:
            for i in 0..<n { dst[i] = HalfFloat.f16ToF32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<n { dst[i] = HalfFloat.bf16ToF32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f64:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .i64:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .i16:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .i8:
            for i in 0..<n { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool:
            for i in 0..<n { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        }
        return t
    }
}
