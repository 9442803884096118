import Foundation
import PlexusCore

/// A local etcd cluster of real `etcd` processes on loopback, for `plexus up --replicas`
/// and the tests: members can be killed, stopped, resumed and restarted on their data.
public final class EtcdCluster: @unchecked Sendable {
    // Invariant: `processes` is touched under `lock` only.
    public struct Member: Sendable {
        public var name: String
        public var clientPort: Int
        public var peerPort: Int
        public var dataDirectory: String
        public var clientURL: String { "http://127.0.0.1:\(clientPort)" }
        public var peerURL: String { "http://127.0.0.1:\(peerPort)" }
    }

    public let members: [Member]
    public let directory: String
    let quotaBytes: Int?
    let maxRequestBytes: Int?
    private var processes: [Int: Process] = [:]
    private let lock = NSLock()

    /// The `etcd` binary: `$PLEXUS_ETCD`, or the first on `PATH`.
    public static func binary() -> String? {
        if let p = ProcessInfo.processInfo.environment["PLEXUS_ETCD"], FileManager.default.isExecutableFile(atPath: p) { return p }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/usr/local/bin").split(separator: ":") {
            let p = "\(dir)/etcd"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// `size` members with data under `directory`, on free loopback ports.
    public init(size: Int, directory: String, quotaBytes: Int? = nil, maxRequestBytes: Int? = nil) throws {
        guard (1...7).contains(size) else { throw PlexusError(.outOfRange, "an etcd cluster here has 1 to 7 members") }
        self.directory = directory
        self.quotaBytes = quotaBytes
        self.maxRequestBytes = maxRequestBytes
        var ms: [Member] = []
        for i in 0..<size {
            ms.append(Member(name: "m\(i)", clientPort: try Self.freePort(), peerPort: try Self.freePort(), dataDirectory: directory + "/m\(i)"))
        }
        members = ms
    }

    /// The members' client URLs.
    public var clientURLs: [String] { members.map(\.clientURL) }

    /// Starts every member.
    public func start() throws {
        for i in members.indices { try start(i) }
    }

    /// Starts (or restarts, on its data) member `i`.
    public func start(_ i: Int) throws {
        guard let etcd = Self.binary() else {
            throw PlexusError(.notFound, "no etcd binary on PATH (Debian: apt-get install etcd-server; or set PLEXUS_ETCD)")
        }
        let m = members[i]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
        var args = ["--name", m.name, "--data-dir", m.dataDirectory,
                    "--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
                    "--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
                    "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", "plexus",
                    "--logger", "zap", "--log-level", "error", "--heartbeat-interval", "100", "--election-timeout", "1000"]
        if let quotaBytes { args += ["--quota-backend-bytes", String(quotaBytes)] }
        if let maxRequestBytes { args += ["--max-request-bytes", String(maxRequestBytes)] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: etcd)
        p.arguments = args
        let log = FileHandle(forWritingAtPath: directory + "/\(m.name).log") ?? {
            FileManager.default.createFile(atPath: directory + "/\(m.name).log", contents: nil)
            return FileHandle(forWritingAtPath: directory + "/\(m.name).log")
        }()
        log?.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        lock.withLock { processes[i] = p }
    }

    /// The process id of member `i`, if running.
    public func pid(_ i: Int) -> Int32? {
        lock.withLock { processes[i].flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// Sends `signal` to member `i` (SIGKILL: waits for it to end).
    public func signal(_ i: Int, _ signal: Int32) {
        guard let p = lock.withLock({ processes[i] }), p.isRunning else { return }
        kill(p.processIdentifier, signal)
        if signal == SIGKILL {
            p.waitUntilExit()
            lock.withLock { processes[i] = nil }
        }
    }

    /// Waits until every running member answers and a leader is elected.
    public func waitReady(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        let client = EtcdClient(endpoints: clientURLs, timeout: .seconds(2))
        while ContinuousClock.now < deadline {
            if (try? await client.put(Array("plexus/ready".utf8), [1])) != nil { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw PlexusError(.io, "etcd cluster at \(clientURLs.joined(separator: ",")) did not become ready (logs in \(directory))")
    }

    /// The index of the member that leads, if the running members agree on one.
    public func leader() async -> Int? {
        let client = EtcdClient(endpoints: clientURLs, timeout: .seconds(2))
        for (i, m) in members.enumerated() where pid(i) != nil {
            guard let s = try? await client.status(of: m.clientURL), !s.leader.isEmpty else { continue }
            if s.leader == s.memberId { return i }
        }
        return nil
    }

    /// Ends every member.
    public func stop() {
        let all = lock.withLock { () -> [Process] in
            let v = Array(processes.values)
            processes = [:]
            return v
        }
        for p in all where p.isRunning {
            kill(p.processIdentifier, SIGCONT)
            p.terminate()
        }
        for p in all { p.waitUntilExit() }
    }

    deinit { stop() }

    /// A loopback port nobody listens on now.
    public static func freePort() throws -> Int {
        let reserved = try reservedPort()
        close(reserved.fd)
        return reserved.port
    }

    /// A loopback port bound, not listening, by the returned socket: until `fd` is closed,
    /// connections to it are refused and no one else takes it.
    public static func reservedPort() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PlexusError(.io, "socket failed") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { close(fd); throw PlexusError(.io, "cannot bind a loopback port") }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}
