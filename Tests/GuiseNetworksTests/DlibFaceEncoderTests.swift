import Foundation
import XCTest
import GuiseFormats
import GuiseTensor
@testable import GuiseNetworks
import GuiseTestSupport

/// Parity with dlib's own `compute_face_descriptor` on the chips in the fixture.
final class DlibFaceEncoderTests: XCTestCase {
    func chips() throws -> (Tensor, Tensor, [String]) {
        let fx = try fixture("dlib_descriptors")
        let hwc = try fx.tensor("chips_u8")  // [N, 150, 150, 3] RGB
        return (hwc.permuted(0, 3, 1, 2).contiguous(), try fx.tensor("descriptors"),
                (fx.metadata["names"] ?? "").split(separator: ",").map(String.init))
    }

    func testDescriptorsMatchDlib() throws {
        let enc = try DlibFaceEncoder(path: modelPath("dlib_face_recognition_resnet_model_v1.dat"))
        let (x, expected, names) = try chips()
        let d = try Autograd.noGrad { try enc(x) }
        XCTAssertEqual(d.shape, expected.shape)
        for i in 0..<x.shape[0] {
            let dist = DlibFaceEncoder.distance(d.narrow(i..<(i + 1)), expected.narrow(i..<(i + 1)))
            XCTAssertLessThanOrEqual(dist, 1e-3, "descriptor of \(names[i]) is \(dist) from dlib's")
        }
        // The identity facts the fixture photos were chosen for.
        let a = d.narrow(0..<1), mirror = d.narrow(1..<2), other = d.narrow(2..<3)
        XCTAssertLessThan(DlibFaceEncoder.distance(a, mirror), 0.6)
        XCTAssertGreaterThan(DlibFaceEncoder.distance(a, other), 0.6)
    }

    func testWrongInputShapeIsAnError() throws {
        let enc = try DlibFaceEncoder(path: modelPath("dlib_face_recognition_resnet_model_v1.dat"))
        XCTAssertThrowsError(try enc(Tensor(zeros: [1, 3, 112, 112]))) { e in
            XCTAssert("\(e)".contains("input must be [N, 3, 150, 150]"), "\(e)")
        }
    }

    func testGradientThroughTheNetwork() throws {
        let enc = try DlibFaceEncoder(path: modelPath("dlib_face_recognition_resnet_model_v1.dat"))
        let (x, _, _) = try chips()
        let one = x.narrow(0..<1).contiguous()
        // Directions over every pixel, halves of the chip, the centre, the red channel, and a 10-pixel frame
        // along the border (dlib's 7×7 stride-2 stem never reads the last row and column).
        let plane = 150 * 150
        let all = Array(0..<(3 * plane))
        let top = all.filter { ($0 % plane) / 150 < 75 }, left = all.filter { $0 % 150 < 75 }
        let frame = all.filter { let r = ($0 % plane) / 150, c = $0 % 150; return r < 10 || c < 10 || r >= 140 || c >= 140 }
        let centre = all.filter { let r = ($0 % plane) / 150, c = $0 % 150; return (50..<100).contains(r) && (50..<100).contains(c) }
        let dirs = [signDirection(all, seed: 5), signDirection(top, seed: 9), signDirection(left, seed: 11),
                    signDirection(frame, seed: 13), signDirection(centre, seed: 15), signDirection(Array(0..<plane), seed: 17)]
        // Pixels are 0–255 and the network divides by 256: a step of 0.01 is 4e-5 at the first conv.
        checkDirectionalGradients(one, directions: dirs, eps: 0.01, rtol: 1e-2, minUsable: 5, floor: 1e-6,
                                  alignWithGradient: true) { try! enc($0) }
    }
}
