import PlexusCore

/// A parsed GGUF (v2 or v3) file: metadata, tensor directory and the mapped data.
///
/// The file comes from the network, so every count, length and offset is
/// checked against what remains before anything is allocated or read; a
/// damaged file produces a `bad_model` error naming the problem.
public struct GGUFFile: Sendable {
    /// The GGUF version (2 or 3).
    public let version: UInt32
    /// Metadata keys in file order.
    public let keys: [String]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// Byte offset of the data section in the file.
    public let dataOffset: Int
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    let file: MappedFile

    /// Limits on counts read from headers.
    public static let maxTensors = 1 << 16
    public static let maxKeys = 1 << 16
    public static let maxStringBytes = 1 << 20
    public static let maxDims = 4

    /// Maps and parses the file at `path`.
    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        var r = GGUFCursor(file.bytes, name: file.path)
        let magic = try r.bytes(4)
        guard magic == Array("GGUF".utf8) else {
            throw PlexusError(.badModel, "\(file.path) is not a GGUF file (bad magic)")
        }
        version = try r.u32()
        guard version == 2 || version == 3 else {
            throw PlexusError(.unsupported, "\(file.path): GGUF version \(version) is not supported (2 or 3 are)")
        }
        let tensorCount = try r.u64()
        let kvCount = try r.u64()
        guard tensorCount <= UInt64(Self.maxTensors) else {
            throw PlexusError(.badModel, "\(file.path): tensor count \(tensorCount) exceeds \(Self.maxTensors)")
        }
        guard kvCount <= UInt64(Self.maxKeys) else {
            throw PlexusError(.badModel, "\(file.path): metadata count \(kvCount) exceeds \(Self.maxKeys)")
        }
        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<Int(kvCount) {
            let key = try r.string()
            let type = try r.u32()
            let value = try r.value(type: type, depth: 0)
            guard metadata[key] == nil else {
                throw PlexusError(.badModel, "\(file.path): metadata key '\(key)' appears twice")
            }
            keys.append(key)
            metadata[key] = value
        }
        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0, alignment <= 1 << 16, alignment & (alignment - 1) == 0 else {
            throw PlexusError(.badModel, "\(file.path): alignment \(alignment) is not a power of two")
        }
        var tensors: [GGUFTensorInfo] = []
        var names = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let name = try r.string()
            let nDims = try r.u32()
            guard nDims >= 1, nDims <= UInt32(Self.maxDims) else {
                throw PlexusError(.badModel, "\(file.path): tensor '\(name)' has \(nDims) dimensions")
            }
            var shape: [Int] = []
            var count = 1
            for _ in 0..<Int(nDims) {
                let d = try r.u64()
                guard d > 0, d <= UInt64(Int32.max) else {
                    throw PlexusError(.badModel, "\(file.path): tensor '\(name)' has dimension \(d)")
                }
                let (c, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, c <= 1 << 40 else {
                    throw PlexusError(.badModel, "\(file.path): tensor '\(name)' is impossibly large")
                }
                count = c
                shape.append(Int(d))
            }
            let typeCode = try r.u32()
            let offset = try r.u64()
            guard offset <= UInt64(Int.max / 2), Int(offset) % alignment == 0 else {
                throw PlexusError(.badModel, "\(file.path): tensor '\(name)' offset \(offset) is not aligned to \(alignment)")
            }
            guard names.insert(name).inserted else {
                throw PlexusError(.badModel, "\(file.path): tensor '\(name)' appears twice")
            }
            var bytes = 0
            if let type = GGMLType(rawValue: typeCode) {
                guard shape[0] % type.blockLayout.elements == 0, let b = type.byteCount(elements: count) else {
                    throw PlexusError(.badModel, "\(file.path): tensor '\(name)' rows are not whole \(type) blocks")
                }
                bytes = b
            }
            tensors.append(GGUFTensorInfo(name: name, shape: shape, typeCode: typeCode, offset: Int(offset), byteCount: bytes))
        }
        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        for t in tensors where t.type != nil {
            let (end, o) = (dataOffset + t.offset).addingReportingOverflow(t.byteCount)
            guard !o, end <= file.bytes.count else {
                throw PlexusError(.badModel, "\(file.path): tensor '\(t.name)' runs past the end of the file (truncated?)")
            }
        }
        self.keys = keys
        self.metadata = metadata
        self.tensors = tensors
        self.dataOffset = dataOffset
        self.alignment = alignment
    }

    /// The tensor called `name`.
    public func tensor(_ name: String) -> GGUFTensorInfo? { tensors.first { $0.name == name } }

    /// The raw bytes of a tensor (checked at load to lie inside the file).
    public func data(of tensor: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
        guard tensor.type != nil else {
            throw PlexusError(.unsupported, "tensor '\(tensor.name)' has unsupported type code \(tensor.typeCode)")
        }
        let start = dataOffset + tensor.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<start + tensor.byteCount])
    }

    /// Total file size in bytes.
    public var fileSize: Int { file.bytes.count }
}

/// Reads little-endian GGUF fields with bounds checks.
struct GGUFCursor {
    let buffer: UnsafeRawBufferPointer
    let name: String
    var offset = 0

    init(_ buffer: UnsafeRawBufferPointer, name: String) {
        self.buffer = buffer
        self.name = name
    }

    var remaining: Int { buffer.count - offset }

    func truncated(_ what: String) -> PlexusError {
        PlexusError(.badModel, "\(name): truncated while reading \(what) at offset \(offset)")
    }

    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, n <= remaining else { throw truncated("\(n) bytes") }
        defer { offset += n }
        return Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n]))
    }

    mutating func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw truncated("a \(size)-byte integer") }
        defer { offset += size }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func u32() throws -> UInt32 { try le(UInt32.self) }
    mutating func u64() throws -> UInt64 { try le(UInt64.self) }

    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(GGUFFile.maxStringBytes) else {
            throw PlexusError(.badModel, "\(name): string of \(n) bytes at offset \(offset) exceeds the limit")
        }
        let b = try bytes(Int(n))
        guard let s = String(validating: b, as: UTF8.self) else {
            throw PlexusError(.badModel, "\(name): string at offset \(offset - b.count) is not UTF-8")
        }
        return s
    }

    static func elementSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 10, 11, 12: 8
        case 8: 8 // at least the length prefix
        default: nil
        }
    }

    mutating func value(type: UInt32, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try le(UInt8.self))
        case 1: return .int8(try le(Int8.self))
        case 2: return .uint16(try le(UInt16.self))
        case 3: return .int16(try le(Int16.self))
        case 4: return .uint32(try le(UInt32.self))
        case 5: return .int32(try le(Int32.self))
        case 6: return .float32(Float(bitPattern: try le(UInt32.self)))
        case 7:
            let b = try le(UInt8.self)
            guard b <= 1 else { throw PlexusError(.badModel, "\(name): boolean byte \(b) at offset \(offset - 1)") }
            return .bool(b == 1)
        case 8: return .string(try string())
        case 9:
            guard depth == 0 else { throw PlexusError(.badModel, "\(name): nested arrays are not supported") }
            let elementType = try u32()
            let count = try u64()
            guard let size = Self.elementSize(elementType) else {
                throw PlexusError(.badModel, "\(name): array of unknown type \(elementType) at offset \(offset)")
            }
            // Bound the count by the bytes left before reserving anything.
            guard count <= UInt64(remaining / size) else { throw truncated("an array of \(count) elements") }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { values.append(try value(type: elementType, depth: depth + 1)) }
            return .array(elementType: elementType, values)
        case 10: return .uint64(try le(UInt64.self))
        case 11: return .int64(try le(Int64.self))
        case 12: return .float64(Double(bitPattern: try le(UInt64.self)))
        default: throw PlexusError(.badModel, "\(name): unknown metadata type \(type) at offset \(offset)")
        }
    }
}
