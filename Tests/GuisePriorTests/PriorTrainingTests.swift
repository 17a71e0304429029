import XCTest
import GuiseTensor
import GuiseFormats
import GuiseNetworks
@testable import GuisePrior

final class PriorTrainingTests: XCTestCase {
    func testPlaceholderBuilds() throws {
        _ = try PriorModel.config(named: "tiny")
    }
}
