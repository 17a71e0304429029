// swift-tools-version:5.9
import PackageDescription

// Hot numeric modules are always optimised, even in `swift test` (debug) builds:
// without -target-cpu the SIMD8<Float> paths fall back to scalar code (DESIGN.md §6).
let hot: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"])]
let cpu: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]

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
        // The engine's fork-join thread pool (spinning workers; see Sources/CThreadPool/include/threadpool.h).
        .target(name: "CThreadPool", path: "Sources/CThreadPool", cSettings: [.unsafeFlags(["-O2", "-march=haswell"])]),
        // Whole-file writes that never leave partial or clobbered outputs; shared by images and weights.
        .target(name: "GuiseFiles"),
        .target(
            name: "CVBridge",
            path: "Sources/CVBridge",
            cxxSettings: [.unsafeFlags(["-I/usr/include/opencv4", "-O2", "-march=haswell", "-std=c++17"])],
            linkerSettings: [
                .linkedLibrary("opencv_core"), .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_imgcodecs"), .linkedLibrary("opencv_photo"),
                .linkedLibrary("opencv_objdetect"),
            ]
        ),
        // Layer 2: tensors and autodiff; images.
        .target(name: "GuiseTensor", dependencies: ["COpenBLAS", "CThreadPool"], swiftSettings: hot),
        .target(name: "GuiseImage", dependencies: ["CPNG", "CVBridge", "GuiseFiles"], swiftSettings: hot),
        // Layer 3: weight formats (safetensors, PyTorch, TFLite, dlib) and layers.
        .target(name: "GuiseFormats", dependencies: ["GuiseTensor", "GuiseFiles"], swiftSettings: hot),
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
            dependencies: ["GuiseTensor", "GuiseImage", "GuiseFormats", "GuiseNetworks", "GuiseDiffusion", "GuiseVision",
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
        .executableTarget(name: "GuiseBench", dependencies: ["GuiseTensor", "GuiseNetworks", "COpenBLAS"], swiftSettings: hot),
        // The ADM against PyTorch at DiffFace's size (`make bench`, Tools/bench_adm.py).
        .executableTarget(name: "ADMBench", dependencies: ["GuiseTensor", "GuiseFormats", "GuiseNetworks"], swiftSettings: hot),

        // The prior's denoiser against OpenCV's NLM on the held-out photos (`make bench-prior`).
        .executableTarget(name: "PriorBench", dependencies: ["GuisePrior", "GuiseImage", "GuiseTensor", "CVBridge"], swiftSettings: hot),

        .testTarget(name: "GuiseTensorTests", dependencies: ["GuiseTensor", "GuiseFormats", "CThreadPool"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseFormatsTests", dependencies: ["GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseImageTests", dependencies: ["GuiseImage", "CVBridge"], swiftSettings: cpu),
        .testTarget(name: "GuiseNetworksTests", dependencies: ["GuiseNetworks", "GuiseDiffusion", "GuiseTensor", "GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuisePriorTests", dependencies: ["GuisePrior", "GuiseNetworks", "GuiseDiffusion", "GuiseTensor", "GuiseFormats", "GuiseImage"], swiftSettings: cpu),
        .testTarget(name: "GuiseDiffusionTests", dependencies: ["GuiseDiffusion", "GuiseTensor", "GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseFaceTests", dependencies: ["GuiseFace", "GuiseVision", "GuiseBody", "GuiseImage", "GuiseTensor", "GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuisePipelinesTests", dependencies: ["GuisePipelines", "GuiseFace", "GuiseVision", "GuiseImage", "GuiseTensor", "GuiseFormats"], swiftSettings: cpu),
        // Depends on the executable so `swift test` builds the `guise` binary these tests run.
        .testTarget(name: "GuiseCLITests", dependencies: ["GuiseCLI", "GuiseFormats", "GuiseImage", "guise"], swiftSettings: cpu),
    ]
)
