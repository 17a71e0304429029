import Foundation

/// A reference-counted float buffer. Freed buffers go back to `BufferPool`,
/// so a sampling loop that allocates the same shapes every step stops calling malloc.
public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// Floats in the buffer the pool handed out (at least `count`).
    let capacity: Int

    /// Uninitialised memory; callers must write every element they later read.
    public init(uninitializedCount count: Int) {
        self.count = count
        (self.pointer, self.capacity) = BufferPool.shared.take(count)
    }

    public convenience init(zeroedCount count: Int) {
        self.init(uninitializedCount: count)
        pointer.update(repeating: 0, count: count)
    }

    deinit { BufferPool.shared.give(pointer, capacity: capacity) }
}

/// Idle buffers kept for reuse, so a loop that allocates the same shapes again stops asking the
/// system for fresh pages, which the kernel zeroes on first touch: with the pool keeping at
/// most 1 GiB idle, a guided DiffFace step at 256² touched about 8 GB of fresh pages and spent
/// about a third of its CPU time in the kernel.
///
/// Idle memory never raises the peak: live plus idle floats stay within the larger of the most
/// ever live at once and live + `capacity`. A returned buffer is kept while that holds, and a
/// miss that would break it frees the buffers idle longest first. A request may take an idle
/// buffer up to twice its size: a network's activations come in a few sizes whose mix shifts
/// between the forward and the backward pass, and exact sizes alone missed five times as often
/// (small requests keep exact sizes).
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Idle floats kept beyond the peak rule (64 Mi floats = 256 MiB).
    public var capacity = 64 << 20
    /// Requests from this many floats may take a buffer up to twice their size.
    static let looseFrom = 1 << 16
    /// Idle buffers by size, each list oldest first, and the sizes that have some, ascending.
    private var free: [Int: [(pointer: UnsafeMutablePointer<Float>, stamp: Int)]] = [:]
    private var sizes: [Int] = []
    /// Floats idle, handed out and not yet returned, and the most ever handed out at once.
    private var held = 0, live = 0, peakLive = 0
    /// Orders returns, so eviction can pick the buffer idle longest.
    private var clock = 0
    private let lock = NSLock()

    /// Allocations and reuses since start; tests use these to show a loop stops allocating.
    public private(set) var allocations = 0
    public private(set) var reuses = 0

    /// Floats idle, live, and the most ever live at once (for tests).
    var counts: (idle: Int, live: Int, peak: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (held, live, peakLive)
    }

    /// A buffer of at least `count` floats, and its size.
    func take(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        let n = max(count, 1)
        lock.lock()
        // The smallest idle size from n to 2n; exact sizes only below 256 KiB, where a loop's
        // buffers then settle into the same sizes from its second round on.
        let i = firstSize(atLeast: n)
        if i < sizes.count, sizes[i] == n || (n >= BufferPool.looseFrom && sizes[i] <= 2 * n) {
            let m = sizes[i]
            let p = remove(size: m, at: i, oldest: false)
            live += m
            peakLive = max(peakLive, live)
            reuses += 1
            lock.unlock()
            return (p, m)
        }
        allocations += 1
        live += n
        peakLive = max(peakLive, live)
        var evicted: [UnsafeMutablePointer<Float>] = []
        while held > 0 && held > max(capacity, peakLive - live) {
            evicted.append(evictOldest())
        }
        lock.unlock()
        for p in evicted { UnsafeMutableRawPointer(p).deallocate() }
        // 64-byte alignment keeps SIMD loads and OpenBLAS on their fast paths.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        return (raw.bindMemory(to: Float.self, capacity: n), n)
    }

    func give(_ p: UnsafeMutablePointer<Float>, capacity m: Int) {
        lock.lock()
        live -= m
        if held + m <= max(capacity, peakLive - live) {
            clock += 1
            if free[m] == nil {
                sizes.insert(m, at: firstSize(atLeast: m))
                free[m] = []
            }
            free[m]!.append((p, clock))
            held += m
            lock.unlock()
        } else {
            lock.unlock()
            UnsafeMutableRawPointer(p).deallocate()
        }
    }

    /// Under the lock: the index of the first size ≥ n in `sizes`.
    private func firstSize(atLeast n: Int) -> Int {
        var lo = 0, hi = sizes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sizes[mid] < n { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Under the lock: takes the newest (most likely still in cache) or the oldest idle buffer
    /// of size m, which is `sizes[index]`.
    private func remove(size m: Int, at index: Int, oldest: Bool) -> UnsafeMutablePointer<Float> {
        var list = free[m]!
        let p = oldest ? list.removeFirst().pointer : list.removeLast().pointer
        if list.isEmpty {
            free[m] = nil
            sizes.remove(at: index)
        } else {
            free[m] = list
        }
        held -= m
        return p
    }

    /// Under the lock: removes the buffer idle longest.
    private func evictOldest() -> UnsafeMutablePointer<Float> {
        var best = 0, bestStamp = Int.max
        for (k, m) in sizes.enumerated() where free[m]![0].stamp < bestStamp { best = k; bestStamp = free[m]![0].stamp }
        return remove(size: sizes[best], at: best, oldest: true)
    }

    /// Returns every idle buffer to the system, and forgets the peak.
    public func drain() {
        lock.lock()
        for (_, list) in free { for p in list { UnsafeMutableRawPointer(p.pointer).deallocate() } }
        free = [:]
        sizes = []
        held = 0
        peakLive = live
        lock.unlock()
    }
}
