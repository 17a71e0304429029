import XCTest
import GuiseTensor

/// How far `actual` is from `expected`, and whether that passes.
public struct Closeness: Equatable {
    /// max |a − e| / max(1, max |e|) over the finite pairs; infinity when the values cannot be compared.
    public var error: Float
    /// Why the comparison fails, or nil when it passes.
    public var failure: String?
}

/// Compares two value lists with a tolerance relative to the expected output's scale:
/// max |a − e| ≤ tol × max(1, max |e|).
///
/// A NaN anywhere, or an infinity that the other side does not match exactly, fails. `Swift.max`
/// returns its first argument when the second is NaN, so a plain running maximum of |a − e|
/// would let an all-NaN output through.
public func closeness(_ actual: [Float], _ expected: [Float], tol: Float, _ what: String = "") -> Closeness {
    guard actual.count == expected.count else {
        return Closeness(error: .infinity, failure: "\(what): \(actual.count) values, expected \(expected.count)")
    }
    var scale: Float = 1, err: Float = 0
    var nonFinite = 0, first = -1
    for i in 0..<actual.count {
        let a = actual[i], e = expected[i]
        if a.isFinite && e.isFinite {
            scale = max(scale, abs(e))
            let d = abs(a - e)
            if d > err { err = d }
        } else if a.isNaN || e.isNaN || a != e {
            nonFinite += 1
            if first < 0 { first = i }
        }
    }
    if first >= 0 {
        return Closeness(error: .infinity, failure: "\(what): \(nonFinite) of \(actual.count) values not finite or not matched;"
                         + " first at [\(first)]: \(actual[first]), expected \(expected[first])")
    }
    let relative = err / scale
    guard relative <= tol else {
        return Closeness(error: relative, failure: "\(what): max error \(err) at scale \(scale) (relative \(relative) > \(tol))")
    }
    return Closeness(error: relative, failure: nil)
}

/// Compares two value lists element by element with an absolute tolerance: |a − e| ≤ tol for each.
/// A NaN on either side fails, and so does an infinity unless the other side is the same infinity.
public func elementwiseFailure(_ actual: [Double], _ expected: [Double], tol: Double, _ what: String = "") -> String? {
    guard actual.count == expected.count else { return "\(what): \(actual.count) values, expected \(expected.count)" }
    for (i, (a, e)) in zip(actual, expected).enumerated() where !(a == e || abs(a - e) <= tol) {
        return "\(what)[\(i)]: \(a) vs \(e) (tolerance \(tol))"
    }
    return nil
}

/// max |a − e| ≤ tol × max(1, max |e|): the error relative to the output's scale, which is returned.
/// NaN or an unmatched infinity on either side fails; see `closeness`.
@discardableResult
public func assertClose(_ actual: Tensor, _ expected: Tensor, tol: Float = 1e-4, _ what: String = "",
                        file: StaticString = #filePath, line: UInt = #line) -> Float {
    guard actual.shape == expected.shape else {
        XCTFail("\(what): shape \(actual.shape), expected \(expected.shape)", file: file, line: line)
        return .infinity
    }
    let c = closeness(actual.values, expected.values, tol: tol, what)
    if let failure = c.failure { XCTFail(failure, file: file, line: line) }
    return c.error
}

/// |a − e| ≤ tol for every element; NaN or an unmatched infinity fails. See `elementwiseFailure`.
public func assertClose(_ actual: [Double], _ expected: [Double], _ tol: Double, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    if let failure = elementwiseFailure(actual, expected, tol: tol, what) { XCTFail(failure, file: file, line: line) }
}
