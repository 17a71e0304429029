import Foundation

/// Models/manifest.json: the embedded model files, where each comes from, and its checksum.
public struct ModelManifest: Decodable {
    public struct Source: Decodable {
        public var kind: String
        public var package: String
    }

    public struct Entry: Decodable {
        public var name: String
        public var role: String
        public var source: String
        public var path: String
        public var size: Int
        public var sha256: String
        public var licence: String
        /// How a project-trained file was made (source "project"): rerunning it reproduces the weights.
        public var recipe: Recipe?

        /// A project-trained file is committed with the repository, not fetched from a package.
        public var isProjectTrained: Bool { source == "project" }
    }

    public struct Recipe: Decodable {
        public var command: String
        public var dataManifest: String
        public var seed: UInt64
        public var steps: Int
        public var finalLoss: Double

        enum CodingKeys: String, CodingKey {
            case command, seed, steps
            case dataManifest = "data_manifest"
            case finalLoss = "final_loss"
        }
    }

    public var sources: [String: Source]
    public var files: [Entry]
}

/// The folder of model files and its manifest. Found at $GUISE_MODELS, else ./Models, else
/// the Models folder of the repository the running executable was built in.
public struct ModelStore {
    public let directory: String
    public let manifest: ModelManifest

    public enum Status: Equatable {
        case installed
        case missing
        case wrongSize(Int)
    }

    public enum Check: Equatable {
        case ok
        case missing
        case mismatch(String)
    }

    public init(directory: String) throws {
        let path = directory + "/manifest.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError("\(path): cannot read the model manifest")
        }
        do {
            manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
        } catch {
            throw FormatError("\(path): not a valid model manifest")
        }
        self.directory = directory
    }

    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ModelStore {
        if let dir = environment["GUISE_MODELS"], !dir.isEmpty { return try ModelStore(directory: dir) }
        let fm = FileManager.default
        var candidates = [fm.currentDirectoryPath + "/Models"]
        // .build/<config>/guise → walk up to the repository.
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        var dir = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(dir.path + "/Models")
            dir = dir.deletingLastPathComponent()
        }
        guard let found = candidates.first(where: { fm.fileExists(atPath: $0 + "/manifest.json") }) else {
            throw FormatError("no Models/manifest.json found; run from the repository or set GUISE_MODELS")
        }
        return try ModelStore(directory: found)
    }

    public func path(of entry: ModelManifest.Entry) -> String { directory + "/" + entry.name }

    /// Presence and size only (cheap); `verify` checks the content. stat(2) follows symlinks,
    /// so a linked model file is judged by its target and a dangling link is missing
    /// (FileManager's attributes describe the link itself).
    public func status(of entry: ModelManifest.Entry) -> Status {
        var st = stat()
        guard stat(path(of: entry), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .missing }
        let size = Int(st.st_size)
        return size == entry.size ? .installed : .wrongSize(size)
    }

    /// The file's content against the manifest's sha256. Each file is hashed once per process
    /// (see `ContentDigests`), so networks loaded again, or a `verify` after a load, cost a stat.
    public func verify(_ entry: ModelManifest.Entry) throws -> Check {
        guard FileManager.default.fileExists(atPath: path(of: entry)) else { return .missing }
        let digest = try ContentDigests.shared.sha256(of: path(of: entry))
        return digest == entry.sha256 ? .ok : .mismatch(digest)
    }

    /// What to do about a damaged or missing file: fetched files come back with `make models`;
    /// the project-trained prior is committed, so git restores it.
    public func remedy(for entry: ModelManifest.Entry) -> String {
        entry.isProjectTrained ? "restore it with `git checkout -- Models/\(entry.name)`" : "run `make models` to fetch it again"
    }

    /// The path of an installed, manifest-listed file, for the networks that load one. Its size
    /// and sha256 must match the manifest: a damaged file is an error naming the file and the
    /// remedy, never loaded, so nothing downstream quietly stands in for it.
    public func installedPath(_ name: String) throws -> String {
        guard let entry = manifest.files.first(where: { $0.name == name }) else {
            throw FormatError("\(name) is not in \(directory)/manifest.json")
        }
        let file = path(of: entry)
        switch status(of: entry) {
        case .installed: break
        case .missing: throw FormatError("\(file) is missing; \(remedy(for: entry))")
        case .wrongSize(let n): throw FormatError("\(file) has \(n) bytes, the manifest says \(entry.size); \(remedy(for: entry))")
        }
        if case .mismatch = try verify(entry) {
            throw FormatError("\(file) does not match its sha256 in \(directory)/manifest.json (damaged or altered); \(remedy(for: entry))")
        }
        return file
    }
}

/// The sha256 of files already hashed by this process, keyed by what stat(2) says of each file
/// (device, inode, size, modification time), so a file rewritten or replaced is hashed again
/// while loading the same network twice hashes it once.
public final class ContentDigests: @unchecked Sendable {
    public static let shared = ContentDigests()

    struct Key: Hashable {
        let path: String
        let device: UInt64, inode: UInt64
        let size: Int64
        let modifiedSeconds: Int64, modifiedNanoseconds: Int64
    }

    private var digests: [Key: String] = [:]
    private let lock = NSLock()
    /// How many files this process has hashed (not counting answers from the cache).
    public private(set) var hashed = 0

    private static func key(_ path: String) throws -> Key {
        var st = stat()
        guard stat(path, &st) == 0 else { throw FormatError("\(path): cannot stat (\(String(cString: strerror(errno))))") }
        #if os(Linux)
        let modified = st.st_mtim
        #else
        let modified = st.st_mtimespec
        #endif
        return Key(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                   modifiedSeconds: Int64(modified.tv_sec), modifiedNanoseconds: Int64(modified.tv_nsec))
    }

    /// The file's sha256 as 64 lowercase hex digits.
    public func sha256(of path: String) throws -> String {
        let before = try Self.key(path)
        if let d = lock.withLock({ digests[before] }) { return d }
        let file = try MappedFile(path: path)
        // The mapping must outlive the hash: `bytes` alone does not keep the file mapped.
        let digest = withExtendedLifetime(file) { SHA256.hex(file.bytes) }
        // Remembered only if the file did not change while it was read.
        let unchanged = try Self.key(path) == before
        lock.withLock {
            hashed += 1
            if unchanged { digests[before] = digest }
        }
        return digest
    }
}
