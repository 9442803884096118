import Foundation
import PlexusCore
import Synchronization

/// What an answer must be: any JSON object (`response_format: {"type": "json_object"}`), or a
/// value of a JSON schema (`{"type": "json_schema", …}`), compiled for constrained decoding.
///
/// Supported: `type` (one or a list), `properties` (generated in the order written), `required`,
/// `additionalProperties: false` (always: no other keys are generated), `items`, `minItems`,
/// `maxItems`, `enum`, `const`, `$ref` into `$defs`/`definitions`, `anyOf`/`oneOf` whose
/// alternatives start differently (an object or a string or null, say), and the keywords that
/// describe rather than constrain (`title`, `description`, `default`, `examples`, `$schema`,
/// `strict`), and `maxLength` (in bytes). Anything else is refused with a clear error, never
/// ignored. The output has no whitespace between tokens of JSON, numbers have at most 15
/// integer, 15 fraction and 2 exponent digits (every value a double holds), strings and arrays without a bound at most
/// `defaultMaxStringBytes` and `defaultMaxItems`, and generic values nest at most 16 deep.
public final class JSONGrammar: Sendable, Hashable {
    indirect enum Kind: Sendable, Hashable {
        case any
        case object(props: [Property])
        case array(item: Int, min: Int, max: Int)
        /// At most this many bytes between the quotes (escapes count as written).
        case string(maxBytes: Int)
        case number(integer: Bool)
        case boolean
        case null
        case choice([[UInt8]])
        case union([Int])
    }

    struct Property: Sendable, Hashable {
        /// `"key":` as bytes.
        var key: [UInt8]
        var node: Int
        var required: Bool
    }

    let nodes: [Kind]
    let root: Int
    /// The canonical text it was compiled from (what requests and transcripts carry).
    public let source: String

    public static func == (a: JSONGrammar, b: JSONGrammar) -> Bool { a.source == b.source }
    public func hash(into h: inout Hasher) { h.combine(source) }

    /// Compiles OpenAI's `response_format` object (its JSON text): `json_object` or `json_schema`
    /// (with `json_schema.schema`); nil for `{"type": "text"}`. Throws `unsupported` naming what it
    /// cannot enforce, `malformed` for what is not a response format at all.
    public static func responseFormat(_ text: String) throws -> JSONGrammar? {
        guard let tree = JSONTree.parse(Array(text.utf8), maxDepth: 64), case .object = tree else {
            throw PlexusError(.malformed, "response_format must be a JSON object")
        }
        switch tree["type"]?.string {
        case "text": return nil
        case "json_object": return JSONGrammar(nodes: [.any], root: 0, source: text, objectRoot: true)
        case "json_schema":
            guard let spec = tree["json_schema"], case .object = spec, let schema = spec["schema"] else {
                throw PlexusError(.malformed, "response_format json_schema needs json_schema.schema")
            }
            if let name = spec["name"], name.string == nil { throw PlexusError(.malformed, "json_schema.name must be a string") }
            var compiler = Compiler(root: schema)
            let root = try compiler.compile(schema, depth: 0)
            guard case .object = compiler.nodes[root] else {
                throw PlexusError(.unsupported, "the schema's root must be an object (as OpenAI requires)")
            }
            return JSONGrammar(nodes: compiler.nodes, root: root, source: text, objectRoot: false)
        default:
            throw PlexusError(.malformed, "response_format.type must be text, json_object or json_schema")
        }
    }

    /// json_object: the root is an object, whatever it holds.
    let objectRoot: Bool
    /// Where a schema sets no bound, strings have at most this many bytes and arrays this many
    /// items (so that a model that repeats itself still closes its value). `maxLength` counts
    /// bytes here, which never lets a string pass its limit in characters.
    public static let defaultMaxStringBytes = 128
    public static let defaultMaxItems = 32

    private init(nodes: [Kind], root: Int, source: String, objectRoot: Bool) {
        self.nodes = nodes
        self.root = root
        self.source = source
        self.objectRoot = objectRoot
    }

    /// The state before any output.
    public func start() -> JSONState { JSONState(grammar: self) }

    struct Compiler {
        let rootSchema: JSONTree
        var nodes: [Kind] = []
        var refs: [String: Int] = [:]
        var resolving: Set<String> = []

        init(root: JSONTree) { rootSchema = root }

        static let descriptive: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment", "strict", "$defs", "definitions"]

        mutating func add(_ k: Kind) -> Int {
            nodes.append(k)
            return nodes.count - 1
        }

        mutating func compile(_ s: JSONTree, depth: Int) throws -> Int {
            guard depth < 32 else { throw PlexusError(.unsupported, "the schema nests deeper than 32") }
            guard case let .object(fields) = s else {
                if case .bool(true) = s { return add(.any) }
                throw PlexusError(.unsupported, "a schema must be an object")
            }
            let keys = Set(fields.map(\.0))
            if let ref = s["$ref"]?.string {
                guard keys.subtracting(Self.descriptive).subtracting(["$ref"]).isEmpty else {
                    throw PlexusError(.unsupported, "$ref beside other constraints is not supported")
                }
                return try resolve(ref, depth: depth)
            }
            if let e = s["enum"] {
                guard let values = e.array, !values.isEmpty, values.count <= 1_000 else { throw PlexusError(.unsupported, "enum must list 1...1000 values") }
                return add(.choice(values.map(Self.canonical)))
            }
            if let c = s["const"] { return add(.choice([Self.canonical(c)])) }
            for key in ["anyOf", "oneOf"] {
                if let alts = s[key] {
                    guard let list = alts.array, !list.isEmpty else { throw PlexusError(.unsupported, "\(key) must list schemas") }
                    return try union(list.map { try compile($0, depth: depth + 1) })
                }
            }
            let known: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "maxLength"]
            if let extra = keys.subtracting(Self.descriptive).subtracting(known).sorted().first {
                throw PlexusError(.unsupported, "the schema keyword '\(extra)' is not supported")
            }
            let types: [String]
            if let t = s["type"]?.string {
                types = [t]
            } else if let list = s["type"]?.strings, !list.isEmpty {
                types = list
            } else if s["properties"] != nil {
                types = ["object"]
            } else if s["items"] != nil {
                types = ["array"]
            } else if s["type"] == nil {
                return add(.any)
            } else {
                throw PlexusError(.unsupported, "type must be a string or a list of them")
            }
            var alternatives: [Int] = []
            for t in types {
                switch t {
                case "object": alternatives.append(try object(s, depth: depth))
                case "array":
                    let item = try s["items"].map { try compile($0, depth: depth + 1) } ?? add(.any)
                    let lo = s["minItems"]?.int ?? 0, hi = s["maxItems"]?.int ?? max(lo, JSONGrammar.defaultMaxItems)
                    guard lo >= 0, hi >= lo, lo <= 1_000 else { throw PlexusError(.unsupported, "minItems/maxItems must be 0 ≤ min ≤ max, min ≤ 1000") }
                    alternatives.append(add(.array(item: item, min: lo, max: hi)))
                case "string":
                    let limit = s["maxLength"]?.int ?? JSONGrammar.defaultMaxStringBytes
                    guard (0...65_536).contains(limit) else { throw PlexusError(.unsupported, "maxLength must be 0...65536") }
                    alternatives.append(add(.string(maxBytes: limit)))
                case "number": alternatives.append(add(.number(integer: false)))
                case "integer": alternatives.append(add(.number(integer: true)))
                case "boolean": alternatives.append(add(.boolean))
                case "null": alternatives.append(add(.null))
                default: throw PlexusError(.unsupported, "type '\(t)' is not a JSON schema type")
                }
            }
            return alternatives.count == 1 ? alternatives[0] : try union(alternatives)
        }

        mutating func object(_ s: JSONTree, depth: Int) throws -> Int {
            if let extra = s["additionalProperties"], extra != .bool(false) {
                throw PlexusError(.unsupported, "additionalProperties other than false is not supported")
            }
            let required = Set(s["required"]?.strings ?? [])
            var props: [Property] = []
            if let p = s["properties"] {
                guard case let .object(list) = p else { throw PlexusError(.unsupported, "properties must be an object") }
                for (name, schema) in list {
                    props.append(Property(key: Array((Self.quote(name) + ":").utf8), node: try compile(schema, depth: depth + 1),
                                          required: required.contains(name)))
                }
            }
            var names = Set<String>()
            if case let .object(list)? = s["properties"] { names = Set(list.map(\.0)) }
            if let missing = required.subtracting(names).sorted().first {
                throw PlexusError(.unsupported, "required property '\(missing)' has no schema in properties")
            }
            return add(.object(props: props))
        }

        mutating func union(_ alts: [Int]) throws -> Int {
            // Alternatives must be told apart by their first byte.
            var seen = Set<UInt8>()
            for a in alts {
                let first = Set(JSONState.firstBytes(nodes, a))
                guard seen.isDisjoint(with: first) else {
                    throw PlexusError(.unsupported, "anyOf/oneOf/type alternatives that can start alike (two objects, say) are not supported")
                }
                seen.formUnion(first)
            }
            return add(.union(alts))
        }

        mutating func resolve(_ ref: String, depth: Int) throws -> Int {
            if let n = refs[ref] { return n }
            let parts = ref.split(separator: "/").map(String.init)
            guard parts.count == 3, parts[0] == "#", ["$defs", "definitions"].contains(parts[1]), let target = rootSchema[parts[1]]?[parts[2]] else {
                throw PlexusError(.unsupported, "$ref '\(ref.prefix(80))' is not a reference into #/$defs")
            }
            guard resolving.insert(ref).inserted else { throw PlexusError(.unsupported, "recursive schemas ($ref to '\(ref.prefix(80))' within itself) are not supported") }
            defer { resolving.remove(ref) }
            let n = try compile(target, depth: depth + 1)
            refs[ref] = n
            return n
        }

        static func quote(_ s: String) -> String { JSONTree.quote(s) }

        /// A value as the constrained output writes it: no whitespace, keys in the order given.
        static func canonical(_ v: JSONTree) -> [UInt8] { Array(v.text.utf8) }
    }
}

/// What picks each token: the sampler over the adjusted logits, masked by the JSON constraint
/// when the request has one. Generation and replay both choose through it, so a constrained
/// answer re-executes exactly.
struct TokenChoice {
    let sampler: Sampler
    var json: JSONState?
    let table: TokenTable?
    let eos: TokenID?

    init(_ sampling: SamplingParameters, responseFormat: String?, model: LlamaModel) throws {
        sampler = try Sampler(sampling)
        json = try responseFormat.flatMap { try JSONGrammar.responseFormat($0) }.map { $0.start() }
        table = json == nil ? nil : TokenTable.of(model)
        eos = model.tokenizer.eos
    }

    /// The logits as drawn from (adjusted, masked) and the token drawn at `index`.
    func choose(_ logits: [Float], history: ArraySlice<TokenID>, index: UInt64) throws -> (TokenID, [Float]) {
        var adjusted = sampler.adjust(logits, history: history)
        if let json, let table {
            json.mask(&adjusted, table: table, eos: eos)
            guard adjusted.contains(where: { $0 > -.infinity }) else { throw PlexusError(.unsupported, "no token continues the JSON output") }
        }
        return (sampler.sample(adjusted: adjusted, index: index), adjusted)
    }

    /// Advances the constraint past `token`.
    mutating func accept(_ token: TokenID) {
        if json != nil, let table, Int(token) < table.bytes.count { _ = json!.feed(table.bytes[Int(token)]) }
    }
}

/// Where an output stands in its grammar: a stack of what each open value still expects.
public struct JSONState: Sendable {
    enum Frame: Sendable {
        case value(Int)
        case anyValue(depth: Int)
        case literal([UInt8], Int)
        case choice([[UInt8]], Int)
        /// A key of the schema object below: candidate (property index, bytes), bytes matched.
        case key([(Int, [UInt8])], Int)
        /// Escape state (0 plain, 1 after a backslash, 2...5 hex digits of a \u escape to come, +1) and bytes left.
        case string(UInt8, left: Int)
        case number(integer: Bool, phase: UInt8, digits: UInt8)
        /// phase 0 after `{`, 1 after a value, 2 after `,`.
        case object(Int, next: Int, phase: UInt8)
        /// phase 0 after `{`, 1 after a key, 2 after a value, 3 after `,`.
        case anyObject(depth: Int, phase: UInt8)
        /// phase 0 after `[`, 1 after an item, 2 after `,`.
        case array(Int, count: Int, phase: UInt8)
        case anyArray(depth: Int, count: Int, phase: UInt8)
    }

    let grammar: JSONGrammar
    var stack: [Frame]
    static let maxDepth = 16

    init(grammar: JSONGrammar) {
        self.grammar = grammar
        // json_object: an object, whatever it holds (the `{` first, then its contents).
        stack = grammar.objectRoot ? [.anyObject(depth: 0, phase: 0), .literal([UInt8(ascii: "{")], 0)] : [.value(grammar.root)]
    }

    /// The value is whole: nothing more may follow.
    public var isComplete: Bool { stack.isEmpty }

    /// Inside a plain string, where any byte but `"`, `\` and control characters keeps the state as it is.
    var plainStringLeft: Int? { if case let .string(0, left)? = stack.last { left } else { nil } }

    /// Takes `bytes` if they continue a valid prefix (changing nothing otherwise).
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> Bool {
        var copy = self
        for b in bytes where !copy.feed(byte: b) { return false }
        self = copy
        return true
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

    mutating func feed(byte b: UInt8) -> Bool {
        while let top = stack.last {
            switch top {
            case let .value(n):
                stack.removeLast()
                return start(n, b)
            case let .anyValue(depth):
                stack.removeLast()
                return startAny(depth, b)
            case let .literal(bytes, i):
                guard bytes[i] == b else { return false }
                if i + 1 == bytes.count { stack.removeLast() } else { stack[stack.count - 1] = .literal(bytes, i + 1) }
                return true
            case let .choice(candidates, i):
                let next = candidates.filter { $0.count > i && $0[i] == b }
                if next.isEmpty {
                    // A complete candidate (a number, say) ends where the byte does not continue it.
                    guard candidates.contains(where: { $0.count == i }) else { return false }
                    stack.removeLast()
                    continue
                }
                if next.allSatisfy({ $0.count == i + 1 }) { stack.removeLast() } else { stack[stack.count - 1] = .choice(next, i + 1) }
                return true
            case let .key(candidates, i):
                let next = candidates.filter { $0.1.count > i && $0.1[i] == b }
                guard let first = next.first else { return false }
                if next.count == 1 && first.1.count == i + 1 {
                    stack.removeLast()
                    guard case let .object(n, _, _)? = stack.last, case let .object(props) = grammar.nodes[n] else { return false }
                    stack[stack.count - 1] = .object(n, next: first.0 + 1, phase: 1)
                    stack.append(.value(props[first.0].node))
                } else {
                    stack[stack.count - 1] = .key(next, i + 1)
                }
                return true
            case let .string(esc, left):
                if esc == 0 && b == UInt8(ascii: "\"") {
                    stack.removeLast()
                    return true
                }
                guard left > 0 else { return false }
                switch esc {
                case 0:
                    if b == UInt8(ascii: "\\") {
                        stack[stack.count - 1] = .string(1, left: left - 1)
                    } else {
                        guard b >= 0x20 else { return false }
                        stack[stack.count - 1] = .string(0, left: left - 1)
                    }
                case 1:
                    if b == UInt8(ascii: "u") {
                        stack[stack.count - 1] = .string(5, left: left - 1)
                    } else {
                        guard Array("\"\\/bfnrt".utf8).contains(b) else { return false }
                        stack[stack.count - 1] = .string(0, left: left - 1)
                    }
                default:
                    guard Self.isDigit(b) || (b | 0x20 >= 97 && b | 0x20 <= 102) else { return false }
                    stack[stack.count - 1] = .string(esc == 2 ? 0 : esc - 1, left: left - 1)
                }
                return true
            case let .number(integer, phase, digits):
                if let next = Self.number(integer: integer, phase: phase, digits: digits, b) {
                    stack[stack.count - 1] = .number(integer: integer, phase: next.0, digits: next.1)
                    return true
                }
                guard [2, 3, 5, 8].contains(phase) else { return false }
                stack.removeLast()
                continue
            case let .object(n, next, phase):
                guard case let .object(props) = grammar.nodes[n] else { return false }
                let rest = props[next...]
                let closable = !rest.contains(where: \.required)
                if b == UInt8(ascii: "}") {
                    guard phase != 2, closable else { return false }
                    stack.removeLast()
                    return true
                }
                if phase == 1 {
                    guard b == UInt8(ascii: ","), !rest.isEmpty else { return false }
                    stack[stack.count - 1] = .object(n, next: next, phase: 2)
                    return true
                }
                // A key: any property from `next` up to the first required one.
                var candidates: [(Int, [UInt8])] = []
                for i in next..<props.count {
                    candidates.append((i, props[i].key))
                    if props[i].required { break }
                }
                guard !candidates.isEmpty else { return false }
                stack.append(.key(candidates, 0))
                continue
            case let .anyObject(depth, phase):
                switch (phase, b) {
                case (0, UInt8(ascii: "}")), (2, UInt8(ascii: "}")):
                    stack.removeLast()
                case (0, UInt8(ascii: "\"")), (3, UInt8(ascii: "\"")):
                    stack[stack.count - 1] = .anyObject(depth: depth, phase: 1)
                    stack.append(.string(0, left: JSONGrammar.defaultMaxStringBytes))
                case (1, UInt8(ascii: ":")):
                    stack[stack.count - 1] = .anyObject(depth: depth, phase: 2)
                    stack.append(.anyValue(depth: depth + 1))
                case (2, UInt8(ascii: ",")):
                    stack[stack.count - 1] = .anyObject(depth: depth, phase: 3)
                default:
                    return false
                }
                return true
            case let .array(n, count, phase):
                guard case let .array(item, lo, hi) = grammar.nodes[n] else { return false }
                if b == UInt8(ascii: "]") {
                    guard phase != 2, count >= lo else { return false }
                    stack.removeLast()
                    return true
                }
                if phase == 1 {
                    guard b == UInt8(ascii: ","), count < hi else { return false }
                    stack[stack.count - 1] = .array(n, count: count, phase: 2)
                    return true
                }
                guard count < hi else { return false }
                stack[stack.count - 1] = .array(n, count: count + 1, phase: 1)
                stack.append(.value(item))
                continue
            case let .anyArray(depth, count, phase):
                if b == UInt8(ascii: "]") {
                    guard phase != 2 else { return false }
                    stack.removeLast()
                    return true
                }
                if phase == 1 {
                    guard b == UInt8(ascii: ","), count < JSONGrammar.defaultMaxItems else { return false }
                    stack[stack.count - 1] = .anyArray(depth: depth, count: count, phase: 2)
                    return true
                }
                stack[stack.count - 1] = .anyArray(depth: depth, count: count + 1, phase: 1)
                stack.append(.anyValue(depth: depth + 1))
                continue
            }
        }
        return false
    }

    /// The next (phase, digits) of a JSON number after byte `b`, or nil where `b` does not continue it.
    static func number(integer: Bool, phase: UInt8, digits: UInt8, _ b: UInt8) -> (UInt8, UInt8)? {
        let digit = isDigit(b), e = b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
        switch phase {
        case 0: return b == UInt8(ascii: "-") ? (1, 0) : b == UInt8(ascii: "0") ? (2, 1) : digit ? (3, 1) : nil
        case 1: return b == UInt8(ascii: "0") ? (2, 1) : digit ? (3, 1) : nil
        case 2, 3:
            if phase == 3 && digit && digits < 15 { return (3, digits + 1) }
            if !integer && b == UInt8(ascii: ".") { return (4, 0) }
            if !integer && e { return (6, 0) }
            return nil
        case 4: return digit ? (5, 1) : nil
        case 5:
            if digit && digits < 15 { return (5, digits + 1) }
            return e ? (6, 0) : nil
        case 6: return b == UInt8(ascii: "+") || b == UInt8(ascii: "-") ? (7, 0) : digit ? (8, 1) : nil
        case 7: return digit ? (8, 1) : nil
        case 8: return digit && digits < 2 ? (8, digits + 1) : nil
        default: return nil
        }
    }

    mutating func start(_ n: Int, _ b: UInt8) -> Bool {
        switch grammar.nodes[n] {
        case .any: return startAny(0, b)
        case .object:
            guard b == UInt8(ascii: "{") else { return false }
            stack.append(.object(n, next: 0, phase: 0))
        case .array:
            guard b == UInt8(ascii: "[") else { return false }
            stack.append(.array(n, count: 0, phase: 0))
        case let .string(limit):
            guard b == UInt8(ascii: "\"") else { return false }
            stack.append(.string(0, left: limit))
        case let .number(integer):
            guard let next = Self.number(integer: integer, phase: 0, digits: 0, b) else { return false }
            stack.append(.number(integer: integer, phase: next.0, digits: next.1))
        case .boolean:
            if b == UInt8(ascii: "t") { stack.append(.literal(Array("rue".utf8), 0)) } else if b == UInt8(ascii: "f") { stack.append(.literal(Array("alse".utf8), 0)) } else { return false }
        case .null:
            guard b == UInt8(ascii: "n") else { return false }
            stack.append(.literal(Array("ull".utf8), 0))
        case let .choice(candidates):
            stack.append(.choice(candidates, 0))
            return feed(byte: b)
        case let .union(alts):
            for a in alts where Self.firstBytes(grammar.nodes, a).contains(b) { return start(a, b) }
            return false
        }
        return true
    }

    mutating func startAny(_ depth: Int, _ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "{"):
            guard depth < Self.maxDepth else { return false }
            stack.append(.anyObject(depth: depth, phase: 0))
        case UInt8(ascii: "["):
            guard depth < Self.maxDepth else { return false }
            stack.append(.anyArray(depth: depth, count: 0, phase: 0))
        case UInt8(ascii: "\""): stack.append(.string(0, left: JSONGrammar.defaultMaxStringBytes))
        case UInt8(ascii: "t"): stack.append(.literal(Array("rue".utf8), 0))
        case UInt8(ascii: "f"): stack.append(.literal(Array("alse".utf8), 0))
        case UInt8(ascii: "n"): stack.append(.literal(Array("ull".utf8), 0))
        default:
            guard let next = Self.number(integer: false, phase: 0, digits: 0, b) else { return false }
            stack.append(.number(integer: false, phase: next.0, digits: next.1))
        }
        return true
    }

    /// The bytes a value of node `n` can start with.
    static func firstBytes(_ nodes: [JSONGrammar.Kind], _ n: Int) -> [UInt8] {
        let digits = Array(UInt8(ascii: "0")...UInt8(ascii: "9"))
        switch nodes[n] {
        case .any: return Array("{[\"tfn-".utf8) + digits
        case .object: return [UInt8(ascii: "{")]
        case .array: return [UInt8(ascii: "[")]
        case .string: return [UInt8(ascii: "\"")]
        case .number: return [UInt8(ascii: "-")] + digits
        case .boolean: return Array("tf".utf8)
        case .null: return [UInt8(ascii: "n")]
        case let .choice(c): return Array(Set(c.compactMap(\.first)))
        case let .union(alts): return alts.flatMap { firstBytes(nodes, $0) }
        }
    }
}

/// A vocabulary's token bytes, arranged for masking: tokens by first byte, and which are
/// plain string content (no `"`, `\` or control bytes).
final class TokenTable: Sendable {
    let bytes: [[UInt8]]
    let byFirst: [[TokenID]]
    let plain: [Bool]

    init(_ tokenizer: Tokenizer) {
        var bytes: [[UInt8]] = [], byFirst = [[TokenID]](repeating: [], count: 256), plain: [Bool] = []
        for id in 0..<tokenizer.count {
            let b = tokenizer.bytes(of: TokenID(id))
            bytes.append(b)
            if let f = b.first { byFirst[Int(f)].append(TokenID(id)) }
            plain.append(!b.isEmpty && !b.contains { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 })
        }
        self.bytes = bytes
        self.byFirst = byFirst
        self.plain = plain
    }

    private static let cache = Mutex<[String: TokenTable]>([:])

    /// The table of `model`'s vocabulary, built once per model file.
    static func of(_ model: LlamaModel) -> TokenTable {
        if let t = cache.withLock({ $0[model.path] }) { return t }
        let t = TokenTable(model.tokenizer)
        cache.withLock { $0[model.path] = t }
        return t
    }
}

extension JSONState {
    /// Sets to −∞ the logit of every token that would not keep the output a valid prefix
    /// (every token but the end of sequence once the value is whole; never the end before).
    func mask(_ logits: inout [Float], table: TokenTable, eos: TokenID?) {
        var allowed = [Bool](repeating: false, count: logits.count)
        if isComplete {
            if let eos, Int(eos) < allowed.count { allowed[Int(eos)] = true }
        } else {
            let plainLeft = plainStringLeft ?? -1
            for first in 0..<256 where !table.byFirst[first].isEmpty {
                var probe = self
                guard probe.feed(byte: UInt8(first)) else { continue }
                for id in table.byFirst[first] where Int(id) < allowed.count {
                    if table.plain[Int(id)] && table.bytes[Int(id)].count <= plainLeft {
                        allowed[Int(id)] = true
                    } else {
                        var s = probe
                        allowed[Int(id)] = s.feed(table.bytes[Int(id)].dropFirst())
                    }
                }
            }
        }
        for i in logits.indices where !allowed[i] { logits[i] = -.infinity }
    }
}
