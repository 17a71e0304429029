import Foundation
import GuiseFormats
import GuiseTensor

/// The fixture noise of Tools/make_fixtures_parsing.py, bit for bit: value i of the tensor
/// `name` is splitmix64's finaliser of fnv1a64(name) + (i + 1)·0x9E3779B97F4A7C15, its top 24
/// bits mapped to [-1, 1). Inputs and full-size weights are regenerated from it instead of
/// being committed.
public func fixtureNoise(_ name: String, count: Int) -> [Float] {
    var key: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in name.utf8 { key = (key ^ UInt64(b)) &* 0x100_0000_01B3 }
    return (0..<count).map { i in
        var z = key &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 24) * 2 - 1
    }
}

/// offset + scale · fixture noise, shaped.
public func fixtureNoise(_ name: String, _ shape: [Int], offset: Float = 0, scale: Float = 1) -> Tensor {
    let v = fixtureNoise(name, count: shape.reduce(1, *))
    return Tensor(shape: shape, values: v.map { offset + scale * $0 })
}

/// The state_dict a fixture's metadata 'weights' describes: [[name, shape, offset, scale], ...],
/// plus the tensors stored in the file as `weights/NAME` (values that are measured, not noise).
public func fixtureNoiseWeights(_ file: SafeTensorsFile) throws -> [String: Tensor] {
    guard let text = file.metadata["weights"],
          let list = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[Any]] else {
        throw FormatError("\(file.path): no weight recipe in its metadata")
    }
    var out: [String: Tensor] = [:]
    for entry in list {
        guard entry.count == 4, let name = entry[0] as? String, let shape = entry[1] as? [Int],
              let offset = (entry[2] as? NSNumber)?.floatValue, let scale = (entry[3] as? NSNumber)?.floatValue else {
            throw FormatError("\(file.path): malformed weight recipe entry \(entry)")
        }
        out[name] = fixtureNoise(name, shape, offset: offset, scale: scale)
    }
    for name in file.names where name.hasPrefix("weights/") {
        out[String(name.dropFirst("weights/".count))] = try file.tensor(name)
    }
    return out
}

/// The input a fixture was made at: fixture noise under the name in its metadata 'x' (the script
/// picks one clear of ReLU and max-pool switches; see Tools/make_fixtures_parsing.py).
public func fixtureInput(_ io: SafeTensorsFile, _ shape: [Int]) throws -> Tensor {
    guard let name = io.metadata["x"] else { throw FormatError("\(io.path): no input name in its metadata") }
    return fixtureNoise(name, shape)
}
