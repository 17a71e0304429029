import Foundation
import FuzzHeap
import GuiseFiles

// What every harness checks besides "no crash": a refused input throws a `GuiseError` whose
// message is one non-empty line, as the command line prints it.

/// With FUZZ_VERBOSE set, each input's outcome is printed (run a harness on files to see what
/// the seeds reach: `.build-fuzz/fuzz-tflite Fuzz/corpus/tflite/*`).
let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

/// The most heap one input may hold at once: the promise is a result or an error within 100 MB.
let heapBudget: Int64 = 100 << 20

private let hooksInstalled: Bool = {
    fuzz_heap_install()
    return true
}()

/// Runs `body` on one input; a thrown error must be a one-line `GuiseError`, and the heap it
/// holds at its peak must stay within the budget.
func expectResultOrOneLineError(_ body: () throws -> String) {
    _ = hooksInstalled
    fuzz_heap_begin()
    defer {
        let grew = fuzz_heap_peak_growth()
        if grew > heapBudget { fatalError("one input held \(grew >> 20) MB of heap at once, over the \(heapBudget >> 20) MB budget") }
        if verbose { print("fuzz: heap peak \(grew) bytes") }
    }
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
