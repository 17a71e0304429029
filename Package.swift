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
        .library(name: "Guise", targets: ["GuiseCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Layer 1: C shims.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
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
        .target(name: "GuiseTensor", dependencies: ["COpenBLAS"], swiftSettings: hot),
        .target(name: "GuiseImage", dependencies: ["CPNG", "CVBridge"], swiftSettings: hot),
        // Layer 3: weight formats (safetensors, PyTorch, TFLite, dlib) and layers.
        .target(name: "GuiseFormats", dependencies: ["GuiseTensor"], swiftSettings: hot),
        // Layer 5: diffusion (schedules, samplers, guidance, mask blending, RePaint).
        .target(name: "GuiseDiffusion", dependencies: ["GuiseTensor"], swiftSettings: hot),
        // Layer 7: the command-line tool, a thin layer over the library.
        .target(
            name: "GuiseCLI",
            dependencies: [
                "GuiseTensor", "GuiseImage", "GuiseFormats",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: cpu
        ),
        .executableTarget(name: "guise", dependencies: ["GuiseCLI"], swiftSettings: cpu),

        .testTarget(name: "GuiseTensorTests", dependencies: ["GuiseTensor", "GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseFormatsTests", dependencies: ["GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseImageTests", dependencies: ["GuiseImage"], swiftSettings: cpu),
        .testTarget(name: "GuiseDiffusionTests", dependencies: ["GuiseDiffusion", "GuiseTensor", "GuiseFormats"], resources: [.copy("Fixtures")], swiftSettings: cpu),
        .testTarget(name: "GuiseCLITests", dependencies: ["GuiseCLI", "GuiseFormats"], swiftSettings: cpu),
    ]
)
