import PlexusCore

/// Hand-written JSON for the hot path: every streamed token is one event on
/// the node and one chunk on the gateway, and generic coders cost more than
/// the work around them. Anything unusual falls back to the generic coders.
/// The node events' own writers and readers extend it in `PlexusWire`.
public enum FastJSON {
    /// `s` as a JSON string literal (quotes included).
    public static func quote(_ s: String) -> String {
        // Most text needs no escapes: copied as it is.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) { return "\"" + s + "\"" }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    package static func hex(_ b: UInt8) -> UInt32? {
        switch b {
        case 48...57: UInt32(b - 48)
        case 65...70: UInt32(b - 55)
        case 97...102: UInt32(b - 87)
        default: nil
        }
    }

    /// The contents of a JSON string literal (without its quotes).
    package static func unescape(_ b: ArraySlice<UInt8>) -> String? {
        guard b.contains(UInt8(ascii: "\\")) else {
            guard !b.contains(UInt8(ascii: "\"")), !b.contains(where: { $0 < 0x20 }) else { return nil }
            return String(validating: b, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = b.startIndex
        var pendingHigh: UInt32?
        while i < b.endIndex {
            let c = b[i]
            if c == UInt8(ascii: "\"") || c < 0x20 { return nil }
            guard c == UInt8(ascii: "\\") else {
                guard pendingHigh == nil else { return nil }
                out.append(c)
                i += 1
                continue
            }
            guard i + 1 < b.endIndex else { return nil }
            let e = b[i + 1]
            i += 2
            if e == UInt8(ascii: "u") {
                guard i + 4 <= b.endIndex, let h0 = hex(b[i]), let h1 = hex(b[i + 1]), let h2 = hex(b[i + 2]), let h3 = hex(b[i + 3]) else { return nil }
                i += 4
                let v = h0 << 12 | h1 << 8 | h2 << 4 | h3
                var scalar: UInt32
                if (0xD800...0xDBFF).contains(v) {
                    guard pendingHigh == nil else { return nil }
                    pendingHigh = v
                    continue
                } else if (0xDC00...0xDFFF).contains(v) {
                    guard let high = pendingHigh else { return nil }
                    scalar = 0x10000 + ((high - 0xD800) << 10) + (v - 0xDC00)
                    pendingHigh = nil
                } else {
                    guard pendingHigh == nil else { return nil }
                    scalar = v
                }
                guard let u = Unicode.Scalar(scalar) else { return nil }
                out += Array(String(Character(u)).utf8)
                continue
            }
            guard pendingHigh == nil else { return nil }
            switch e {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            default: return nil
            }
        }
        guard pendingHigh == nil else { return nil }
        return String(validating: out, as: UTF8.self)
    }
}
