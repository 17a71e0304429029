import Foundation

/// A one-line progress bar on stderr, redrawn in place: `[#####-----] 37/75  2.1 s/step  eta 1m20s`.
public struct ProgressBar {
    public let total: Int
    public let label: String
    public let enabled: Bool
    /// What one count is ("step", "job").
    public let unit: String
    let start = Date()

    public init(total: Int, label: String, enabled: Bool, unit: String = "step") {
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.unit = unit
    }

    public func update(_ done: Int, _ note: String = "") {
        guard enabled else { return }
        let width = 30
        let filled = width * min(done, total) / total
        let elapsed = Date().timeIntervalSince(start)
        let per = done > 0 ? elapsed / Double(done) : 0
        let eta = per * Double(total - done)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = "\r\(label) [\(bar)] \(done)/\(total)  \(String(format: "%.2f", per)) s/\(unit)  eta \(ProgressBar.duration(eta))\(note.isEmpty ? "" : "  " + note)"
        FileHandle.standardError.write(Data(line.utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}
