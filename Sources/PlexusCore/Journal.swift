import Crypto
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only, group-committed log in numbered segment files, for data
/// that must be on disk before a request is answered but moves elsewhere soon
/// after (the gateway's receipts, until the ledger has taken them).
///
/// Each entry is framed as length (u32 LE) · segment number (u64 LE) · check
/// (the first 8 bytes of SHA-256 over the length, the number and the payload)
/// · payload. Reading a segment stops at the first frame that does not hold
/// together — a zero or impossible length, another segment's number (what a
/// reused file held before), a failed check (a torn write) — so a crash at any
/// instant loses only entries whose `append` had not returned.
///
/// Segment files are written full length before use and reused once retired,
/// so an append's `fdatasync` carries data only, not a file-size change. A
/// segment's name becomes durable (the directory is synced) before anything is
/// written into it.
public final class Journal: Sendable {
    public struct Entry: Sendable {
        public let segment: UInt64
        public let payload: [UInt8]
    }

    static let headerBytes = 20
    /// Largest payload accepted (and believed when reading).
    public static let maxPayload = 1 << 24

    public let directory: String
    let segmentBytes: Int
    /// How many retired files are kept for reuse.
    let spareLimit = 2

    private struct State {
        var fd: Int32 = -1
        var segment: UInt64 = 0
        var offset = 0
        var spares: [String] = []
        var failed = false
    }

    // Invariant: every file operation on the current segment happens while holding `state`.
    private let state = Mutex(State())

    /// The segment appends currently go to.
    public var currentSegment: UInt64 { state.withLock { $0.segment } }

    /// Opens the journal in `directory` (created if missing) for appending
    /// after whatever it holds: appends go to a new segment numbered after
    /// every existing one. Returns the journal and the entries found, oldest first.
    public static func open(directory: String, segmentBytes: Int = 8 << 20) throws -> (Journal, [Entry]) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let found = try read(directory: directory)
        let journal = Journal(directory: directory, segmentBytes: max(segmentBytes, 4096))
        // Spares left from before are reused.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let spares = names.filter { $0.hasPrefix("spare-") }.sorted()
        let last = segments(directory).map(\.number).max() ?? 0
        try journal.state.withLock { s in
            s.spares = spares.map { directory + "/" + $0 }
            try journal.start(&s, number: last + 1)
        }
        return (journal, found)
    }

    private init(directory: String, segmentBytes: Int) {
        self.directory = directory
        self.segmentBytes = segmentBytes
    }

    deinit {
        state.withLock { s in
            if s.fd >= 0 { close(s.fd) }
        }
    }

    /// The segment files in `directory` with their numbers, in order.
    public static func segments(_ directory: String) -> [(number: UInt64, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (UInt64, String)? in
            guard name.hasSuffix(".seg"), let n = UInt64(name.dropLast(4), radix: 16) else { return nil }
            return (n, directory + "/" + name)
        }.sorted { $0.0 < $1.0 }
    }

    static func name(_ number: UInt64) -> String {
        let hex = String(number, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".seg"
    }

    /// Every entry in `directory`, oldest first, without changing anything
    /// (safe while another process appends: a segment retired meanwhile is skipped).
    public static func read(directory: String) throws -> [Entry] {
        var out: [Entry] = []
        for (number, path) in segments(directory) {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            out += entries(in: Array(data), segment: number)
        }
        return out
    }

    /// The entries of one segment's bytes, up to the first frame that does not hold together.
    static func entries(in bytes: [UInt8], segment: UInt64) -> [Entry] {
        var out: [Entry] = []
        var at = 0
        while at + headerBytes <= bytes.count {
            let length = Int(load32(bytes, at))
            guard length > 0, length <= maxPayload, at + headerBytes + length <= bytes.count,
                  load64(bytes, at + 4) == segment else { break }
            let payload = Array(bytes[(at + headerBytes)..<(at + headerBytes + length)])
            guard Array(bytes[(at + 12)..<(at + 20)]) == check(length: length, segment: segment, payload: payload) else { break }
            out.append(Entry(segment: segment, payload: payload))
            at += headerBytes + length
        }
        return out
    }

    static func check(length: Int, segment: UInt64, payload: [UInt8]) -> [UInt8] {
        var h = SHA256()
        withUnsafeBytes(of: UInt32(length).littleEndian) { h.update(bufferPointer: $0) }
        withUnsafeBytes(of: segment.littleEndian) { h.update(bufferPointer: $0) }
        h.update(data: payload)
        return Array(h.finalize().prefix(8))
    }

    static func load32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * $1) }
    }

    static func load64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * $1) }
    }

    static func frame(_ payload: [UInt8], segment: UInt64) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(headerBytes + payload.count)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: segment.littleEndian) { out.append(contentsOf: $0) }
        out += check(length: payload.count, segment: segment, payload: payload)
        out += payload
        return out
    }

    /// Appends `payloads` in one write and one `fdatasync`; returns the segment
    /// that holds them once they are durable. Not for concurrent callers: one
    /// writer gathers entries and appends them together.
    public func append(_ payloads: [[UInt8]]) throws -> UInt64 {
        guard !payloads.isEmpty else { return currentSegment }
        guard payloads.allSatisfy({ !$0.isEmpty && $0.count <= Self.maxPayload }) else {
            throw PlexusError(.tooLarge, "a journal entry is empty or larger than \(Self.maxPayload) bytes")
        }
        return try state.withLock { s in
            let size = payloads.reduce(0) { $0 + Self.headerBytes + $1.count }
            if s.failed || (s.offset > 0 && s.offset + size > segmentBytes) {
                try start(&s, number: s.segment + 1)
            }
            var bytes = [UInt8]()
            bytes.reserveCapacity(size)
            for p in payloads { bytes += Self.frame(p, segment: s.segment) }
            do {
                try Self.writeAll(s.fd, bytes, at: s.offset)
                guard fdatasync(s.fd) == 0 else { throw PlexusError(.io, "cannot sync journal segment \(s.segment) (errno \(errno))") }
            } catch {
                // What reached the file is unknown: later entries go to a fresh segment.
                s.failed = true
                throw error
            }
            s.offset += size
            return s.segment
        }
    }

    /// Gives back segment `number` once nothing in it is needed; the current one is kept.
    public func retire(_ number: UInt64) {
        state.withLock { s in
            guard number != s.segment else { return }
            let path = directory + "/" + Self.name(number)
            if s.spares.count < spareLimit {
                let spare = directory + "/spare-" + String(number, radix: 16)
                if rename(path, spare) == 0 {
                    s.spares.append(spare)
                    return
                }
            }
            unlink(path)
        }
    }

    /// Makes segment `number` current: a spare file renamed, or a new one
    /// written full length; its name synced before use.
    private func start(_ s: inout State, number: UInt64) throws {
        if s.fd >= 0 { close(s.fd) }
        s.fd = -1
        let path = directory + "/" + Self.name(number)
        var fd: Int32 = -1
        while fd < 0, let spare = s.spares.popLast() {
            if rename(spare, path) == 0 { fd = Glibc.open(path, O_WRONLY | O_CLOEXEC) }
        }
        if fd < 0 {
            fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw PlexusError(.io, "cannot create journal segment \(path) (errno \(errno))") }
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            var at = 0
            do {
                while at < segmentBytes {
                    let n = min(zeros.count, segmentBytes - at)
                    try Self.writeAll(fd, Array(zeros[0..<n]), at: at)
                    at += n
                }
                guard fdatasync(fd) == 0 else { throw PlexusError(.io, "cannot sync journal segment \(path) (errno \(errno))") }
            } catch {
                close(fd)
                unlink(path)
                throw error
            }
        }
        let dir = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let synced = dir >= 0 && fsync(dir) == 0
        if dir >= 0 { close(dir) }
        guard synced else {
            close(fd)
            throw PlexusError(.io, "cannot sync journal directory \(directory) (errno \(errno))")
        }
        s.fd = fd
        s.segment = number
        s.offset = 0
        s.failed = false
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw PlexusError(.io, "cannot write journal (errno \(errno))") }
            done += n
        }
    }
}
