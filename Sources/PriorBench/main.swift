import Foundation
import CVBridge
import GuiseTensor
import GuiseImage
import GuisePrior

// `make bench-prior`: the prior's denoiser against OpenCV's non-local means on the held-out photos.
// Each photo contributes its centre 256² crop at full resolution (the two wallpapers are 2560×1600,
// so theirs are small, smooth patches). Gaussian noise at σ = 15, 25, 50 (0–255 units) from a fixed
// seed, rounded and clipped to 8 bits as a file would be. NLM (fastNlMeansDenoisingColored, h = h_color,
// windows 7/21) gets the h from a grid that gives the best mean PSNR per σ. Guise's outputs are
// rounded to 8 bits too. PSNR is over all three channels, peak 255, averaged over photos.
// With --manifest (the prior's data manifest), the same numbers are also given for each `kind` of
// photo (face, person, scene), each with NLM at the h that is best for that kind.

func argument(_ name: String) -> String? {
    let a = CommandLine.arguments
    guard let i = a.firstIndex(of: name), i + 1 < a.count else { return nil }
    return a[i + 1]
}
func fail(_ msg: String) -> Never {
    FileHandle.standardError.write(Data("bench-prior: error: \(msg)\n".utf8))
    exit(1)
}

let dataDir = argument("--data") ?? ".cache/prior-data/heldout"
let modelPath = argument("--model") ?? "Models/\(PriorModel.shippedName)"
let size = Int(argument("--crop") ?? "256") ?? 256
let seed = UInt64(argument("--seed") ?? "0") ?? 0
let sigmas = (argument("--sigmas") ?? "15,25,50").split(separator: ",").compactMap { Double($0) }
let steps = Int(argument("--steps") ?? "1") ?? 1
let withTTA = !CommandLine.arguments.contains("--no-tta")
let hFactors: [Float] = [0.35, 0.45, 0.55, 0.65, 0.8, 0.95, 1.1]
let manifestPath = argument("--manifest")

let files = ((try? FileManager.default.contentsOfDirectory(atPath: dataDir)) ?? []).filter {
    ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
}.sorted()
if files.isEmpty { fail("no photos in \(dataDir); run `make prior-data`") }

/// Each photo's kind from the manifest; a photo the manifest does not list is "unlisted".
var kinds = [String](repeating: "unlisted", count: files.count)
if let manifestPath {
    guard let data = FileManager.default.contents(atPath: manifestPath),
          let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let entries = root["files"] as? [[String: Any]]
    else { fail("\(manifestPath): not a data manifest (a JSON object with a `files` list)") }
    var byName: [String: String] = [:]
    for e in entries {
        if let name = e["name"] as? String, let kind = e["kind"] as? String { byName[name] = kind }
    }
    kinds = files.map { byName[$0] ?? "unlisted" }
}

/// Interleaved 8-bit RGB centre crops.
var crops: [[UInt8]] = []
var sizes: [Int] = []
for f in files {
    let img: Image
    do { img = try ImageIO.read(dataDir + "/" + f) } catch { fail("\(f): \(error)") }
    // A photo smaller than the crop gives its largest centre square (a multiple of 8).
    let size = min(size, min(img.width, img.height) / 8 * 8)
    let x0 = (img.width - size) / 2, y0 = (img.height - size) / 2
    var c = [UInt8](repeating: 0, count: size * size * 3)
    for y in 0..<size {
        for x in 0..<size {
            for ch in 0..<3 {
                c[(y * size + x) * 3 + ch] = UInt8(min(max((img[x0 + x, y0 + y, ch] * 255).rounded(), 0), 255))
            }
        }
    }
    crops.append(c)
    sizes.append(size)
}

func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double {
    var se = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); se += d * d }
    return 10 * log10(255 * 255 / max(se / Double(a.count), 1e-12))
}

let denoiser: PriorDenoiser
do { denoiser = try PriorDenoiser(path: modelPath) } catch { fail("\(modelPath): \(error)") }

func guise(_ noisy: [UInt8], size: Int, sigma: Double, tta: Bool) throws -> [UInt8] {
    let plane = size * size
    var v = [Float](repeating: 0, count: 3 * plane)
    for i in 0..<plane { for ch in 0..<3 { v[ch * plane + i] = Float(noisy[i * 3 + ch]) / 127.5 - 1 } }
    let out = try denoiser.denoise(Tensor(shape: [1, 3, size, size], values: v), sigma: sigma, steps: steps, tta: tta).values
    var r = [UInt8](repeating: 0, count: 3 * plane)
    for i in 0..<plane { for ch in 0..<3 { r[i * 3 + ch] = UInt8(min(max(((out[ch * plane + i] + 1) * 127.5).rounded(), 0), 255)) } }
    return r
}

print("bench-prior: \(files.count) held-out photos, centre crops \(Set(sizes).sorted().map { "\($0)²" }.joined(separator: ", ")), seed \(seed), model \(modelPath), \(steps) step\(steps == 1 ? "" : "s")")
print("| σ  | noisy | NLM (best h) | Guise | Guise+TTA | Guise − NLM | time/img (1×, TTA) |")
print("|----|------:|-------------:|------:|----------:|------------:|-------------------:|")
/// Per σ and photo: PSNR of the noisy input, of NLM at each h, of Guise (1×, TTA), and Guise's times.
struct PhotoResult { var noisy = 0.0, nlm = [Double](), guise = 0.0, tta = 0.0, guiseTime = 0.0, ttaTime = 0.0 }
struct Summary { var noisy = 0.0, nlmBest = 0.0, h: Float = 0, guise = 0.0, tta = 0.0, guiseTime = 0.0, ttaTime = 0.0 }

/// Means over the photos `ks`, NLM at the h with the best mean over them.
func summarise(_ r: [PhotoResult], _ ks: [Int], sigma: Double) -> Summary {
    let m = Double(ks.count)
    var s = Summary()
    var nlm = [Double](repeating: 0, count: hFactors.count)
    for k in ks {
        s.noisy += r[k].noisy / m; s.guise += r[k].guise / m; s.tta += r[k].tta / m
        s.guiseTime += r[k].guiseTime / m; s.ttaTime += r[k].ttaTime / m
        for j in hFactors.indices { nlm[j] += r[k].nlm[j] / m }
    }
    let best = nlm.indices.max { nlm[$0] < nlm[$1] }!
    s.nlmBest = nlm[best]
    s.h = hFactors[best] * Float(sigma)
    return s
}

var allPass = true
var results: [Double: [PhotoResult]] = [:]
for sigma in sigmas {
    var r = [PhotoResult](repeating: PhotoResult(), count: crops.count)
    for (k, clean) in crops.enumerated() {
        var rng = PriorRNG(seed: seed &+ UInt64(sigma * 1000) &* 1_000_003 &+ UInt64(k))
        var n = [Float](repeating: 0, count: clean.count)
        n.withUnsafeMutableBufferPointer { rng.fillNormal($0.baseAddress!, count: $0.count) }
        let noisy = (0..<clean.count).map { UInt8(min(max((Double(clean[$0]) + sigma * Double(n[$0])).rounded(), 0), 255)) }
        r[k].noisy = psnr(noisy, clean)
        for f in hFactors {
            var out = [UInt8](repeating: 0, count: clean.count)
            let h = f * Float(sigma)
            if cvb_nl_means_colored(noisy, Int32(sizes[k]), Int32(sizes[k]), h, h, &out) != 0 {
                fail("NLM: \(String(cString: cvb_last_error()))")
            }
            r[k].nlm.append(psnr(out, clean))
        }
        do {
            var t = Date()
            r[k].guise = psnr(try guise(noisy, size: sizes[k], sigma: sigma, tta: false), clean)
            r[k].guiseTime = Date().timeIntervalSince(t)
            if withTTA {
                t = Date()
                r[k].tta = psnr(try guise(noisy, size: sizes[k], sigma: sigma, tta: true), clean)
                r[k].ttaTime = Date().timeIntervalSince(t)
            }
        } catch { fail("denoise: \(error)") }
    }
    results[sigma] = r
    let s = summarise(r, Array(crops.indices), sigma: sigma)
    let g = withTTA ? s.tta : s.guise
    allPass = allPass && g >= s.nlmBest + 3
    print(String(format: "| %2.0f | %5.2f | %5.2f (h %4.1f) | %5.2f | %9@ | %+11.2f | %6.2f s, %@ |", sigma, s.noisy, s.nlmBest,
                 s.h, s.guise, withTTA ? String(format: "%.2f", s.tta) as NSString : "–" as NSString,
                 g - s.nlmBest, s.guiseTime, withTTA ? String(format: "%.2f s", s.ttaTime) as NSString : "–" as NSString))
}
print("acceptance (Guise\(withTTA ? "+TTA" : "") ≥ NLM + 3 dB at every σ): \(allPass ? "met" : "NOT met")")

if manifestPath != nil {
    let order = ["face", "person", "scene"]
    let present = Set(kinds)
    let groups = order.filter { present.contains($0) } + present.subtracting(order).sorted()
    print("")
    print("By kind (\(groups.map { k in "\(k) \(kinds.filter { $0 == k }.count)" }.joined(separator: ", ")); NLM at the best h for each kind):")
    print("| kind   | σ  | noisy | NLM (best h) | Guise | Guise+TTA | Guise − NLM | Guise 1× − NLM |")
    print("|--------|----|------:|-------------:|------:|----------:|------------:|---------------:|")
    for kind in groups {
        let ks = kinds.indices.filter { kinds[$0] == kind }
        for sigma in sigmas {
            let s = summarise(results[sigma]!, ks, sigma: sigma)
            let g = withTTA ? s.tta : s.guise
            print(String(format: "| %@ | %2.0f | %5.2f | %5.2f (h %4.1f) | %5.2f | %9@ | %+11.2f | %+14.2f |",
                         kind.padding(toLength: 6, withPad: " ", startingAt: 0) as NSString, sigma, s.noisy,
                         s.nlmBest, s.h, s.guise, withTTA ? String(format: "%.2f", s.tta) as NSString : "–" as NSString,
                         g - s.nlmBest, s.guise - s.nlmBest))
        }
    }
}
