import PlexusCore
import PlexusEngine
import PlexusLedger

/// `POST /v1/shard/open` (JSON, under an envelope like `/v1/generate`): a gateway opens a
/// request's sequence on a shard. Every shard gets the whole request (the first tokenizes it,
/// the last samples for it); `layers` must be the shard's own.
public struct ShardOpenRequest: Codable, Sendable, Hashable {
    public var request: GenerateRequest
    public var layers: LayerSpan

    public init(request: GenerateRequest, layers: LayerSpan) {
        self.request = request
        self.layers = layers
    }

    /// The body a gateway sends (what the shard's envelope and receipt hash): the request as
    /// nodes receive it (`GenerateRequest.json`) and the span, in one fixed layout, so that a
    /// verifier can rebuild it byte for byte.
    public var body: [UInt8] {
        Array("{\"request\":".utf8) + request.json
            + Array(",\"layers\":{\"start\":\(layers.start),\"end\":\(layers.end),\"total\":\(layers.total)}}".utf8)
    }
}

/// A shard's answer to an open: the handle its steps name (known only to the gateway), the
/// positions to run before the first sample (prompt and continuation), the hash of their
/// tokens (every shard tokenizes alike; the gateway checks they agree) and, from the first
/// shard, the tokens themselves; and the weights it serves (a chain never mixes weights) and
/// the width of their states.
public struct ShardOpened: Codable, Sendable, Hashable {
    public var sequence: Hash256
    public var positions: Int
    public var tokensHash: Hash256
    public var tokens: [TokenID]?
    public var modelHash: Hash256
    /// The width of a hidden state (the model's embedding).
    public var width: Int
    /// Where the shard takes steps as length-prefixed frames over TCP (`FrameServer`), on the
    /// host of its endpoint; nil: over HTTP (`/v1/shard/step`) only.
    public var framePort: Int?

    public init(sequence: Hash256, positions: Int, tokensHash: Hash256, tokens: [TokenID]?, modelHash: Hash256, width: Int) {
        self.modelHash = modelHash
        self.width = width
        self.sequence = sequence
        self.positions = positions
        self.tokensHash = tokensHash
        self.tokens = tokens
    }

    /// The hash every shard gives for the same positions.
    public static func hash(_ tokens: [TokenID]) -> Hash256 {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 4)
        for t in tokens { withUnsafeBytes(of: UInt32(bitPattern: t).littleEndian) { bytes += $0 } }
        return Hash256.of(bytes)
    }
}

/// `POST /v1/shard/close`: the handle; the answer is the shard's signed receipt.
public struct ShardClose: Codable, Sendable, Hashable {
    public var sequence: Hash256
    public init(sequence: Hash256) { self.sequence = sequence }
}

public struct ShardClosed: Codable, Sendable, Hashable {
    public var receipt: Receipt
    public init(receipt: Receipt) { self.receipt = receipt }
}
