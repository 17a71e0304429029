import Foundation
import XCTest
import GuiseFace
import GuiseFormats
import GuiseImage
import GuisePipelines
import GuiseTestSupport

/// One copy of each network for every thread that asks, and the same answers on several
/// threads at once as on one.
final class ModelCacheTests: XCTestCase {
    func cache() throws -> ModelCache {
        ModelCache(store: try ModelStore(directory: repoRoot + "/Models"))
    }

    func testEachNetworkIsLoadedOnceForEveryThread() throws {
        let models = try cache()
        let lock = NSLock()
        var analyzers: [FaceAnalyzer] = [], errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do {
                let a = try models.faceAnalyzer()
                lock.lock(); analyzers.append(a); lock.unlock()
            } catch {
                lock.lock(); errors.append("\(error)"); lock.unlock()
            }
        }
        XCTAssertEqual(errors, [])
        XCTAssertEqual(analyzers.count, 4)
        XCTAssertTrue(analyzers.allSatisfy { $0 === analyzers[0] }, "threads got different copies")
        XCTAssertTrue(try models.faceIdentity() === models.faceIdentity())
        XCTAssertTrue(try models.personSegmenter() === models.personSegmenter())
        XCTAssertTrue(try models.poseEstimator() === models.poseEstimator())
        XCTAssertTrue((try models.detector(.blazeface).detector as AnyObject) === (try models.detector(.blazeface).detector as AnyObject))
        // OpenCV's cascade classifier keeps working data in itself: every caller gets its own.
        XCTAssertFalse((try models.detector(.haar).detector as AnyObject) === (try models.detector(.haar).detector as AnyObject))
        XCTAssertEqual(try models.diffusion(nil).path, try models.diffusion(DiffusionModel.priorName).path)
    }

    func testSharedNetworksGiveTheSameAnswersOnTwoThreadsAtOnce() throws {
        let models = try cache()
        let photos = [try sample("astronaut.png"), try sample("grace_hopper.jpg")]
        let detector = try models.detector(.blazeface).detector
        let analyzer = try models.faceAnalyzer(), identity = try models.faceIdentity(), segmenter = try models.personSegmenter()
        struct Answer: Equatable {
            var mesh: [Double]
            var descriptor: [Float]
            var person: [Float]
        }
        func answer(_ photo: Image) throws -> Answer {
            let face = try FaceSelection.pick(try detector.detect(photo, order: .largest), index: 0, label: "photo")
            let lm = try FaceSelection.landmarks(photo, face: face, analyzer: analyzer)
            return Answer(mesh: lm.mesh.flatMap { [$0.x, $0.y, $0.z] }, descriptor: try identity.descriptor(photo, dlib5: lm.dlib5()),
                          person: try segmenter.mask(photo).values)
        }
        let alone = try photos.map(answer)
        XCTAssertTrue(alone.allSatisfy { $0.mesh.allSatisfy(\.isFinite) && $0.descriptor.allSatisfy(\.isFinite) })
        let lock = NSLock()
        var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            for i in 0..<4 {
                let k = (t + i) % 2
                do {
                    let a = try answer(photos[k])
                    if a != alone[k] {
                        let dm = zip(a.mesh, alone[k].mesh).map { abs($0 - $1) }.max() ?? 0
                        let dd = zip(a.descriptor, alone[k].descriptor).map { abs($0 - $1) }.max() ?? 0
                        let dp = zip(a.person, alone[k].person).map { abs($0 - $1) }.max() ?? 0
                        lock.lock(); failures.append("thread \(t), run \(i): photo \(k) differs from its answer alone: mesh \(dm) descriptor \(dd) person \(dp)"); lock.unlock()
                    }
                } catch {
                    lock.lock(); failures.append("thread \(t), run \(i): \(error)"); lock.unlock()
                }
            }
        }
        XCTAssertEqual(failures, [])
    }
}
