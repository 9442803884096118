import Foundation
import PlexusCore

/// Writes GGUF v3 files: used by tests (tiny random-weight models) and tools.
public struct GGUFWriter: Sendable {
    /// A tensor to write: shape innermost first, data already in `type`'s layout.
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var type: GGMLType
        public var data: [UInt8]

        public init(name: String, shape: [Int], type: GGMLType, data: [UInt8]) {
            self.name = name
            self.shape = shape
            self.type = type
            self.data = data
        }
    }

    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [Tensor] = []
    public var alignment = 32

    public init() {}

    /// Adds a metadata entry.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        metadata.removeAll { $0.key == key }
        metadata.append((key, value))
    }

    /// The file's bytes; throws if a tensor's data does not match its shape and type.
    public func bytes() throws -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) { put(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        func putValue(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .float64(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s)
            case .array(let t, let items):
                put(t)
                put(UInt64(items.count))
                for i in items { putValue(i) }
            }
        }
        put(UInt32(3))
        put(UInt64(tensors.count))
        var meta = metadata
        if alignment != 32 && !meta.contains(where: { $0.key == "general.alignment" }) {
            meta.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        put(UInt64(meta.count))
        for (k, v) in meta {
            putString(k)
            put(v.typeCode)
            putValue(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            let count = t.shape.reduce(1, *)
            guard t.type.byteCount(elements: count) == t.data.count else {
                throw PlexusError(.malformed, "tensor \(t.name): \(t.data.count) bytes do not hold \(count) \(t.type) elements")
            }
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            putString(t.name)
            put(UInt32(t.shape.count))
            for d in t.shape { put(UInt64(d)) }
            put(t.type.rawValue)
            put(UInt64(off))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out.append(contentsOf: t.data)
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(bytes(), to: path)
    }
}
