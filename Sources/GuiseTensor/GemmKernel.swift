import CGemm
import COpenBLAS
import Foundation

/// The sgemm every engine GEMM runs on (`pooledGemm` splits the work; this does each block).
///
/// OpenBLAS picks its kernels from the CPU's model number. A model it does not know gets its
/// generic SSE3 ("Prescott") kernels, even on a CPU with AVX2 and FMA: Debian 12's OpenBLAS
/// 0.3.21 on a virtualised "Intel(R) Xeon(R) Processor" ran sgemm at about a fifth of its
/// Haswell kernels' speed. There the engine uses its own packed AVX2/FMA kernel (CGemm)
/// instead; where OpenBLAS runs AVX2 or wider kernels, OpenBLAS stays.
///
/// `GUISE_GEMM=openblas` or `GUISE_GEMM=guise` overrides the choice (for benchmarks and for
/// comparing the two; `guise` falls back to OpenBLAS on a CPU without AVX2 and FMA). The choice
/// is made once per process, so a process's bits never change kernel midway.
public enum GemmKernel: String, Sendable {
    case openBLAS = "openblas"
    case guise = "guise"

    /// The kernel this process runs.
    public static let active: GemmKernel = choose(override: ProcessInfo.processInfo.environment["GUISE_GEMM"],
                                                  openBLASCore: openBLASCore, guiseAvailable: guiseAvailable)

    /// The kernel family OpenBLAS picked for this CPU, as OpenBLAS names it.
    public static var openBLASCore: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Whether Guise's own kernel can run here (built for AVX2/FMA, on a CPU that has them).
    public static let guiseAvailable: Bool = guise_sgemm_available() != 0

    /// OpenBLAS kernel families whose sgemm uses AVX2/FMA or AVX-512.
    static let wideOpenBLASCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    static func choose(override: String?, openBLASCore: String, guiseAvailable: Bool) -> GemmKernel {
        switch override?.lowercased() {
        case "openblas": return .openBLAS
        case "guise": return guiseAvailable ? .guise : .openBLAS
        default:
            return guiseAvailable && !wideOpenBLASCores.contains(openBLASCore.lowercased()) ? .guise : .openBLAS
        }
    }

    /// One line for benchmark headers and reports: which sgemm runs and why.
    public static var summary: String {
        switch active {
        case .guise: return "Guise's AVX2/FMA sgemm (OpenBLAS's kernels here: \(openBLASCore))"
        case .openBLAS: return "OpenBLAS sgemm (\(openBLASCore) kernels)"
        }
    }
}
