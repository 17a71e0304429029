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

    public func verify(_ entry: ModelManifest.Entry) throws -> Check {
        guard FileManager.default.fileExists(atPath: path(of: entry)) else { return .missing }
        let file = try MappedFile(path: path(of: entry))
        let digest = SHA256.hex(file.bytes)
        return digest == entry.sha256 ? .ok : .mismatch(digest)
    }

    /// The path of an installed, manifest-listed file, for the networks that load one.
    public func installedPath(_ name: String) throws -> String {
        guard let entry = manifest.files.first(where: { $0.name == name }) else {
            throw FormatError("\(name) is not in \(directory)/manifest.json")
        }
        switch status(of: entry) {
        case .installed: return path(of: entry)
        case .missing: throw FormatError("\(path(of: entry)) is missing; run `make models`")
        case .wrongSize(let n): throw FormatError("\(path(of: entry)) has \(n) bytes, the manifest says \(entry.size); run `make models`")
        }
    }
}
