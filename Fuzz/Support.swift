import Foundation
import GuiseFiles

// What every harness checks besides "no crash": a refused input throws a `GuiseError` whose
// message is one non-empty line, as the command line prints it.

/// With FUZZ_VERBOSE set, each input's outcome is printed (run a harness on files to see what
/// the seeds reach: `.build-fuzz/fuzz-tflite Fuzz/corpus/tflite/*`).
let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

/// Runs `body` on one input; a thrown error must be a one-line `GuiseError`.
func expectResultOrOneLineError(_ body: () throws -> String) {
    do {
        let outcome = try body()
        if verbose { print("fuzz: ok: \(outcome)") }
    } catch let e as GuiseError {
        let m = e.message
        if m.isEmpty || m.contains("\n") || m.contains("\r") {
            fatalError("error message is not one line: \(m.debugDescription)")
        }
        if verbose { print("fuzz: refused: \(m)") }
    } catch {
        fatalError("not a GuiseError: \(error)")
    }
}

/// The fuzzer's input as a buffer of exactly its size (libFuzzer's own copy, so AddressSanitizer
/// reports any read past its end).
func input(_ data: UnsafePointer<UInt8>, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: size)
}

/// Keeps a borrowed buffer's owner slot filled: the harness's input outlives every reader call.
final class InputOwner {}
