/// GPT-2's reversible map between bytes and printable Unicode characters, used
/// by byte-level BPE vocabularies: printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100 onwards in byte order.
enum ByteLevel {
    /// `scalars[b]` is the character standing for byte `b`.
    static let scalars: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                out[b] = Unicode.Scalar(UInt8(b))
            } else {
                out[b] = Unicode.Scalar(next) ?? "\0"
                next += 1
            }
        }
        return out
    }()

    /// The byte a character stands for.
    static let bytes: [Unicode.Scalar: UInt8] = {
        var m: [Unicode.Scalar: UInt8] = [:]
        for (b, s) in scalars.enumerated() { m[s] = UInt8(b) }
        return m
    }()

    /// Encodes raw bytes as a byte-level string.
    static func encode<S: Sequence>(_ raw: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in raw { s.append(scalars[Int(b)]) }
        return String(s)
    }

    /// Decodes a byte-level string back to bytes; nil if it holds a foreign character.
    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for s in text.unicodeScalars {
            guard let b = bytes[s] else { return nil }
            out.append(b)
        }
        return out
    }
}
