import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file that cannot be read or written. The message is one line, meant for the user.
public struct FileError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
}

/// Writes whole files so a failure never leaves a partial or clobbered output:
/// the bytes go to a hidden temporary file beside the target, renamed over it when complete.
public enum AtomicFile {
    /// Throws, before touching anything, if `path` cannot be an output file.
    public static func checkWritable(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw FileError("cannot write \(path): the folder \(dir) does not exist")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw FileError("cannot write \(path): it is a folder")
        }
    }

    /// Throws if `path` is already one of `inputs` (the same file, however it is spelled or
    /// linked): the result would replace a file it is made from, which is then lost.
    public static func checkNotAnInput(_ path: String, inputs: [String]) throws {
        var out = stat()
        guard stat(path, &out) == 0 else { return }
        for input in inputs {
            var other = stat()
            if stat(input, &other) == 0, other.st_dev == out.st_dev, other.st_ino == out.st_ino {
                throw FileError("cannot write \(path): it is the input \(input), which it would replace; write to another file")
            }
        }
    }

    public static func write(_ data: Data, to path: String) throws {
        try checkWritable(path)
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().path
            + "/.\(url.lastPathComponent).partial-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw FileError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw FileError("cannot write \(path): \(reason)")
        }
    }
}
