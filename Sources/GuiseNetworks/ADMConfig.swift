import Foundation
import GuiseFormats

/// The configuration of a guided-diffusion ADM UNet, read from JSON with the argument names of
/// guided-diffusion's `create_model_and_diffusion` (as its scripts and DiffFace pass them).
/// Keys a file leaves out take `model_and_diffusion_defaults()`'s values, as the scripts do.
/// Two extras: `num_classes` (guided-diffusion fixes 1000) and `id_dim` (DiffFace's identity
/// embedding width, 512 in its Model.pt; absent means no `id_embed`).
public struct ADMConfig: Equatable, CustomStringConvertible {
    public var imageSize = 64
    public var inChannels = 3
    public var numChannels = 128
    public var numResBlocks = 2
    /// Empty means guided-diffusion's default for the image size.
    public var channelMult: [Int] = []
    /// Resolutions (pixels on a side) at which attention runs, as in "32,16,8".
    public var attentionResolutions: [Int] = [16, 8]
    public var numHeads = 4
    public var numHeadChannels = -1
    public var numHeadsUpsample = -1
    public var useScaleShiftNorm = true
    public var resblockUpdown = false
    public var useNewAttentionOrder = false
    public var learnSigma = false
    public var classCond = false
    public var numClasses = 1000
    public var idDim: Int?
    /// Learned 3×3 convs in Downsample/Upsample (create_model always sets this).
    public var convResample = true

    // The diffusion half of the same file, used by samplers.
    public var diffusionSteps = 1000
    public var noiseSchedule = "linear"
    public var timestepRespacing = ""
    public var rescaleTimesteps = false
    public var sigmaSmall = false

    public init() {}

    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }

    /// channel_mult with guided-diffusion's per-size defaults applied.
    public func resolvedChannelMult() throws -> [Int] {
        if !channelMult.isEmpty { return channelMult }
        switch imageSize {
        case 512, 256: return [1, 1, 2, 2, 4, 4]
        case 128: return [1, 1, 2, 3, 4]
        case 64: return [1, 2, 3, 4]
        default: throw FormatError("no default channel_mult for image_size \(imageSize); give channel_mult, e.g. \"1,2,2\"")
        }
    }

    /// Downsampling rates at which attention runs (image_size / resolution).
    public func attentionRates() -> Set<Int> {
        Set(attentionResolutions.map { imageSize / $0 })
    }

    public var description: String {
        var parts = ["image_size \(imageSize)", "num_channels \(numChannels)", "num_res_blocks \(numResBlocks)",
                     "channel_mult \((try? resolvedChannelMult())?.map(String.init).joined(separator: ",") ?? "?")",
                     "attention_resolutions \(attentionResolutions.map(String.init).joined(separator: ","))"]
        parts.append(numHeadChannels > 0 ? "num_head_channels \(numHeadChannels)" : "num_heads \(numHeads)")
        if numHeadsUpsample != -1 { parts.append("num_heads_upsample \(numHeadsUpsample)") }
        if useScaleShiftNorm { parts.append("use_scale_shift_norm") }
        if resblockUpdown { parts.append("resblock_updown") }
        if useNewAttentionOrder { parts.append("use_new_attention_order") }
        if learnSigma { parts.append("learn_sigma") }
        if classCond { parts.append("class_cond (\(numClasses) classes)") }
        if let idDim { parts.append("id_dim \(idDim)") }
        return parts.joined(separator: ", ")
    }

    /// Checks the combination is buildable; a clear message otherwise.
    public func validate() throws {
        let mult = try resolvedChannelMult()
        guard numChannels > 0, numResBlocks >= 0, inChannels > 0, !mult.isEmpty, mult.allSatisfy({ $0 > 0 }) else {
            throw FormatError("ADM config needs positive num_channels, channel_mult and in channels")
        }
        for m in mult where (m * numChannels) % 32 != 0 {
            throw FormatError("ADM channels \(m * numChannels) (channel_mult \(m) × num_channels \(numChannels)) are not a multiple of 32, which GroupNorm32 needs")
        }
        for r in attentionResolutions where r <= 0 || imageSize % r != 0 {
            throw FormatError("attention resolution \(r) does not divide image_size \(imageSize)")
        }
        if numHeadChannels != -1 {
            for m in mult where (m * numChannels) % numHeadChannels != 0 {
                throw FormatError("num_head_channels \(numHeadChannels) does not divide \(m * numChannels) channels")
            }
        } else if numHeads <= 0 {
            throw FormatError("num_heads must be positive when num_head_channels is -1")
        }
        if classCond && numClasses <= 0 { throw FormatError("class_cond needs num_classes > 0") }
        if let idDim, idDim <= 0 { throw FormatError("id_dim must be positive") }
    }

    // MARK: - JSON

    static let ignoredKeys: Set<String> = ["dropout", "use_checkpoint", "use_fp16", "use_kl", "predict_xstart",
                                           "rescale_learned_sigmas"]

    /// Parses a config JSON object. Strings such as "16,8", "1,2,2", "True" are accepted where
    /// guided-diffusion's argparse takes them, as are JSON arrays, numbers and booleans.
    public static func parse(json data: Data) throws -> ADMConfig {
        let dict: [String: JSONValue]
        do { dict = try JSONDecoder().decode([String: JSONValue].self, from: data) } catch {
            throw FormatError("config must be a JSON object of create_model arguments (\(error.localizedDescription))", category: .input)
        }
        var c = ADMConfig()
        var unknown: [String] = []
        for (key, value) in dict {
            switch key {
            case "image_size": c.imageSize = try value.int(key)
            case "in_channels": c.inChannels = try value.int(key)
            case "num_channels": c.numChannels = try value.int(key)
            case "num_res_blocks": c.numResBlocks = try value.int(key)
            case "channel_mult": c.channelMult = try value.intList(key)
            case "attention_resolutions": c.attentionResolutions = try value.intList(key)
            case "num_heads": c.numHeads = try value.int(key)
            case "num_head_channels": c.numHeadChannels = try value.int(key)
            case "num_heads_upsample": c.numHeadsUpsample = try value.int(key)
            case "use_scale_shift_norm": c.useScaleShiftNorm = try value.bool(key)
            case "resblock_updown": c.resblockUpdown = try value.bool(key)
            case "use_new_attention_order": c.useNewAttentionOrder = try value.bool(key)
            case "learn_sigma": c.learnSigma = try value.bool(key)
            case "class_cond": c.classCond = try value.bool(key)
            case "num_classes": c.numClasses = try value.int(key)
            case "id_dim":
                if case .null = value { c.idDim = nil } else { c.idDim = try value.int(key) }
            case "conv_resample": c.convResample = try value.bool(key)
            case "diffusion_steps": c.diffusionSteps = try value.int(key)
            case "noise_schedule": c.noiseSchedule = try value.string(key)
            case "timestep_respacing": c.timestepRespacing = try value.string(key)
            case "rescale_timesteps": c.rescaleTimesteps = try value.bool(key)
            case "sigma_small": c.sigmaSmall = try value.bool(key)
            default:
                if !ignoredKeys.contains(key) { unknown.append(key) }
            }
        }
        if !unknown.isEmpty {
            throw FormatError("unknown config key\(unknown.count > 1 ? "s" : "") \(unknown.sorted().joined(separator: ", ")) (expected guided-diffusion create_model names)", category: .input)
        }
        try c.validate()
        return c
    }

    public static func load(path: String) throws -> ADMConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError("cannot read config \(path)", category: .input)
        }
        do { return try parse(json: data) } catch let e as FormatError {
            throw FormatError("\(path): \(e.message)", category: .input)
        }
    }

    /// The config as JSON with create_model names (channel_mult and attention_resolutions as strings).
    public func jsonObject() -> [String: Any] {
        var d: [String: Any] = [
            "image_size": imageSize, "num_channels": numChannels, "num_res_blocks": numResBlocks,
            "channel_mult": channelMult.map(String.init).joined(separator: ","),
            "attention_resolutions": attentionResolutions.map(String.init).joined(separator: ","),
            "num_heads": numHeads, "num_head_channels": numHeadChannels, "num_heads_upsample": numHeadsUpsample,
            "use_scale_shift_norm": useScaleShiftNorm, "resblock_updown": resblockUpdown,
            "use_new_attention_order": useNewAttentionOrder, "learn_sigma": learnSigma, "class_cond": classCond,
            "num_classes": numClasses, "diffusion_steps": diffusionSteps, "noise_schedule": noiseSchedule,
            "timestep_respacing": timestepRespacing, "rescale_timesteps": rescaleTimesteps,
        ]
        if inChannels != 3 { d["in_channels"] = inChannels }
        if let idDim { d["id_dim"] = idDim }
        return d
    }
}

/// A JSON value as a config file may hold it.
enum JSONValue: Decodable {
    case bool(Bool), number(Double), string(String), array([JSONValue]), null, object

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object }
    }

    var text: String {
        switch self {
        case .bool(let b): return "\(b)"
        case .number(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.text).joined(separator: ", ") + "]"
        case .null: return "null"
        case .object: return "an object"
        }
    }

    func int(_ key: String) throws -> Int {
        switch self {
        case .number(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        case .string(let s): if let i = Int(s.trimmingCharacters(in: .whitespaces)) { return i }
        default: break
        }
        throw FormatError("config \(key) must be an integer, got \(text)", category: .input)
    }

    func bool(_ key: String) throws -> Bool {
        switch self {
        case .bool(let b): return b
        case .number(let d) where d == 0 || d == 1: return d == 1
        case .string(let s):
            switch s.lowercased().trimmingCharacters(in: .whitespaces) {
            case "yes", "true", "t", "y", "1": return true
            case "no", "false", "f", "n", "0": return false
            default: break
            }
        default: break
        }
        throw FormatError("config \(key) must be a boolean, got \(text)", category: .input)
    }

    func string(_ key: String) throws -> String {
        switch self {
        case .string(let s): return s
        case .number(let d) where d == d.rounded(): return String(Int(d))
        default: throw FormatError("config \(key) must be a string, got \(text)", category: .input)
        }
    }

    func intList(_ key: String) throws -> [Int] {
        switch self {
        case .array(let a): return try a.map { try $0.int(key) }
        case .number: return [try int(key)]
        case .string(let s):
            let trimmed = s.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { return [] }
            return try trimmed.split(separator: ",").map { part in
                guard let i = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw FormatError("config \(key) must be comma-separated integers, got \"\(s)\"", category: .input)
                }
                return i
            }
        default: throw FormatError("config \(key) must be a list of integers, got \(text)", category: .input)
        }
    }
}
