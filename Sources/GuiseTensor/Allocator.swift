import CThreadPool

/// How the process's allocator treats the engine's buffers.
public enum Allocator {
    /// Keeps freed memory for the next allocation instead of handing it back to the system.
    ///
    /// glibc serves every buffer above its mmap threshold (32 MB at most) with a fresh mapping,
    /// unmaps it when freed and trims the heap's top. The buffers the engine's `BufferPool`
    /// does not hold (images, masks, transforms) are freed and asked for again at every step,
    /// so each came back as new pages that the kernel zeroes on first touch. With mappings off
    /// and the heap never trimmed, a freed buffer's pages serve the next.
    /// The peak stays what the largest step holds at once, and the process keeps it until it
    /// exits, which suits a command-line run; a program that runs one network and then lives
    /// on may leave this off. Returns whether it took effect (false where the C library is not
    /// glibc).
    @discardableResult
    public static func keepFreedMemory() -> Bool { guise_keep_freed_memory() != 0 }
}
