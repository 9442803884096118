import PlexusCore
import PlexusEngine

/// The binary frames of a pipeline step between a gateway and a shard: hidden states travel
/// as exact float32 (little-endian), with a fixed header and no JSON.
///
/// Step (gateway → shard): `"PXS1"`, type 1, the sequence's 32-byte handle, flags (bit 0:
/// sample after the last row), kind (0 tokens, 1 hidden states), rows (u32), width (u32, 0
/// for tokens), then rows × i32 tokens or rows × width × f32.
/// States (shard → gateway): `"PXS1"`, type 2, rows, width, rows × width × f32.
/// Sampled (last shard → gateway): `"PXS1"`, type 3, piece count (u16), each piece (flags: bit 0
/// has a token, bit 1 has a logprob; token i32; text; then, with a logprob, the token's text,
/// the logprob f64 and the alternatives: count u8, each token i32, text, logprob f64), then
/// done (u8: 0 or 1) and, when done, the finish reason (text) and the prompt's positions (u32).
/// Error (shard → gateway): `"PXS1"`, type 4, a code and a message.
/// Integers are little-endian; text is a u32 length and UTF-8 bytes. Every length is checked
/// against the frame before anything is read; what is left over is an error.
public enum ShardFrame {
    public static let magic: [UInt8] = Array("PXS1".utf8)
    /// The most rows and the widest state a frame may carry.
    public static let maxRows = 4_096, maxWidth = 65_536
    /// The most bytes a frame may have (rows × width × 4 is bounded by this too).
    public static let maxBytes = 64 << 20

    public enum Input: Sendable, Equatable {
        case tokens([TokenID])
        case hidden([Float], width: Int)

        public var rows: Int {
            switch self {
            case let .tokens(t): t.count
            case let .hidden(h, w): w == 0 ? 0 : h.count / w
            }
        }
    }

    public struct Step: Sendable, Equatable {
        public var sequence: Hash256
        public var sample: Bool
        public var input: Input
        public init(sequence: Hash256, sample: Bool, input: Input) {
            self.sequence = sequence
            self.sample = sample
            self.input = input
        }
    }

    public struct Piece: Sendable, Equatable {
        public var token: TokenID?
        public var text: String
        public var tokenText: String?
        public var logprob: Double?
        public var top: [NodeEvent.Alternative]
        public init(token: TokenID?, text: String, tokenText: String? = nil, logprob: Double? = nil, top: [NodeEvent.Alternative] = []) {
            self.token = token
            self.text = text
            self.tokenText = tokenText
            self.logprob = logprob
            self.top = top
        }
    }

    public struct Done: Sendable, Equatable {
        public var finish: String
        public var promptTokens: Int
        public init(finish: String, promptTokens: Int) {
            self.finish = finish
            self.promptTokens = promptTokens
        }
    }

    /// A shard's answer to a step.
    public enum Reply: Sendable, Equatable {
        case states([Float], width: Int)
        case sampled([Piece], done: Done?)
        /// A refusal (type 4: code and message as text), where no HTTP status can carry it.
        case error(code: String, message: String)
    }

    // MARK: Encoding

    public static func encode(_ s: Step) -> [UInt8] {
        var w = Writer()
        w.bytes += magic
        w.u8(1)
        w.bytes += s.sequence.bytes
        w.u8(s.sample ? 1 : 0)
        switch s.input {
        case let .tokens(t):
            w.u8(0); w.u32(UInt32(t.count)); w.u32(0)
            for x in t { w.u32(UInt32(bitPattern: x)) }
        case let .hidden(h, width):
            w.u8(1); w.u32(UInt32(width == 0 ? 0 : h.count / width)); w.u32(UInt32(width))
            w.floats(h)
        }
        return w.bytes
    }

    public static func encode(_ r: Reply) -> [UInt8] {
        var w = Writer()
        w.bytes += magic
        switch r {
        case let .states(h, width):
            w.u8(2); w.u32(UInt32(width == 0 ? 0 : h.count / width)); w.u32(UInt32(width))
            w.floats(h)
        case let .sampled(pieces, done):
            w.u8(3)
            w.u16(UInt16(pieces.count))
            for p in pieces {
                w.u8((p.token != nil ? 1 : 0) | (p.logprob != nil ? 2 : 0))
                w.u32(UInt32(bitPattern: p.token ?? 0))
                w.text(p.text)
                if let lp = p.logprob {
                    w.text(p.tokenText ?? "")
                    w.f64(lp)
                    w.u8(UInt8(min(p.top.count, 255)))
                    for a in p.top.prefix(255) {
                        w.u32(UInt32(bitPattern: a.token)); w.text(a.text); w.f64(a.logprob)
                    }
                }
            }
            if let done {
                w.u8(1); w.text(done.finish); w.u32(UInt32(done.promptTokens))
            } else {
                w.u8(0)
            }
        case let .error(code, message):
            w.u8(4); w.text(String(code.prefix(64))); w.text(String(message.prefix(1_000)))
        }
        return w.bytes
    }

    // MARK: Decoding

    public static func decodeStep(_ bytes: [UInt8]) throws -> Step {
        var r = try Reader(bytes, type: 1)
        let sequence = try Hash256(bytes: try r.take(32))
        let flags = try r.u8()
        guard flags <= 1 else { throw PlexusError(.malformed, "unknown step flags \(flags)") }
        let kind = try r.u8()
        let rows = Int(try r.u32()), width = Int(try r.u32())
        guard rows >= 1, rows <= maxRows else { throw PlexusError(.outOfRange, "a step runs 1...\(maxRows) rows, not \(rows)") }
        let input: Input
        switch kind {
        case 0:
            guard width == 0 else { throw PlexusError(.malformed, "tokens have no width") }
            try r.need(rows * 4)
            input = .tokens((0..<rows).map { _ in TokenID(bitPattern: r.u32Unchecked()) })
        case 1:
            guard width >= 1, width <= maxWidth else { throw PlexusError(.outOfRange, "a hidden state is 1...\(maxWidth) wide, not \(width)") }
            input = .hidden(try r.floats(rows * width), width: width)
        default:
            throw PlexusError(.malformed, "unknown step kind \(kind)")
        }
        try r.end()
        return Step(sequence: sequence, sample: flags == 1, input: input)
    }

    public static func decodeReply(_ bytes: [UInt8]) throws -> Reply {
        guard bytes.count >= 5, Array(bytes[0..<4]) == magic else { throw PlexusError(.malformed, "not a shard frame") }
        switch bytes[4] {
        case 2:
            var r = try Reader(bytes, type: 2)
            let rows = Int(try r.u32()), width = Int(try r.u32())
            guard rows >= 1, rows <= maxRows, width >= 1, width <= maxWidth else {
                throw PlexusError(.outOfRange, "\(rows) states of width \(width) are out of bounds")
            }
            let h = try r.floats(rows * width)
            try r.end()
            return .states(h, width: width)
        case 3:
            var r = try Reader(bytes, type: 3)
            let count = Int(try r.u16())
            var pieces: [Piece] = []
            for _ in 0..<count {
                let flags = try r.u8()
                guard flags <= 3 else { throw PlexusError(.malformed, "unknown piece flags \(flags)") }
                let token = TokenID(bitPattern: try r.u32())
                var p = Piece(token: flags & 1 != 0 ? token : nil, text: try r.text())
                if flags & 2 != 0 {
                    p.tokenText = try r.text()
                    p.logprob = try r.f64()
                    let n = Int(try r.u8())
                    for _ in 0..<n { p.top.append(.init(token: TokenID(bitPattern: try r.u32()), text: try r.text(), logprob: try r.f64())) }
                }
                pieces.append(p)
            }
            var done: Done?
            switch try r.u8() {
            case 0: break
            case 1: done = Done(finish: try r.text(), promptTokens: Int(try r.u32()))
            case let v: throw PlexusError(.malformed, "done byte \(v)")
            }
            try r.end()
            return .sampled(pieces, done: done)
        case 4:
            var r = try Reader(bytes, type: 4)
            let code = try r.text(), message = try r.text()
            try r.end()
            return .error(code: code, message: message)
        case let t:
            throw PlexusError(.malformed, "unknown shard frame type \(t)")
        }
    }

    // MARK: Bytes

    struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8)) }
        mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8((v >> (8 * UInt32(i))) & 0xff)) } }
        mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8((v >> (8 * UInt64(i))) & 0xff)) } }
        mutating func f64(_ v: Double) { u64(v.bitPattern) }
        mutating func text(_ s: String) {
            let u = Array(s.utf8)
            u32(UInt32(u.count))
            bytes += u
        }
        mutating func floats(_ h: [Float]) {
            let start = bytes.count
            bytes += [UInt8](repeating: 0, count: h.count * 4)
            bytes.withUnsafeMutableBytes { out in
                h.withUnsafeBytes { src in (out.baseAddress! + start).copyMemory(from: src.baseAddress!, byteCount: src.count) }
            }
            #if _endian(big)
            #error("shard frames assume a little-endian machine")
            #endif
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var at = 5

        init(_ bytes: [UInt8], type: UInt8) throws {
            guard bytes.count <= ShardFrame.maxBytes else { throw PlexusError(.tooLarge, "a shard frame is at most \(ShardFrame.maxBytes) bytes") }
            guard bytes.count >= 5, Array(bytes[0..<4]) == ShardFrame.magic else { throw PlexusError(.malformed, "not a shard frame") }
            guard bytes[4] == type else { throw PlexusError(.malformed, "expected a shard frame of type \(type), got \(bytes[4])") }
            self.bytes = bytes
        }

        func need(_ n: Int) throws {
            guard n >= 0, bytes.count - at >= n else { throw PlexusError(.truncated, "the shard frame ends at byte \(bytes.count), \(n) more needed at \(at)") }
        }
        mutating func take(_ n: Int) throws -> [UInt8] {
            try need(n)
            defer { at += n }
            return Array(bytes[at..<(at + n)])
        }
        mutating func u8() throws -> UInt8 {
            try need(1)
            defer { at += 1 }
            return bytes[at]
        }
        mutating func u16() throws -> UInt16 {
            try need(2)
            defer { at += 2 }
            return UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
        }
        mutating func u32() throws -> UInt32 {
            try need(4)
            return u32Unchecked()
        }
        mutating func u32Unchecked() -> UInt32 {
            defer { at += 4 }
            return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
        }
        mutating func f64() throws -> Double {
            try need(8)
            defer { at += 8 }
            return Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) })
        }
        mutating func text() throws -> String {
            let n = Int(try u32())
            guard n <= 1 << 20 else { throw PlexusError(.tooLarge, "a text of \(n) bytes in a shard frame") }
            let b = try take(n)
            guard let s = String(validating: b, as: UTF8.self) else { throw PlexusError(.malformed, "text in a shard frame is not UTF-8") }
            return s
        }
        mutating func floats(_ count: Int) throws -> [Float] {
            guard count <= ShardFrame.maxBytes / 4 else { throw PlexusError(.tooLarge, "\(count) floats do not fit a shard frame") }
            try need(count * 4)
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in dst.baseAddress!.copyMemory(from: src.baseAddress! + at, byteCount: count * 4) }
            }
            at += count * 4
            return out
        }
        func end() throws {
            guard at == bytes.count else { throw PlexusError(.malformed, "\(bytes.count - at) bytes left over in a shard frame") }
        }
    }
}
