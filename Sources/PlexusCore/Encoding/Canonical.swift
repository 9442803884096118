/// The canonical byte encoding of everything Plexus signs or hashes.
///
/// Fixed-width integers are big-endian; variable-length byte strings and
/// text are prefixed with a 32-bit length; optional values with a 0/1 tag;
/// arrays with a 32-bit count. There is exactly one encoding of each value,
/// so equal values always have equal hashes.
public protocol CanonicalEncodable {
    /// Appends the canonical bytes of `self`.
    func encode(to writer: inout CanonicalWriter)
}

/// A value that can be read back from its canonical bytes.
public protocol CanonicalDecodable {
    /// Reads one value, throwing `truncated` or `malformed` on bad input.
    init(from reader: inout CanonicalReader) throws
}

/// Both directions.
public typealias CanonicalCodable = CanonicalEncodable & CanonicalDecodable

extension CanonicalEncodable {
    /// The canonical bytes of `self`.
    public var canonicalBytes: [UInt8] {
        var w = CanonicalWriter()
        encode(to: &w)
        return w.bytes
    }
}

extension CanonicalDecodable {
    /// Decodes a complete value; trailing bytes are an error.
    public init(canonicalBytes bytes: [UInt8]) throws {
        var r = CanonicalReader(bytes)
        self = try Self(from: &r)
        try r.expectEnd()
    }
}

/// Appends canonical bytes.
public struct CanonicalWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    public mutating func write(_ v: UInt8) { bytes.append(v) }
    public mutating func write(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func write(_ v: UInt16) { writeBE(v) }
    public mutating func write(_ v: UInt32) { writeBE(v) }
    public mutating func write(_ v: UInt64) { writeBE(v) }

    private mutating func writeBE<T: FixedWidthInteger>(_ v: T) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { bytes.append(contentsOf: $0) }
    }

    /// Length-prefixed bytes.
    public mutating func write(lengthPrefixed v: [UInt8]) {
        write(UInt32(truncatingIfNeeded: v.count))
        bytes.append(contentsOf: v)
    }

    /// Bytes whose length the schema fixes (hashes, keys, signatures).
    public mutating func write(fixed v: [UInt8]) { bytes.append(contentsOf: v) }

    /// Length-prefixed UTF-8 text.
    public mutating func write(_ v: String) { write(lengthPrefixed: Array(v.utf8)) }

    public mutating func write(_ v: Amount) { write(v.units) }
    public mutating func write(_ v: Address) { write(fixed: v.bytes) }
    public mutating func write(_ v: Hash256) { write(fixed: v.bytes) }
    public mutating func write(_ v: Signature) { write(fixed: v.bytes) }
    public mutating func write<T: CanonicalEncodable>(_ v: T) { v.encode(to: &self) }

    /// A counted array.
    public mutating func write<T: CanonicalEncodable>(array: [T]) {
        write(UInt32(truncatingIfNeeded: array.count))
        for e in array { e.encode(to: &self) }
    }

    /// A tagged optional.
    public mutating func write<T: CanonicalEncodable>(optional v: T?) {
        if let v { write(UInt8(1)); v.encode(to: &self) } else { write(UInt8(0)) }
    }
}

/// Reads canonical bytes, checking every length against what remains.
public struct CanonicalReader: Sendable {
    private let bytes: [UInt8]
    /// The read position.
    public private(set) var offset: Int = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Bytes not yet read.
    public var remaining: Int { bytes.count - offset }

    /// Throws unless every byte has been read.
    public func expectEnd() throws {
        guard remaining == 0 else {
            throw PlexusError(.malformed, "\(remaining) unexpected trailing bytes")
        }
    }

    public mutating func readBytes(count: Int) throws -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw PlexusError(.truncated, "needed \(count) bytes at offset \(offset), only \(remaining) remain")
        }
        let out = Array(bytes[offset..<offset + count])
        offset += count
        return out
    }

    public mutating func readUInt8() throws -> UInt8 {
        guard remaining >= 1 else { throw PlexusError(.truncated, "input ended at offset \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBool() throws -> Bool {
        switch try readUInt8() {
        case 0: return false
        case 1: return true
        case let v: throw PlexusError(.malformed, "boolean byte \(v) at offset \(offset - 1)")
        }
    }

    private mutating func readBE<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw PlexusError(.truncated, "needed \(size) bytes at offset \(offset), only \(remaining) remain")
        }
        var v: T = 0
        for i in 0..<size { v = v << 8 | T(bytes[offset + i]) }
        offset += size
        return v
    }

    public mutating func readUInt16() throws -> UInt16 { try readBE(UInt16.self) }
    public mutating func readUInt32() throws -> UInt32 { try readBE(UInt32.self) }
    public mutating func readUInt64() throws -> UInt64 { try readBE(UInt64.self) }

    /// Length-prefixed bytes, at most `limit` long.
    public mutating func readLengthPrefixed(limit: Int = 1 << 24) throws -> [UInt8] {
        let n = Int(try readUInt32())
        guard n <= limit else { throw PlexusError(.tooLarge, "field of \(n) bytes exceeds the limit of \(limit)") }
        return try readBytes(count: n)
    }

    /// Length-prefixed UTF-8 text, at most `limit` bytes.
    public mutating func readString(limit: Int = 4096) throws -> String {
        let b = try readLengthPrefixed(limit: limit)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw PlexusError(.malformed, "text field is not valid UTF-8")
        }
        return s
    }

    public mutating func readAmount() throws -> Amount { Amount(units: try readUInt64()) }
    public mutating func readAddress() throws -> Address { try Address(bytes: readBytes(count: 32)) }
    public mutating func readHash() throws -> Hash256 { try Hash256(bytes: readBytes(count: 32)) }
    public mutating func readSignature() throws -> Signature { try Signature(bytes: readBytes(count: 64)) }

    /// A counted array of at most `limit` elements.
    public mutating func readArray<T: CanonicalDecodable>(of _: T.Type, limit: Int) throws -> [T] {
        let n = Int(try readUInt32())
        guard n <= limit else { throw PlexusError(.tooLarge, "array of \(n) elements exceeds the limit of \(limit)") }
        // Every element takes at least one byte, so this bound is safe to reserve.
        guard n <= remaining else { throw PlexusError(.truncated, "array of \(n) elements cannot fit in \(remaining) bytes") }
        var out = [T]()
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try T(from: &self)) }
        return out
    }

    /// A tagged optional.
    public mutating func readOptional<T: CanonicalDecodable>(_: T.Type) throws -> T? {
        try readBool() ? try T(from: &self) : nil
    }
}

extension Hash256: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(fixed: bytes) }
    public init(from reader: inout CanonicalReader) throws { self = try reader.readHash() }
}

extension Address: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(fixed: bytes) }
    public init(from reader: inout CanonicalReader) throws { self = try reader.readAddress() }
}
