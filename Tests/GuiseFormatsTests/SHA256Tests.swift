import XCTest
import GuiseFormats

/// Known answers from FIPS 180-4's examples, plus chunked updates across block boundaries.
final class SHA256Tests: XCTestCase {
    func digest(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { SHA256.hex($0) } }

    func testKnownAnswers() {
        XCTAssertEqual(digest([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(digest(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(digest([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testChunkedUpdatesMatchOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var s = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 0, 127, 300] + [Int](repeating: 10, count: 100) where i < data.count {
            let end = min(i + size, data.count)
            data[i..<end].withUnsafeBytes { s.update($0) }
            i = end
        }
        data[i...].withUnsafeBytes { s.update($0) }
        XCTAssertEqual(s.finalize(), digest(data))
    }
}
