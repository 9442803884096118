import PlexusCore

/// A metadata value in a GGUF file.
public indirect enum GGUFValue: Sendable, Hashable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double), bool(Bool), string(String)
    /// An array of values of one element type (`elementType` is its GGUF code).
    case array(elementType: UInt32, [GGUFValue])

    /// GGUF's code for this value's type.
    public var typeCode: UInt32 {
        switch self {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    /// The value as an integer, if it is one (any width, non-negative or not).
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as a float, if it is numeric.
    public var double: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: int.map(Double.init)
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(_, let a) = self { return a }
        return nil
    }
}

/// ggml tensor types that Plexus knows by name; the kernels for each live
/// with its block layout.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case bf16 = 30

    /// Elements per block and bytes per block.
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q8_0: (32, 34)
        case .q8_1: (32, 36)
        case .q2_K: (256, 84)
        case .q3_K: (256, 110)
        case .q4_K: (256, 144)
        case .q5_K: (256, 176)
        case .q6_K: (256, 210)
        case .q8_K: (256, 292)
        }
    }

    /// Bytes taken by `count` elements, or nil if `count` is not a whole number
    /// of blocks or the size overflows.
    public func byteCount(elements count: Int) -> Int? {
        let (e, b) = blockLayout
        guard count >= 0, count % e == 0 else { return nil }
        let (v, o) = (count / e).multipliedReportingOverflow(by: b)
        return o ? nil : v
    }
}

/// Where one tensor's data lies.
public struct GGUFTensorInfo: Sendable, Hashable {
    public var name: String
    /// Dimensions, innermost first (ggml order): `[columns, rows, …]`.
    public var shape: [Int]
    /// The raw type code (may be a type Plexus cannot compute with).
    public var typeCode: UInt32
    /// Offset of the data from the start of the data section.
    public var offset: Int
    /// Size of the data in bytes.
    public var byteCount: Int

    /// The known type, if any.
    public var type: GGMLType? { GGMLType(rawValue: typeCode) }

    /// Total number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
}

extension PlexusError.Code {
    /// A model file is damaged or not what it claims.
    public static let badModel = Self("bad_model")
    /// A model uses something this engine does not implement.
    public static let unsupported = Self("unsupported")
}
