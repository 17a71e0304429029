import Foundation
import GuiseFiles

/// A user-facing error from the diffusion core: bad option strings, shape mismatches.
public struct DiffusionError: GuiseError, Equatable {
    public let message: String
    public let category: ErrorCategory
    public init(_ message: String, category: ErrorCategory = .input) {
        self.message = message
        self.category = category
    }
}

/// guided-diffusion's named beta schedules. Tables are kept in Double, as guided-diffusion keeps
/// them in float64; a value becomes Float only where it multiplies a tensor.
public enum BetaSchedule: String, CaseIterable, Sendable {
    /// Ho et al.'s linear schedule, stretched so any step count spans the same range.
    case linear
    /// Nichol & Dhariwal's squared-cosine ᾱ(t), each beta capped at 0.999.
    case cosine

    public init(named name: String) throws {
        guard let s = BetaSchedule(rawValue: name) else {
            throw DiffusionError("unknown noise schedule '\(name)' (expected linear or cosine)")
        }
        self = s
    }

    public func betas(steps n: Int) -> [Double] {
        switch self {
        case .linear:
            let scale = 1000 / Double(n)
            let start = scale * 0.0001, end = scale * 0.02
            // numpy.linspace: start + i·step, with the last value pinned to `end`.
            if n == 1 { return [start] }
            let step = (end - start) / Double(n - 1)
            var b = (0..<n).map { start + Double($0) * step }
            b[n - 1] = end
            return b
        case .cosine:
            func alphaBar(_ t: Double) -> Double {
                let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
                return c * c
            }
            return (0..<n).map { i in
                min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999)
            }
        }
    }
}

/// Timestep respacing, as guided-diffusion's `space_timesteps`.
public enum Respacing {
    /// The original timesteps kept, ascending. `sections` is "" (all steps), comma-separated step
    /// counts for equal portions of the process ("10,10,10"; one count such as "100" spreads evenly),
    /// or "ddimN" for the DDIM paper's fixed integer stride.
    public static func timesteps(_ n: Int, _ sections: String) throws -> [Int] {
        let spec = sections.trimmingCharacters(in: .whitespaces)
        guard n > 0 else { throw DiffusionError("diffusion needs at least one step, got \(n)") }
        if spec.isEmpty { return Array(0..<n) }
        if spec.hasPrefix("ddim") {
            guard let want = Int(spec.dropFirst(4)), want > 0 else {
                throw DiffusionError("bad respacing '\(sections)': expected ddimN with a positive N")
            }
            for stride in 1..<n where (n + stride - 1) / stride == want {
                return Array(Swift.stride(from: 0, to: n, by: stride))
            }
            throw DiffusionError("cannot create exactly \(want) steps out of \(n) with an integer stride")
        }
        var counts: [Int] = []
        for part in spec.split(separator: ",", omittingEmptySubsequences: false) {
            guard let c = Int(part.trimmingCharacters(in: .whitespaces)), c >= 0 else {
                throw DiffusionError("bad respacing '\(sections)': expected step counts such as \"100\" or \"10,10,10\", or ddimN")
            }
            counts.append(c)
        }
        let sizePer = n / counts.count, extra = n % counts.count
        var start = 0
        var steps = Set<Int>()
        for (i, count) in counts.enumerated() {
            let size = sizePer + (i < extra ? 1 : 0)
            guard size >= count else { throw DiffusionError("cannot divide a section of \(size) steps into \(count)") }
            let stride = count <= 1 ? 1.0 : Double(size - 1) / Double(count - 1)
            var cur = 0.0
            for _ in 0..<count {
                steps.insert(start + Int(roundHalfEven(cur)))
                cur += stride
            }
            start += size
        }
        if steps.isEmpty { throw DiffusionError("respacing '\(sections)' keeps no steps") }
        return steps.sorted()
    }

    /// Python 3's round(): halves go to the even neighbour.
    static func roundHalfEven(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }
}

/// RePaint's time-travel schedule (Lugmayr et al. 2022, `get_schedule_jump` with n_sample 1):
/// walk down from tT − 1 to 0; at every multiple of `jumpLength` below tT − jumpLength, jump back up
/// `jumpLength` steps, `jumpNSample − 1` times. The list ends with −1 (the finished image); each
/// neighbouring pair (a, b) is a reverse step at a when b < a, a forward re-noising step when b > a.
public struct RePaintJumps: Equatable, Sendable {
    public var jumpLength: Int
    public var jumpNSample: Int

    public init(jumpLength: Int = 10, jumpNSample: Int = 10) {
        self.jumpLength = jumpLength
        self.jumpNSample = jumpNSample
    }

    public func times(from tT: Int) throws -> [Int] {
        guard jumpLength >= 1, jumpNSample >= 1 else {
            throw DiffusionError("RePaint needs jump_length ≥ 1 and jump_n_sample ≥ 1")
        }
        var remaining: [Int: Int] = [:]
        for j in stride(from: 0, to: tT - jumpLength, by: jumpLength) { remaining[j] = jumpNSample - 1 }
        var t = tT
        var ts: [Int] = []
        while t >= 1 {
            t -= 1
            ts.append(t)
            if let r = remaining[t], r > 0 {
                remaining[t] = r - 1
                for _ in 0..<jumpLength {
                    t += 1
                    ts.append(t)
                }
            }
        }
        ts.append(-1)
        return ts
    }
}
