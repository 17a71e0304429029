import ArgumentParser
import Foundation
import GuiseFiles
import GuiseFormats

/// The commands a batch job can name in "op".
let jobCommands: [any JobCommand.Type] = [Swap.self, EditCommand.self, Clothes.self]

/// One line of a jobs file, read and checked: its identity (the sha256 of its canonical JSON),
/// and the command it stands for, parsed by that command's own parser, or why it cannot run.
/// Reading a line is cheap; parsing its command is left to `parse()`, for the jobs of the shard.
struct BatchJob {
    /// 1-based line number in the jobs file.
    let line: Int
    /// sha256 (hex) of the canonical JSON; for a line that is not a JSON object, of its text.
    let key: String
    /// Sorted keys, no spaces, numbers as written: what `key` and the input hash are made of.
    let canonical: String
    let op: String?
    /// The "out" the line gives, when it is a string.
    let givenOut: String?
    /// nil until `parse()`, unless reading the line already failed.
    var command: Result<any JobCommand, JobFailure>?
    /// The command type and the keys other than "op", kept for `parse()`.
    var pending: (type: any JobCommand.Type, fields: [(String, StrictJSON)])?

    var out: String? { givenOut }

    /// The command, through its own parser and validation.
    mutating func parse() {
        guard command == nil, let (type, fields) = pending else { return }
        do {
            command = .success(try BatchJobs.parse(type, try BatchJobs.arguments(for: type, fields: fields)))
        } catch {
            command = .failure(JobFailure(error, command: type))
        }
        pending = nil
    }

    func failing(_ why: String) -> BatchJob {
        BatchJob(line: line, key: key, canonical: canonical, op: op, givenOut: givenOut, command: .failure(.options(why)))
    }
}

/// Why a job did not run or failed: one line, and a category for the summary (`ErrorCategory`'s
/// names, or "options" for a key or value the command's parser refused).
struct JobFailure: Error {
    var message: String
    var category: String

    static func options(_ message: String) -> JobFailure { JobFailure(message: message, category: "options") }

    /// Any error a job's command throws, as the command line would print it, on one line.
    init(_ error: Error, command: any JobCommand.Type) {
        if let e = error as? JobFailure { self = e; return }
        var text = command.message(for: error)
        text = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        if let g = error as? GuiseError {
            category = g.category.rawValue
        } else if error is ValidationError || command.exitCode(for: error) == .validationFailure {
            category = "options"
        } else {
            category = ErrorCategory.internal.rawValue
        }
        message = text.isEmpty ? String(describing: error) : text
    }

    init(message: String, category: String) {
        self.message = message
        self.category = category
    }
}

enum BatchJobs {
    /// Every job of a jobs file, in line order; blank lines are not jobs.
    static func read(_ data: Data) -> [BatchJob] {
        var jobs: [BatchJob] = []
        var bytes = [UInt8](data)
        // A byte-order mark is not part of the first job.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var lineNumber = 0
        for raw in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = raw
            while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
            while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
            if line.isEmpty { continue }
            jobs.append(job(line: lineNumber, bytes: Array(line)))
        }
        return jobs
    }

    /// One job from one line's bytes.
    static func job(line: Int, bytes: [UInt8]) -> BatchJob {
        let value: StrictJSON
        do {
            value = try bytes.withUnsafeBytes { try StrictJSON.parse($0) }
        } catch let e as StrictJSON.ParseError {
            return malformed(line, bytes, "not valid JSON (\(e.message))")
        } catch {
            return malformed(line, bytes, "not valid JSON")
        }
        guard case .object(let fields) = value else { return malformed(line, bytes, "a job must be a JSON object") }
        let canonical = canonicalJSON(value)
        let key = sha256(Array(canonical.utf8))
        var givenOut: String?
        if case .string(let o)? = fields.first(where: { $0.0 == "out" })?.1 { givenOut = o }
        func failed(_ op: String?, _ failure: JobFailure) -> BatchJob {
            BatchJob(line: line, key: key, canonical: canonical, op: op, givenOut: givenOut, command: .failure(failure))
        }
        guard let opValue = fields.first(where: { $0.0 == "op" })?.1 else {
            return failed(nil, .options("no \"op\" (swap, edit or clothes)"))
        }
        let names = jobCommands.map { $0.op }
        guard case .string(let op) = opValue, let type = jobCommands.first(where: { $0.op == op }) else {
            let shown = { if case .string(let s) = opValue { return StrictJSON.quote(s) } else { return "that is not a string" } }()
            return failed(nil, .options("unknown op \(shown) (use \(names.joined(separator: ", ")))"))
        }
        return BatchJob(line: line, key: key, canonical: canonical, op: op, givenOut: givenOut, command: nil,
                        pending: (type, fields.filter { $0.0 != "op" }))
    }

    static func malformed(_ line: Int, _ bytes: [UInt8], _ why: String) -> BatchJob {
        let text = String(decoding: bytes, as: UTF8.self)
        return BatchJob(line: line, key: sha256(bytes), canonical: text, op: nil, givenOut: nil, command: .failure(.options(why)))
    }

    /// The command's own parser and validation, so a job takes exactly what the command line takes.
    static func parse<C: JobCommand>(_ type: C.Type, _ arguments: [String]) throws -> any JobCommand {
        do {
            return try C.parse(arguments)
        } catch where C.exitCode(for: error) == .success {
            // --help and --version print and stop; a job has nothing to print them to.
            throw JobFailure.options("help and version are not job options")
        }
    }

    /// A job's keys as the command's arguments: `"steps": 4` is `--steps=4`, `"no-diffusion":
    /// true` is `--no-diffusion` (false leaves the flag off), a list repeats the option once per
    /// item, and the positional keys (`edit`'s "image", also called "source") come last after
    /// `--`. The `--key=value` form keeps a value that starts with a dash a value.
    static func arguments(for type: any JobCommand.Type, fields: [(String, StrictJSON)]) throws -> [String] {
        var options: [String] = [], positional: [String] = []
        for (key, value) in fields {
            let quoted = StrictJSON.quote(key)
            guard let first = key.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first),
                  key.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }) else {
                throw JobFailure.options("\(quoted) is not an option name (keys are the long options of guise \(type.op), without the dashes)")
            }
            func scalar(_ v: StrictJSON) throws -> String {
                switch v {
                case .string(let s): return s
                case .number(let n): return n
                default: throw JobFailure.options("the value of \(quoted) must be a string, a number, true or false, or a list of strings or numbers")
                }
            }
            if type.positionalKeys.contains(key) {
                positional.append(try scalar(value))
                continue
            }
            switch value {
            case .bool(true): options.append("--\(key)")
            case .bool(false): break
            case .array(let items): options += try items.map { "--\(key)=\(try scalar($0))" }
            default: options.append("--\(key)=\(try scalar(value))")
            }
        }
        if positional.count > 1 {
            throw JobFailure.options("give the photo once, as one of \(type.positionalKeys.map { "\"\($0)\"" }.joined(separator: " or "))")
        }
        return options + (positional.isEmpty ? [] : ["--"] + positional)
    }

    /// Keys sorted by their UTF-8 bytes, no whitespace, strings with only the escapes JSON
    /// requires, numbers as written: equal jobs give equal bytes however the line was spaced
    /// or its keys ordered.
    static func canonicalJSON(_ value: StrictJSON) -> String {
        var out = ""
        func string(_ s: String) {
            out += "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where u.value < 0x20:
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                default: out.unicodeScalars.append(u)
                }
            }
            out += "\""
        }
        func emit(_ v: StrictJSON) {
            switch v {
            case .object(let fields):
                out += "{"
                let sorted = fields.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
                for (k, (key, item)) in sorted.enumerated() {
                    if k > 0 { out += "," }
                    string(key)
                    out += ":"
                    emit(item)
                }
                out += "}"
            case .array(let items):
                out += "["
                for (k, item) in items.enumerated() {
                    if k > 0 { out += "," }
                    emit(item)
                }
                out += "]"
            case .string(let s): string(s)
            case .number(let n): out += n
            case .bool(let b): out += b ? "true" : "false"
            case .null: out += "null"
            }
        }
        emit(value)
        return out
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { SHA256.hex($0) }
    }
}

/// `--shard I/N`: the jobs whose key (the sha256 of their canonical JSON), read as a number,
/// is I modulo N. A job keeps its shard when lines are added, removed or reordered, and the N
/// shards of a file together hold every job exactly once.
struct Shard: Equatable, CustomStringConvertible {
    var index: Int
    var count: Int

    static let all = Shard(index: 0, count: 1)

    init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ValidationError("--shard takes I/N with 0 <= I < N (e.g. 0/4), got '\(printable(text, max: 40))'")
        }
        self.init(index: i, count: n)
    }

    var description: String { "\(index)/\(count)" }

    /// The 64-bit number the key's first 16 hex digits spell, modulo N.
    func contains(key: String) -> Bool {
        guard count > 1 else { return true }
        let value = UInt64(key.prefix(16), radix: 16) ?? 0
        return Int(value % UInt64(count)) == index
    }
}
