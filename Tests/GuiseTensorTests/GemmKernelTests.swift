import CGemm
import COpenBLAS
import XCTest
@testable import GuiseTensor

/// Guise's own sgemm (CGemm) against a double-precision product: every edge of its tiles and
/// blocks (MR = 6, NR = 16, KC = 256, MC = 144, NC = 2048), both operands plain and
/// transposed, leading dimensions wider than the matrix, and cblas's alpha/beta contract.
final class GemmKernelTests: XCTestCase {
    /// On x86-64 the package is built for Haswell, so the kernel must be there (a build that
    /// lost `-march=haswell` for CGemm fails here); elsewhere it is not built, and these skip.
    func requireKernel() throws {
        #if arch(x86_64)
        struct KernelMissing: Error {}
        // A thrown error fails the test (and keeps it from calling a kernel that is not there).
        if !GemmKernel.guiseAvailable { throw KernelMissing() }
        #else
        throw XCTSkip("CGemm's kernel is AVX2/FMA, built on x86-64 only")
        #endif
    }

    func values(_ count: Int, _ seed: Int) -> [Float] {
        (0..<count).map { i in Float(sin(Double(i * 7 + seed * 13) * 0.37)) }
    }

    /// Checks C = alpha·op(A)·op(B) + beta·C0 element by element, to 1e-6 of Σ|a||b| (float
    /// rounding of k products) plus the rounding of beta·C0. Fails on NaN and on any element
    /// the kernel skipped or wrote outside C.
    func check(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: Float, beta: Float,
               pad: Int = 0, file: StaticString = #filePath, line: UInt = #line) {
        let lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad
        let a = values((ta ? k : m) * lda, m + 3 * k), b = values((tb ? n : k) * ldb, n + k)
        let c0 = values(m * ldc, m * n + 1)
        // beta = 0 must ignore C's old values, NaN included.
        var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : c0
        for i in 0..<m { for j in n..<ldc { c[i * ldc + j] = 12345 } }
        c.withUnsafeMutableBufferPointer { cp in
            guise_sgemm(ta ? 1 : 0, tb ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, cp.baseAddress!, ldc)
        }
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let x = Double(ta ? a[p * lda + i] : a[i * lda + p]), y = Double(tb ? b[j * ldb + p] : b[p * ldb + j])
                    sum += x * y; magnitude += abs(x * y)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])
                let expected = Double(alpha) * sum + old
                let tolerance = 1e-6 * (abs(Double(alpha)) * magnitude + abs(old)) + 1e-30
                let error = Float(abs(Double(c[i * ldc + j]) - expected) / tolerance)
                if !(error <= 1) {
                    XCTFail("\(m)×\(n)×\(k) ta \(ta) tb \(tb) α \(alpha) β \(beta) pad \(pad): C[\(i),\(j)] = \(c[i * ldc + j]), expected \(expected)",
                            file: file, line: line)
                    return
                }
                worst = max(worst, error)
            }
            for j in n..<ldc where c[i * ldc + j] != 12345 {
                XCTFail("\(m)×\(n)×\(k): wrote C[\(i),\(j)] past n", file: file, line: line)
                return
            }
        }
    }

    func testMatchesADoublePrecisionProductOnEveryEdge() throws {
        try requireKernel()
        for (m, n, k) in [(1, 1, 1), (6, 16, 1), (5, 15, 7), (7, 17, 256), (13, 33, 257), (150, 40, 300),
                          (145, 31, 513), (1, 1000, 64), (300, 1, 64), (12, 2050, 20)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                check(ta, tb, m, n, k, alpha: 1, beta: 0)
            }
        }
        for (alpha, beta) in [(Float(-1.5), Float(0)), (1, 1), (0.5, -2), (1, 0.25)] {
            check(false, false, 19, 37, 300, alpha: alpha, beta: beta)
            check(true, true, 19, 37, 300, alpha: alpha, beta: beta, pad: 3)
        }
        check(false, true, 23, 29, 41, alpha: 1, beta: 0, pad: 5)
        check(true, false, 23, 29, 41, alpha: 1, beta: 0.5, pad: 5)
    }

    func testNoProductsScalesC() throws {
        try requireKernel()
        // k = 0 and alpha = 0 leave beta·C, and beta = 0 clears C whatever it held.
        let a: [Float] = [.nan, .infinity], b: [Float] = [.nan, 1]
        var c: [Float] = [2, .nan]
        guise_sgemm(0, 0, 1, 2, 1, 0, a, 1, b, 2, 0, &c, 2)
        XCTAssertEqual(c, [0, 0])
        c = [2, 4]
        guise_sgemm(0, 0, 1, 2, 0, 1, a, 1, b, 2, 0.5, &c, 2)
        XCTAssertEqual(c, [1, 2])
    }

    func testABlockOfCGetsTheBitsOfTheWholeProduct() throws {
        try requireKernel()
        // The engine splits C across its pool at any row or column; each element must sum its
        // products in the same order whichever block it lands in.
        let m = 157, n = 2100, k = 600
        let a = values(m * k, 1), b = values(k * n, 2)
        var whole = [Float](repeating: 0, count: m * n)
        guise_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0, &whole, n)
        var blocks = [Float](repeating: .nan, count: m * n)
        blocks.withUnsafeMutableBufferPointer { c in
            let c = c.baseAddress!
            for (i0, i1) in [(0, 50), (50, 157)] {
                for (j0, j1) in [(0, 37), (37, 1029), (1029, 2100)] {
                    a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            guise_sgemm(0, 0, i1 - i0, j1 - j0, k, 1, a.baseAddress! + i0 * k, k, b.baseAddress! + j0, n, 0,
                                        c + i0 * n + j0, n)
                        }
                    }
                }
            }
        }
        XCTAssertTrue(whole.allSatisfy(\.isFinite))
        XCTAssertEqual(blocks, whole)
    }

    func testOpenBLASStaysWhereItsKernelsAreWide() {
        XCTAssertEqual(GemmKernel.choose(override: nil, openBLASCore: "Prescott", guiseAvailable: true), .guise)
        XCTAssertEqual(GemmKernel.choose(override: nil, openBLASCore: "Nehalem", guiseAvailable: true), .guise)
        for core in ["Haswell", "SkylakeX", "Zen", "Cooperlake", "SapphireRapids"] {
            XCTAssertEqual(GemmKernel.choose(override: nil, openBLASCore: core, guiseAvailable: true), .openBLAS, core)
        }
        XCTAssertEqual(GemmKernel.choose(override: nil, openBLASCore: "Prescott", guiseAvailable: false), .openBLAS)
        XCTAssertEqual(GemmKernel.choose(override: "openblas", openBLASCore: "Prescott", guiseAvailable: true), .openBLAS)
        XCTAssertEqual(GemmKernel.choose(override: "guise", openBLASCore: "Haswell", guiseAvailable: true), .guise)
        XCTAssertEqual(GemmKernel.choose(override: "GUISE", openBLASCore: "Haswell", guiseAvailable: false), .openBLAS)
    }
}
