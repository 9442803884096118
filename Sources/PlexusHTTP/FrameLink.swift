import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Length-prefixed binary messages over persistent TCP connections, with blocking I/O on
/// threads of their own: the hot path of pipeline steps, where each token crosses every hop
/// once and an event loop's hand-offs would cost more than the bytes. A message is a u32
/// little-endian length and that many bytes; each request gets exactly one answer, in order.
public enum FrameLink {
    /// Writes `length + bytes` to `fd`; false on any error.
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var header = [UInt8](repeating: 0, count: 4)
        let n = UInt32(bytes.count)
        for i in 0..<4 { header[i] = UInt8((n >> (8 * UInt32(i))) & 0xff) }
        return writeAll(fd, header) && writeAll(fd, bytes)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var at = 0
        while at < bytes.count {
            let w = bytes.withUnsafeBytes { p in Glibc.send(fd, p.baseAddress! + at, bytes.count - at, Int32(MSG_NOSIGNAL)) }
            if w < 0 && errno == EINTR { continue }
            guard w > 0 else { return false }
            at += w
        }
        return true
    }

    /// Reads one message of at most `limit` bytes; nil on end of stream, error, timeout or a
    /// length over the limit (the connection is then unusable).
    static func receive(_ fd: Int32, limit: Int) -> [UInt8]? {
        guard let header = readExactly(fd, 4) else { return nil }
        let n = Int(header[0]) | Int(header[1]) << 8 | Int(header[2]) << 16 | Int(header[3]) << 24
        guard n <= limit else { return nil }
        return readExactly(fd, n)
    }

    static func readExactly(_ fd: Int32, _ n: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: n)
        var at = 0
        while at < n {
            let r = out.withUnsafeMutableBytes { p in recv(fd, p.baseAddress! + at, n - at, 0) }
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return nil }
            at += r
        }
        return out
    }

    static func configure(_ fd: Int32, timeoutSeconds: Double) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - Double(Int(timeoutSeconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func address(_ host: String, _ port: Int) -> sockaddr_in? {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &a.sin_addr) == 1 else { return nil }
        return a
    }
}

/// Serves length-prefixed messages: a thread accepts, and each connection gets a thread that
/// reads a message, answers it with `handler` (which may block: the engine runs on this very
/// thread) and writes the answer. Connections beyond `maxConnections`, messages over
/// `maxMessage` bytes and connections idle for `idleSeconds` are closed.
public final class FrameServer: @unchecked Sendable {
    // Invariant: `connections` and `stopped` only under `lock`.
    public let port: Int
    let listener: Int32
    let maxMessage: Int, maxConnections: Int, idleSeconds: Double
    let handler: @Sendable ([UInt8]) -> [UInt8]
    private let lock = NSLock()
    private var connections: Set<Int32> = []
    private var stopped = false

    public init(host: String, port: Int = 0, maxMessage: Int, maxConnections: Int = 256, idleSeconds: Double = 120,
                handler: @escaping @Sendable ([UInt8]) -> [UInt8]) throws {
        guard var a = FrameLink.address(host, port) else { throw NSError(domain: "plexus.frames", code: 1, userInfo: [NSLocalizedDescriptionKey: "bad address \(host)"]) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "plexus.frames", code: 2, userInfo: [NSLocalizedDescriptionKey: "socket: \(errno)"]) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw NSError(domain: "plexus.frames", code: 3, userInfo: [NSLocalizedDescriptionKey: "cannot listen on \(host):\(port): errno \(errno)"])
        }
        var got = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &got) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: got.sin_port))
        listener = fd
        self.maxMessage = maxMessage
        self.maxConnections = maxConnections
        self.idleSeconds = idleSeconds
        self.handler = handler
        let t = Thread { [self] in acceptLoop() }
        t.name = "plexus-frames-accept"
        t.start()
    }

    /// Stops accepting and closes every connection.
    public func stop() {
        let open: Set<Int32> = lock.withLock {
            stopped = true
            return connections
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                if lock.withLock({ stopped }) { return }
                usleep(10_000)
                continue
            }
            let admitted: Bool = lock.withLock {
                guard !stopped, connections.count < maxConnections else { return false }
                connections.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                continue
            }
            FrameLink.configure(fd, timeoutSeconds: idleSeconds)
            let t = Thread { [self] in serve(fd) }
            t.name = "plexus-frames"
            t.stackSize = 1 << 22
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            lock.withLock { _ = connections.remove(fd) }
            close(fd)
        }
        while let message = FrameLink.receive(fd, limit: maxMessage) {
            guard FrameLink.send(fd, handler(message)) else { return }
        }
    }
}

/// The client side: per target, a pool of connections, each exchange run on a thread of a
/// shared pool (blocking write, then read), so that an async caller pays one hand-off each way.
public final class FrameClient: @unchecked Sendable {
    // Invariant: `idle` only under `lock`.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let lock = NSLock()
    private var idle: [String: [Int32]] = [:]
    private let workers: WorkerPool
    private let maxIdlePerTarget: Int

    public init(threads: Int = 64, maxIdlePerTarget: Int = 32) {
        workers = WorkerPool(limit: threads, name: "plexus-frames-client")
        self.maxIdlePerTarget = maxIdlePerTarget
    }

    deinit { closeIdle() }

    /// Sends `message` to `host:port` and returns the answer (at most `limit` bytes).
    public func exchange(host: String, port: Int, _ message: [UInt8], limit: Int, timeoutSeconds: Double) async throws -> [UInt8] {
        let key = "\(host):\(port)"
        return try await withCheckedThrowingContinuation { k in
            workers.submit { [self] in
                // A pooled connection the server has closed fails before any answer: then once more on a new one.
                for attempt in 0..<2 {
                    let pooled = attempt == 0 ? lock.withLock { idle[key]?.popLast() } : nil
                    let fd: Int32
                    if let pooled {
                        fd = pooled
                    } else {
                        guard let fresh = Self.connect(host, port, timeoutSeconds: timeoutSeconds) else {
                            k.resume(throwing: Failure(description: "cannot connect to \(key)"))
                            return
                        }
                        fd = fresh
                    }
                    if FrameLink.send(fd, message), let answer = FrameLink.receive(fd, limit: limit) {
                        let kept: Bool = lock.withLock {
                            guard idle[key, default: []].count < maxIdlePerTarget else { return false }
                            idle[key, default: []].append(fd)
                            return true
                        }
                        if !kept { close(fd) }
                        k.resume(returning: answer)
                        return
                    }
                    close(fd)
                    if pooled == nil { break }
                }
                k.resume(throwing: Failure(description: "the connection to \(key) broke or timed out"))
            }
        }
    }

    static func connect(_ host: String, _ port: Int, timeoutSeconds: Double) -> Int32? {
        guard var a = FrameLink.address(host, port) else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        FrameLink.configure(fd, timeoutSeconds: timeoutSeconds)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Closes the pooled connections.
    public func closeIdle() {
        let all: [Int32] = lock.withLock {
            defer { idle.removeAll() }
            return idle.values.flatMap { $0 }
        }
        for fd in all { close(fd) }
    }
}
