import Crypto
import PlexusCore

/// A commitment to the hidden states of a run: SHA-256 of the final hidden state
/// (after the last norm, as float32 little-endian) of every position the model ran,
/// chunk by chunk of `interval` positions, and the Merkle root of the chunk hashes.
/// One 32-byte root whatever the length; the chunk hashes locate the first chunk
/// where a re-execution diverges.
public struct Commitment: Sendable, Hashable, Codable {
    public var root: Hash256
    public var chunks: [Hash256]
    /// Positions committed.
    public var positions: Int
    public var interval: Int

    /// Positions per chunk unless a request says otherwise (the ledger's `commitmentInterval`).
    public static let defaultInterval = 32

    /// The first chunk where `other` differs (nil when they agree).
    public func firstDivergentChunk(from other: Commitment) -> Int? {
        for i in 0..<max(chunks.count, other.chunks.count) where i >= chunks.count || i >= other.chunks.count || chunks[i] != other.chunks[i] {
            return i
        }
        return nil
    }
}

/// Builds a `Commitment` position by position.
public struct CommitmentBuilder {
    public let interval: Int
    private var hasher = SHA256()
    private var inChunk = 0
    private var positions = 0
    private var chunks: [Hash256] = []

    public init(interval: Int = Commitment.defaultInterval) {
        self.interval = max(1, interval)
    }

    /// Adds the final hidden state of the next position.
    /// Adds the first `rows` states of `states` (rows of `width` values one after another;
    /// all of them unless given).
    public mutating func add(rows states: [Float], width: Int, count rows: Int? = nil) {
        let n = rows ?? (width > 0 ? states.count / width : 0)
        precondition(n * width <= states.count)
        states.withUnsafeBufferPointer { p in
            for i in 0..<n { add(UnsafeBufferPointer(rebasing: p[(i * width)..<((i + 1) * width)])) }
        }
    }

    public mutating func add(_ state: UnsafeBufferPointer<Float>) {
        #if _endian(little)
        hasher.update(bufferPointer: UnsafeRawBufferPointer(state))
        #else
        for v in state { withUnsafeBytes(of: v.bitPattern.littleEndian) { hasher.update(bufferPointer: $0) } }
        #endif
        inChunk += 1
        positions += 1
        if inChunk == interval { closeChunk() }
    }

    private mutating func closeChunk() {
        chunks.append(try! Hash256(bytes: Array(hasher.finalize())))  // a SHA-256 digest is 32 bytes
        hasher = SHA256()
        inChunk = 0
    }

    /// The commitment so far (a partial last chunk closes it).
    public func finish() -> Commitment {
        var b = self
        if b.inChunk > 0 { b.closeChunk() }
        return Commitment(root: MerkleRoot.of(b.chunks), chunks: b.chunks, positions: b.positions, interval: interval)
    }
}
