import Foundation
import GuiseBody
import GuiseFace
import GuiseFormats

/// The networks the pipelines use, each loaded on first use and then handed to every pipeline
/// that asks, from any thread: a batch of jobs pays for loading once, and jobs that run side by
/// side share one copy of the weights.
///
/// Sharing is safe because these models hold no state a run changes: a TFLite network keeps
/// its activations in locals of each call, the ADM and dlib networks are immutable layers over
/// read-only weights that require no gradient (so a guidance backward accumulates into nothing
/// shared), buffers come from a locked pool, autograd's recording switch is per thread, and
/// OpenBLAS runs on one thread, set once (`BLASThreads`). (A TFLite network's
/// profiling counters do change, but only after a benchmark switches profiling on.)
/// OpenCV's cascade classifier is the exception: `detectMultiScale` keeps its working data in
/// the classifier, so a Haar detector is never cached, and every caller gets its own.
public final class ModelCache: @unchecked Sendable {
    private let lock = NSLock()
    private var located: ModelStore?
    private var analyzer: FaceAnalyzer?
    private var identity: FaceIdentity?
    private var pose: PoseEstimator?
    private var segmenter: PersonSegmenter?
    private var detectors: [DetectorChoice: (detector: FaceDetector, name: String, notes: [String])] = [:]
    private var diffusionModels: [String: DiffusionModel] = [:]

    /// Models are looked for in `store`, or where `ModelStore.locate()` finds them.
    public init(store: ModelStore? = nil) {
        located = store
    }

    /// Runs `make` once per cache under the lock: a second thread asking for the same model
    /// while the first loads it waits for that load instead of making a second copy. A failed
    /// load is not remembered, so a later call tries again.
    private func once<T>(_ slot: ReferenceWritableKeyPath<ModelCache, T?>, _ make: (ModelStore) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if let value = self[keyPath: slot] { return value }
        let value = try make(try storeLocked())
        self[keyPath: slot] = value
        return value
    }

    private func storeLocked() throws -> ModelStore {
        if let located { return located }
        let s = try ModelStore.locate()
        located = s
        return s
    }

    public func store() throws -> ModelStore {
        lock.lock()
        defer { lock.unlock() }
        return try storeLocked()
    }

    public func faceAnalyzer() throws -> FaceAnalyzer { try once(\.analyzer) { try FaceAnalyzer(store: $0) } }
    public func faceIdentity() throws -> FaceIdentity { try once(\.identity) { try FaceIdentity(store: $0) } }
    public func poseEstimator() throws -> PoseEstimator { try once(\.pose) { try PoseEstimator(store: $0) } }
    public func personSegmenter() throws -> PersonSegmenter { try once(\.segmenter) { try PersonSegmenter(store: $0) } }

    /// The detector `choice` stands for, as `DetectorChoice.make` makes it; `note` hears the
    /// same notes (a missing BlazeFace file) on every call, not only the one that loaded it.
    /// BlazeFace detectors are shared; Haar detectors (chosen, or the fallback) are made anew.
    public func detector(_ choice: DetectorChoice, note: (String) -> Void = { _ in }) throws -> (detector: FaceDetector, name: String) {
        lock.lock()
        if let d = detectors[choice] {
            lock.unlock()
            d.notes.forEach(note)
            return (d.detector, d.name)
        }
        let made: (detector: FaceDetector, name: String)
        var notes: [String] = []
        do {
            // Without a model folder BlazeFace falls back to Haar, as `make` decides.
            made = try choice.make(store: try? storeLocked(), note: { notes.append($0) })
        } catch {
            lock.unlock()
            throw error
        }
        if !(made.detector is HaarFaceDetector) { detectors[choice] = (made.detector, made.name, notes) }
        lock.unlock()
        notes.forEach(note)
        return made
    }

    /// The diffusion model `DiffusionModel.load` would load for `model` and `config`, loaded
    /// once per (model, config). `log` hears what was inferred when it is loaded.
    public func diffusion(_ model: String?, config: String? = nil, log: (String) -> Void = { _ in }) throws -> DiffusionModel {
        let key = (model ?? DiffusionModel.priorName) + "\u{0}" + (config ?? "")
        lock.lock()
        defer { lock.unlock() }
        if let m = diffusionModels[key] { return m }
        let m = try DiffusionModel.load(model, config: config, store: try storeLocked(), log: log)
        diffusionModels[key] = m
        return m
    }
}
