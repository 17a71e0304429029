// swift-tools-version:5.9
import Foundation
import PackageDescription

// CPU flags for the machine the package is built on (the manifest runs on the build host).
// On x86-64 the SIMD8<Float> paths need AVX2 and FMA: without -target-cpu they fall back to
// scalar code (docs/ARCHITECTURE.md, "Speed"). On arm64 the baseline (NEON) is all we assume.
#if arch(x86_64)
let swiftCPU = ["-target-cpu", "haswell"]
let cCPU = ["-march=haswell"]
#elseif arch(arm64)
let swiftCPU: [String] = []
let cCPU = ["-march=armv8-a"]
#else
let swiftCPU: [String] = []
let cCPU: [String] = []
#endif

// Hot numeric modules are always optimised, even in `swift test` (debug) builds. -Ounchecked
// (no overflow or bounds traps) is kept for modules whose kernels only see shapes that were
// validated before them; the file readers parse untrusted bytes, so they keep every check.
let hot: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"] + swiftCPU)]
let checkedHot: [SwiftSetting] = [.unsafeFlags(["-O"] + swiftCPU)]
let cpu: [SwiftSetting] = swiftCPU.isEmpty ? [] : [.unsafeFlags(swiftCPU)]

// OpenCV's compile flags (its include folder) from pkg-config. A `.systemLibrary` with
// `pkgConfig:` would also put every library pkg-config lists (all 55) on the link line, so the
// libraries CVBridge uses are named in its target instead. Without pkg-config no flags are
// added and the compiler reports the missing OpenCV headers.
func pkgConfigCFlags(_ package: String) -> [String] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["pkg-config", "--cflags", package]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return [] }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return [] }
    return String(decoding: output, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
}
let openCVFlags = pkgConfigCFlags("opencv4")

let package = Package(
    name: "Guise",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "guise", targets: ["guise"]),
        .library(name: "Guise", targets: ["GuisePipelines", "GuiseCLI"]),
        .executable(name: "GuiseBench", targets: ["GuiseBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Layer 1: C shims.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        // libpng's classic API behind a C wrapper (setjmp stays in C); see Sources/CPNG/include/cpng.h.
        .target(name: "CPNG", path: "Sources/CPNG", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("png16")]),
        // The engine's fork-join thread pool (spinning workers; see Sources/CThreadPool/include/threadpool.h),
        // its per-thread autograd switch and its allocator setting.
        .target(name: "CThreadPool", path: "Sources/CThreadPool", cSettings: [.unsafeFlags(["-O2"] + cCPU)]),
        // A packed AVX2/FMA sgemm, for CPUs whose model OpenBLAS does not recognise (it then runs
        // SSE3 kernels); see Sources/CGemm/include/cgemm.h and GemmKernel.swift.
        .target(name: "CGemm", path: "Sources/CGemm", cSettings: [.unsafeFlags(["-O3"] + cCPU)]),
        // Whole-file writes that never leave partial or clobbered outputs; shared by images and weights.
        .target(name: "GuiseFiles"),
        .target(
            name: "CVBridge",
            path: "Sources/CVBridge",
            cxxSettings: [.unsafeFlags(openCVFlags + ["-O2", "-std=c++17"] + cCPU)],
            linkerSettings: [
                .linkedLibrary("opencv_core"), .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_imgcodecs"), .linkedLibrary("opencv_photo"),
                .linkedLibrary("opencv_objdetect"),
            ]
        ),
        // Layer 2: tensors and autodiff; images.
        .target(name: "GuiseTensor", dependencies: ["COpenBLAS", "CGemm", "CThreadPool"], swiftSettings: hot),
        .target(name: "GuiseImage", dependencies: ["CPNG", "CVBridge", "GuiseFiles"], swiftSettings: hot),
        // Layer 3: weight formats (safetensors, PyTorch, TFLite, dlib) and layers.
        .target(name: "GuiseFormats", dependencies: ["GuiseTensor", "GuiseFiles"], swiftSettings: checkedHot),
        // Layer 4: networks (embedded face models run on the engine; the ADM UNet).
        .target(name: "GuiseNetworks", dependencies: ["GuiseTensor", "GuiseFormats"], swiftSettings: hot),
        // Layer 5: what face and body analysis share: SSD anchors and decoding, weighted NMS,
        // letterbox, rotated-rectangle crops, NHWC conversion, differentiable tensor crops.
        .target(name: "GuiseVision", dependencies: ["GuiseImage", "GuiseTensor", "GuiseFiles"], swiftSettings: cpu),
        // Layer 5: face analysis (detection, mesh, iris, gaze, identity, regions, alignment, paste-back).
        .target(name: "GuiseFace", dependencies: ["GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats", "GuiseNetworks", "CVBridge"], swiftSettings: cpu),
        // Layer 5: body analysis (pose detection and landmarks, person segmentation).
        .target(name: "GuiseBody", dependencies: ["GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats", "GuiseNetworks"], swiftSettings: cpu),
        // Layer 5: diffusion (schedules, samplers, guidance, mask blending, RePaint).
        .target(name: "GuiseDiffusion", dependencies: ["GuiseTensor", "GuiseFiles"], swiftSettings: hot),
        // Layer 5: Guise's own diffusion prior: training, checkpoints, denoising.
        .target(name: "GuisePrior", dependencies: ["GuiseTensor", "GuiseFormats", "GuiseImage", "GuiseNetworks", "GuiseDiffusion"], swiftSettings: hot),
        // Layer 6: the pipelines users run (face swap, edit, clothes) and what they share: model
        // loading by name or path, face selection, image ↔ tensor conversion.
        .target(
            name: "GuisePipelines",
            dependencies: ["GuiseFiles", "GuiseTensor", "GuiseImage", "GuiseFormats", "GuiseNetworks", "GuiseDiffusion", "GuiseVision",
                           "GuiseFace", "GuiseBody", "GuisePrior", "CVBridge"],
            swiftSettings: cpu),
        // Layer 7: the command-line tool, a thin layer over the library.
        .target(
            name: "GuiseCLI",
            dependencies: [
                "GuiseTensor", "GuiseImage", "GuiseFormats", "GuiseVision", "GuiseFace", "GuiseBody", "GuiseNetworks", "GuiseDiffusion", "GuisePrior", "GuisePipelines",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: cpu
        ),
        .executableTarget(name: "guise", dependencies: ["GuiseCLI"], swiftSettings: cpu),
        // Benchmarks against PyTorch (`make bench`).
        .executableTarget(name: "GuiseBench", dependencies: ["GuiseTensor", "GuiseFormats", "GuiseNetworks", "COpenBLAS"], swiftSettings: hot),
        // The ADM against PyTorch at DiffFace's size (`make bench`, Tools/bench_adm.py).
        .executableTarget(name: "ADMBench", dependencies: ["GuiseTensor", "GuiseFormats", "GuiseNetworks"], swiftSettings: hot),

        // The prior's denoiser against OpenCV's NLM on the held-out photos (`make bench-prior`).
        .executableTarget(name: "PriorBench", dependencies: ["GuisePrior", "GuiseImage", "GuiseTensor", "CVBridge"], swiftSettings: hot),

        // Shared by every test target: NaN-proof comparisons, fixtures (Tests/Fixtures, written by
        // `make fixtures`), gradient checks. A plain target, so test targets can depend on it.
        .target(name: "GuiseTestSupport", dependencies: ["GuiseTensor", "GuiseFormats", "GuiseImage"], path: "Tests/GuiseTestSupport", swiftSettings: cpu),
        .testTarget(name: "GuiseTestSupportTests", dependencies: ["GuiseTestSupport"], swiftSettings: cpu),
        .testTarget(name: "GuiseTensorTests", dependencies: ["GuiseTestSupport", "GuiseTensor", "GuiseFormats", "CThreadPool", "CGemm", "COpenBLAS"], swiftSettings: cpu),
        .testTarget(name: "GuiseFormatsTests", dependencies: ["GuiseTestSupport", "GuiseFormats"], swiftSettings: cpu),
        .testTarget(name: "GuiseImageTests", dependencies: ["GuiseTestSupport", "GuiseImage", "CVBridge"], swiftSettings: cpu),
        .testTarget(name: "GuiseNetworksTests", dependencies: ["GuiseTestSupport", "GuiseNetworks", "GuiseDiffusion", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        .testTarget(name: "GuisePriorTests", dependencies: ["GuiseTestSupport", "GuisePrior", "GuiseNetworks", "GuiseDiffusion", "GuiseTensor", "GuiseFormats", "GuiseImage"], swiftSettings: cpu),
        .testTarget(name: "GuiseDiffusionTests", dependencies: ["GuiseTestSupport", "GuiseDiffusion", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        .testTarget(name: "GuiseFaceTests", dependencies: ["GuiseTestSupport", "GuiseFace", "GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        .testTarget(name: "GuiseBodyTests", dependencies: ["GuiseTestSupport", "GuiseBody", "GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        .testTarget(name: "GuisePipelinesTests", dependencies: ["GuiseTestSupport", "GuiseFiles", "GuisePipelines", "GuisePrior", "GuiseFace", "GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        // Depends on the executable so `swift test` builds the `guise` binary these tests run.
        .testTarget(name: "GuiseCLITests", dependencies: ["GuiseTestSupport", "GuiseCLI", "GuiseFormats", "GuiseImage", "guise"], swiftSettings: cpu),
    ]
)
