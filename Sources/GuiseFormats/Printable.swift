/// A string from a file made safe to print in a one-line message: control characters (NUL, ESC,
/// newlines, DEL, C1 controls) and bidirectional overrides become `\u{..}` escapes and a
/// backslash is doubled, so a hostile name can neither drive the terminal nor fake a second line.
/// Very long strings are cut, so a message stays a line.
public func printable(_ s: String, max: Int = 200) -> String {
    var out = ""
    var n = 0
    for u in s.unicodeScalars {
        if n == max { out += "…"; break }
        n += 1
        switch u.value {
        case 0x5C: out += "\\\\"
        case 0x00..<0x20, 0x7F..<0xA0, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0xFEFF:
            out += "\\u{" + String(u.value, radix: 16) + "}"
        default: out.unicodeScalars.append(u)
        }
    }
    return out
}
