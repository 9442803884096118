/// A parsed JSON document, for the request bodies on the hot path (the
/// gateway's chat requests, the node's generate requests), where Foundation's
/// `JSONDecoder` costs more than the work around it. It reads standard JSON
/// (RFC 8259) without repeated object keys and refuses anything else; callers fall back to `JSONDecoder`
/// whenever a document is not what they expect, so that errors keep their
/// usual wording.
public indirect enum JSONTree: Sendable, Equatable {
    case object([(String, JSONTree)])
    case array([JSONTree])
    case string(String)
    /// The number's text, as written (validated against JSON's grammar).
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONTree, b: JSONTree) -> Bool {
        switch (a, b) {
        case let (.object(x), .object(y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.array(x), .array(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.bool(x), .bool(y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    /// Parses `bytes`; nil if they are not one JSON value (or nest deeper than `maxDepth`).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) -> JSONTree? {
        bytes.withUnsafeBufferPointer { buf in
            var p = Parser(b: buf, maxDepth: maxDepth)
            guard let v = p.value(depth: 0) else { return nil }
            p.skipSpace()
            return p.i == buf.count ? v : nil
        }
    }

    /// The member `key` of an object (the last one if repeated, as `JSONDecoder` does).
    public subscript(key: String) -> JSONTree? {
        guard case let .object(members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var array: [JSONTree]? { if case let .array(a) = self { a } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
    public var isNull: Bool { self == .null }

    /// An integer written without fraction or exponent, in range.
    public var int64: Int64? {
        guard case let .number(t) = self, !t.contains("."), !t.contains("e"), !t.contains("E") else { return nil }
        return Int64(t)
    }

    public var uint64: UInt64? {
        guard case let .number(t) = self, !t.contains("."), !t.contains("e"), !t.contains("E"), !t.hasPrefix("-") else { return nil }
        return UInt64(t)
    }

    public var int: Int? { int64.flatMap { Int(exactly: $0) } }

    /// An array of strings only.
    public var strings: [String]? {
        guard let items = array else { return nil }
        var out: [String] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let s = item.string else { return nil }
            out.append(s)
        }
        return out
    }

    /// The member `key` read by `read`, as an optional field: `.some(nil)` when absent or
    /// null, nil when present but not readable (the caller declines the document).
    public func optional<T>(_ key: String, _ read: (JSONTree) -> T?) -> T?? {
        guard let v = self[key], !v.isNull else { return .some(nil) }
        return read(v).map { .some($0) }
    }

    public var double: Double? {
        guard case let .number(t) = self, let d = Double(t), d.isFinite else { return nil }
        return d
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        let maxDepth: Int
        var i = 0

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ word: StaticString, _ v: JSONTree) -> JSONTree? {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { return nil }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { return nil }
            i += n
            return v
        }

        mutating func value(depth: Int) -> JSONTree? {
            skipSpace()
            guard i < b.count, depth <= maxDepth else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, JSONTree)] = []
                var keys: Set<String> = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard let k = string() else { return nil }
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                    i += 1
                    guard let v = value(depth: depth + 1) else { return nil }
                    // A repeated key is refused: Foundation's readers disagree on which copy
                    // counts (JSONDecoder the first, JSONSerialization the last), so a document
                    // with one must not mean one thing here and another there.
                    // (A set past 16 keys, so that a hostile object of many keys costs no more than its length.)
                    if members.count < 16 {
                        guard !members.contains(where: { $0.0 == k }) else { return nil }
                    } else {
                        if keys.isEmpty { keys = Set(members.map(\.0)) }
                        guard keys.insert(k).inserted else { return nil }
                    }
                    members.append((k, v))
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    return nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONTree] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value(depth: depth + 1) else { return nil }
                    items.append(v)
                    skipSpace()
                    guard i < b.count else { return nil }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    return nil
                }
            case UInt8(ascii: "\""): return string().map { .string($0) }
            case UInt8(ascii: "t"): return literal("true", .bool(true))
            case UInt8(ascii: "f"): return literal("false", .bool(false))
            case UInt8(ascii: "n"): return literal("null", .null)
            default: return number()
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func number() -> JSONTree? {
            let start = i
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while p.i < p.b.count, p.b[p.i] >= 48, p.b[p.i] <= 57 { p.i += 1 }
                return p.i - s
            }
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: "0") { i += 1 } else if digits(&self) == 0 { return nil }
            if i < b.count, b[i] == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { return nil }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { return nil }
            }
            guard i - start <= 64 else { return nil }
            return .number(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
        }

        /// A string literal starting at `"`.
        mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    let body = Array(UnsafeBufferPointer(rebasing: b[start..<i]))
                    i += 1
                    return escaped ? JSONTree.unescape(body[...]) : (body.contains { $0 < 0x20 } ? nil : String(validating: body, as: UTF8.self))
                }
                if c == UInt8(ascii: "\\") {
                    escaped = true
                    i += 2
                    continue
                }
                i += 1
            }
            return nil
        }
    }
}

extension JSONTree {
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

    /// `s` as a JSON string literal.
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

    /// The document as compact JSON text: no whitespace, keys in their order, numbers as written.
    public var text: String {
        switch self {
        case .null: "null"
        case let .bool(b): b ? "true" : "false"
        case let .number(n): n
        case let .string(s): Self.quote(s)
        case let .array(a): "[" + a.map(\.text).joined(separator: ",") + "]"
        case let .object(o): "{" + o.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }
}
