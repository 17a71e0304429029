import XCTest
import GuiseTensor
@testable import GuiseDiffusion

/// Starting the reverse process from a given x_t is the ordinary run whose first noise draw was x_t.
final class SamplerStartTests: XCTestCase {
    private func draws(_ count: Int, _ shape: [Int]) throws -> [Tensor] {
        let source = SeededNoise(seed: 17)
        return try (0..<count).map { _ in try source.next(shape) }
    }

    func testStartingFromAGivenStateMatchesTheRunThatDrewIt() throws {
        let d = try GaussianDiffusion(schedule: .cosine, steps: 200, respacing: "6")
        let shape = [2, 3, 4, 5]
        // A denoiser that depends on x and t, so a wrong start or timestep shows.
        let denoiser: Denoiser = { x, t, _ in
            let tv = Tensor(shape: [x.shape[0], 1, 1, 1], values: t.values.map { $0 / 200 })
            return x.scaled(0.3) + tv
        }
        for method in [SamplerOptions.Method.ddpm, .ddim(eta: 0), .ddim(eta: 0.5)] {
            for skip in [0, 2] {
                let noise = try draws(8, shape)
                var o = SamplerOptions(method: method, skipTimesteps: skip)
                o.clipDenoised = true
                // Without an init image and with skip 0 the run starts at its first draw.
                if skip == 0 {
                    let drawn = try d.sample(denoiser, shape: shape, options: o, noise: ReplayNoise(noise))
                    let given = try d.sample(denoiser, startingFrom: noise[0], options: o, noise: ReplayNoise(Array(noise.dropFirst())))
                    XCTAssertEqual(given.sample.values, drawn.sample.values, "\(method)")
                    XCTAssertEqual(given.predXStart.values, drawn.predXStart.values, "\(method)")
                    XCTAssertTrue(given.sample.values.allSatisfy { $0.isFinite })
                }
                // With skipped steps the given state is taken at t = numTimesteps − 1 − skip.
                let init0 = noise[7].scaled(0.5)
                let firstT = d.numTimesteps - 1 - skip
                let drawn = try d.sample(denoiser, shape: shape, initImage: init0, options: o, noise: ReplayNoise(noise))
                let start = d.qSample(init0, t: firstT, noise: noise[0])
                let given = try d.sample(denoiser, startingFrom: start, initImage: init0, options: o,
                                         noise: ReplayNoise(Array(noise.dropFirst())))
                XCTAssertEqual(given.sample.values, drawn.sample.values, "\(method) skip \(skip)")
                XCTAssertNotEqual(given.sample.values, start.values)
            }
        }
        XCTAssertThrowsError(try d.sample(denoiser, startingFrom: Tensor(zeros: [1, 3, 4, 5]),
                                          options: SamplerOptions(skipTimesteps: 6), noise: SeededNoise(seed: 1)))
    }
}
