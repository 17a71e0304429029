import Foundation
import GuiseFiles
import GuiseFormats
#if canImport(Glibc)
import Glibc
#endif

/// One line of a batch's state file.
struct JournalRecord: Codable, Equatable {
    /// "start" and "end" of a run; "done" or "failed" for a job.
    var event: String
    /// The job's key: the sha256 of its canonical JSON.
    var job: String?
    /// The sha256 of the canonical JSON and of every input file: a "done" counts only while
    /// the job's inputs still hash to this.
    var inputs: String?
    var line: Int?
    var out: String?
    var error: String?
    var category: String?
    var seconds: Double?
    var time: String?
    var pid: Int32?
    var shard: String?
    var jobs: String?
    var done: Int?
    var failed: Int?
    var skipped: Int?
}

/// The state file: an append-only journal, one JSON record a line, each appended with one
/// write and flushed to disk (fsync) before the run goes on, so a record that is there was
/// complete before anything that depends on it. A run killed while appending leaves at most a
/// torn last line, which reading skips and the next append starts a fresh line after. An
/// exclusive lock (flock) keeps two runs from using one state file; the kernel drops it when
/// the process dies, however it dies.
final class BatchJournal {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    /// Whether the file ends without a newline (a torn last line) and the next record must start one.
    private var needsNewline: Bool

    /// Opens (creating) and locks `path`; throws when another run holds it.
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError("cannot open the state file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            close(fd)
            throw FileError(busy
                ? "the state file \(path) is in use by another guise batch (shards running side by side each need their own; see --shard and --state)"
                : "cannot lock the state file \(path): \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        let size = lseek(fd, 0, SEEK_END)
        var last: UInt8 = 0x0A
        if size > 0 { _ = pread(fd, &last, 1, size - 1) }
        needsNewline = last != 0x0A
    }

    deinit { close(fd) }

    /// Every readable record, and how many lines were not (a torn or damaged line).
    func read() throws -> (records: [JournalRecord], unreadable: Int) {
        lock.lock()
        defer { lock.unlock() }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 { throw FileError("cannot read the state file \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            offset += off_t(n)
        }
        return Self.parse(data)
    }

    /// Records of another shard's state file, read without its lock: its last line may be in
    /// the middle of being written, which is skipped like a torn one.
    static func readDone(path: String) -> [JournalRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return parse(data).records.filter { $0.event == "done" }
    }

    static func parse(_ data: Data) -> (records: [JournalRecord], unreadable: Int) {
        var records: [JournalRecord] = []
        var unreadable = 0
        let decoder = JSONDecoder()
        for line in data.split(separator: 0x0A) where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            if let r = try? decoder.decode(JournalRecord.self, from: Data(line)) { records.append(r) } else { unreadable += 1 }
        }
        return (records, unreadable)
    }

    /// Appends `record` and waits until it is on disk.
    func append(_ record: JournalRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = [UInt8](try encoder.encode(record))
        bytes.append(0x0A)
        lock.lock()
        defer { lock.unlock() }
        if needsNewline { bytes.insert(0x0A, at: 0) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError("cannot write the state file \(path): \(String(cString: strerror(errno)))")
            }
            written += n
        }
        needsNewline = false
        guard fsync(fd) == 0 else { throw FileError("cannot flush the state file \(path): \(String(cString: strerror(errno)))") }
    }

    /// Flushes a finished output file and the folder entry that names it to disk, so that a
    /// "done" record written after this never outlives the output it vouches for.
    static func sync(file path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError("cannot open \(path) to flush it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FileError("cannot flush \(path): \(String(cString: strerror(errno)))") }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            // Some file systems refuse fsync on a folder; the rename is then as durable as they make it.
            _ = fsync(dir)
            close(dir)
        }
    }
}

/// sha256 of input files, each read once per run while its size and modification time stay
/// the same (many jobs share a source photo or a model file).
final class InputHasher: @unchecked Sendable {
    private struct Stamp: Equatable {
        var device: UInt64, inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
    }

    private let lock = NSLock()
    private var cache: [String: (Stamp, String)] = [:]

    func digest(of path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError("cannot read \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError("cannot read \(path): not a regular file") }
        let stamp = Stamp(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                          seconds: Int(st.st_mtim.tv_sec), nanoseconds: Int(st.st_mtim.tv_nsec))
        lock.lock()
        let cached = cache[path]
        lock.unlock()
        if let cached, cached.0 == stamp { return cached.1 }
        var hash = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        let digest = hash.finalize()
        lock.lock()
        cache[path] = (stamp, digest)
        lock.unlock()
        return digest
    }

    /// What a "done" record vouches for: the job's canonical JSON and each input and model
    /// file's digest. A model file that cannot be read is a model error, as when it is loaded.
    func inputsHash(canonical: String, files: [String], models: [String] = []) throws -> String {
        var text = canonical + "\n"
        for f in files { text += f + "\t" + (try digest(of: f)) + "\n" }
        for f in models {
            do {
                text += f + "\t" + (try digest(of: f)) + "\n"
            } catch let e as FileError {
                throw FileError(e.message, category: .model)
            }
        }
        return BatchJobs.sha256(Array(text.utf8))
    }
}
