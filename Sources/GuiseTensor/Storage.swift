import Foundation

/// A reference-counted float buffer. Freed buffers go back to `BufferPool`,
/// so a sampling loop that allocates the same shapes every step stops calling malloc.
public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised memory; callers must write every element they later read.
    public init(uninitializedCount count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.take(count)
    }

    public convenience init(zeroedCount count: Int) {
        self.init(uninitializedCount: count)
        pointer.update(repeating: 0, count: count)
    }

    deinit { BufferPool.shared.give(pointer, count: count) }
}

/// Size-keyed free lists with a cap on the bytes held, so reuse never turns into a leak.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Most floats kept idle in the pool (default 1 Gi floats = 4 GiB would be too much; 256 Mi floats = 1 GiB).
    public var capacity = 256 << 20
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var held = 0
    private let lock = NSLock()

    /// Allocations and reuses since start; tests use these to show a loop stops allocating.
    public private(set) var allocations = 0
    public private(set) var reuses = 0

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        lock.lock()
        if var list = free[n], let p = list.popLast() {
            free[n] = list.isEmpty ? nil : list
            held -= n
            reuses += 1
            lock.unlock()
            return p
        }
        allocations += 1
        lock.unlock()
        // 64-byte alignment keeps SIMD loads and OpenBLAS on their fast paths.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func give(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let n = max(count, 1)
        lock.lock()
        if held + n <= capacity {
            free[n, default: []].append(p)
            held += n
            lock.unlock()
        } else {
            lock.unlock()
            UnsafeMutableRawPointer(p).deallocate()
        }
    }

    /// Returns every idle buffer to the system.
    public func drain() {
        lock.lock()
        for (_, list) in free { for p in list { UnsafeMutableRawPointer(p).deallocate() } }
        free = [:]
        held = 0
        lock.unlock()
    }
}
