import Foundation
import GuiseFormats
import GuiseImage

/// The repository's root, found from this file's place in the source tree.
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Tests/Fixtures, where every Tools/make_fixtures_*.py and Tools/reference_adm.py script writes.
public let fixtureDirectory = repoRoot + "/Tests/Fixtures"

/// The path of a committed fixture file, extension included.
public func fixturePath(_ file: String) throws -> String {
    let path = fixtureDirectory + "/" + file
    guard FileManager.default.fileExists(atPath: path) else {
        throw FormatError("fixture \(file) missing from Tests/Fixtures; `make fixtures` writes it")
    }
    return path
}

/// A committed safetensors fixture, by name without the extension.
public func fixture(_ name: String) throws -> SafeTensorsFile {
    try SafeTensorsFile(path: try fixturePath(name + ".safetensors"))
}

/// Models/ in the source tree; `make models` fetches it before testing.
public func modelPath(_ name: String) -> String { repoRoot + "/Models/" + name }

/// A fresh path in the temporary directory, ending in `name`.
public func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.path + "/guise-\(UUID().uuidString)-\(name)"
}

/// A photo from Samples/ (fetched by `make samples`).
public func sample(_ name: String) throws -> Image {
    let path = repoRoot + "/Samples/" + name
    guard FileManager.default.fileExists(atPath: path) else { throw FormatError("\(path) is missing: run `make samples`") }
    return try ImageIO.read(path)
}
