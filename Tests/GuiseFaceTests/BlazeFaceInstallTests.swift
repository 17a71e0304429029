import Foundation
import XCTest
import GuiseFace
import GuiseFormats
import GuiseTestSupport

/// BlazeFace files that are present but damaged fail with an error that says how to refetch
/// them; only absent files let detection fall back to the Haar cascade.
final class BlazeFaceInstallTests: XCTestCase {
    static let model = "face_detection_short_range.tflite"

    /// Present but damaged is not "not installed": detection says so instead of using Haar.
    func testDamagedBlazeFaceIsAnErrorNotAFallback() throws {
        let store = try ModelStore(directory: repoRoot + "/Models")
        let dir = temporaryPath("models")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: store.directory + "/manifest.json", toPath: dir + "/manifest.json")
        for r in BlazeFaceDetector.Range.allCases {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + r.fileName, withDestinationPath: modelPath(r.fileName))
        }
        let damaged = try ModelStore(directory: dir)
        XCTAssertTrue(BlazeFaceDetector.isInstalled(store: damaged))
        XCTAssertNoThrow(try BlazeFaceDetector(store: damaged))

        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath(Self.model))))
        bytes[210932] = 0x5d
        try FileManager.default.removeItem(atPath: dir + "/" + Self.model)
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + Self.model))
        XCTAssertTrue(BlazeFaceDetector.isInstalled(store: damaged), "a damaged file must not read as absent")
        XCTAssertThrowsError(try BlazeFaceDetector(store: damaged)) { e in
            let message = (e as? FormatError)?.message ?? "\(e)"
            XCTAssertTrue(message.contains(Self.model) && message.contains("make models") && !message.contains("\n"), message)
        }

        // Truncated: the wrong size is an error too.
        try Data(bytes.prefix(1000)).write(to: URL(fileURLWithPath: dir + "/" + Self.model))
        XCTAssertTrue(BlazeFaceDetector.isInstalled(store: damaged))
        XCTAssertThrowsError(try BlazeFaceDetector(store: damaged)) { e in
            XCTAssertTrue("\(e)".contains("make models"), "\(e)")
        }

        // Absent is still "not installed".
        try FileManager.default.removeItem(atPath: dir + "/" + Self.model)
        XCTAssertFalse(BlazeFaceDetector.isInstalled(store: damaged))
    }
}
