import ArgumentParser
import Foundation
import GuiseFormats

/// `guise model …`: list, verify, inspect, convert and run model files.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "List, verify, inspect, convert and run model files.",
        subcommands: [List.self, Verify.self, ModelInfo.self, ModelConvert.self, ModelRun.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the model files in Models/manifest.json, installed or not.")

        @Flag(help: "Print JSON.")
        var json = false

        struct Row: Encodable {
            var name, status, licence, role, source: String
            var size: Int
        }

        struct Report: Encodable {
            var directory: String
            var files: [Row]
        }

        func run() throws {
            let store = try ModelStore.locate()
            let rows = store.manifest.files.map { entry -> Row in
                let status: String
                switch store.status(of: entry) {
                case .installed: status = "installed"
                case .missing: status = "missing"
                case .wrongSize(let n): status = "wrong size (\(n) bytes)"
                }
                return Row(name: entry.name, status: status, licence: entry.licence, role: entry.role,
                           source: entry.isProjectTrained ? "project-trained" : (store.manifest.sources[entry.source]?.package ?? entry.source),
                           size: entry.size)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(Report(directory: store.directory, files: rows)), as: UTF8.self))
                return
            }
            print("models in \(store.directory)")
            let width = rows.map(\.name.count).max() ?? 0
            for r in rows {
                let name = r.name.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(name)  \(r.status.padding(toLength: 9, withPad: " ", startingAt: 0))  \(r.licence)  \(r.source)  \(r.role)")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the sha256 of every installed model file against the manifest.",
            discussion: "Files not installed are listed and skipped; any mismatch exits non-zero.")

        func run() throws {
            let store = try ModelStore.locate()
            var bad: [String] = []
            for entry in store.manifest.files {
                switch try store.verify(entry) {
                case .ok: print("ok        \(entry.name)")
                case .missing: print("missing   \(entry.name)")
                case .mismatch:
                    print("MISMATCH  \(entry.name)")
                    bad.append(entry.name)
                }
            }
            guard bad.isEmpty else {
                throw FormatError("\(bad.count) model file\(bad.count == 1 ? " does" : "s do") not match the manifest's sha256: \(bad.joined(separator: ", ")); run `make models`")
            }
        }
    }
}
