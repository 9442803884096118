import Foundation
import NIOCore
import NIOPosix
import PlexusHTTP
import Synchronization
import Testing

/// The lean server's deadlines and per-address cap, with real sockets on loopback.
/// Timings are generous: the suite runs beside the others on a busy machine.
@Suite struct ConnectionLimitTests {
    static func limits() -> ConnectionLimits {
        var l = ConnectionLimits()
        l.idle = .milliseconds(1_500)
        l.body = .milliseconds(1_500)
        l.tick = .milliseconds(100)
        l.perAddress = 40
        return l
    }

    /// Runs `body` against a server with `limits` whose `/slow` answer streams for 2 s.
    static func withServer(_ limits: ConnectionLimits, _ body: (Int) async throws -> Void) async throws {
        let server = PlainHTTPServer(host: "127.0.0.1", port: 0, name: "limits", limits: limits) { request in
            guard request.path == "/slow" else { return .full(status: 200, headers: [], body: Array("ok".utf8)) }
            let pipe = BytePipe()
            Thread.detachNewThread {
                for _ in 0..<20 where pipe.write(Array("tick\n".utf8)) { usleep(100_000) }
                pipe.finish()
            }
            return .stream(status: 200, headers: [], body: pipe)
        }
        let port = Mutex<Int>(0)
        let run = Task { try await server.run { p in port.withLock { $0 = p } } }
        defer { run.cancel() }
        for _ in 0..<500 where port.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await body(port.withLock { $0 })
    }

    /// A raw connection that collects what it receives.
    final class Raw: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        // Invariant: `received` under `lock`.
        let lock = NSLock()
        var received = ""
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            let s = b.readString(length: b.readableBytes) ?? ""
            lock.withLock { received += s }
        }
        var text: String { lock.withLock { received } }
    }

    static func connect(_ port: Int, sending text: String) async throws -> (any Channel, Raw) {
        let raw = Raw()
        let ch = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(raw) } }
            .connect(host: "127.0.0.1", port: port).get()
        // A server that already gave up on the connection (a very busy machine) has closed it: as good.
        if !text.isEmpty { try? await ch.writeAndFlush(ByteBuffer(string: text)).get() }
        return (ch, raw)
    }

    static func closedWithin(_ ch: any Channel, seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while ch.isActive, Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !ch.isActive
    }

    @Test func halfOpenRequestsAndSilentConnectionsAreClosed() async throws {
        try await Self.withServer(Self.limits()) { port in
            var channels: [any Channel] = []
            for i in 0..<30 {
                // A request line and one header, then nothing; or nothing at all.
                let (ch, _) = try await Self.connect(port, sending: i % 2 == 0 ? "POST /x HTTP/1.1\r\nHost: a\r\n" : "")
                channels.append(ch)
            }
            for ch in channels { #expect(await Self.closedWithin(ch, seconds: 20)) }
        }
    }

    @Test func aBodyThatStopsComingIsCutOff() async throws {
        try await Self.withServer(Self.limits()) { port in
            let (ch, raw) = try await Self.connect(port, sending: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            #expect(await Self.closedWithin(ch, seconds: 20))
            #expect(!raw.text.contains("200"))
        }
    }

    @Test func keptAliveConnectionsCloseWhenIdleButLongAnswersFinish() async throws {
        try await Self.withServer(Self.limits()) { port in
            let (ch, raw) = try await Self.connect(port, sending: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(await Self.closedWithin(ch, seconds: 20))
            #expect(raw.text.hasPrefix("HTTP/1.1 200"))
            // An answer that takes longer than the idle time (2 s of ticks) is not cut.
            let (slow, slowRaw) = try await Self.connect(port, sending: "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(await Self.closedWithin(slow, seconds: 30))
            #expect(slowRaw.text.components(separatedBy: "tick").count - 1 == 20)
        }
    }

    @Test func oneAddressGetsItsQuotaOfConnections() async throws {
        var limits = Self.limits()
        limits.perAddress = 3
        limits.idle = .seconds(30)
        try await Self.withServer(limits) { port in
            var open: [any Channel] = []
            for _ in 0..<3 { open.append(try await Self.connect(port, sending: "").0) }
            let (extra, _) = try await Self.connect(port, sending: "")
            #expect(await Self.closedWithin(extra, seconds: 20))
            for ch in open { #expect(ch.isActive) }
            // A closed connection gives its place back (once the server has seen it go).
            try await open[0].close()
            var answered = false
            for _ in 0..<100 where !answered {
                try await Task.sleep(for: .milliseconds(100))
                let (again, raw) = try await Self.connect(port, sending: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
                for _ in 0..<50 where !raw.text.hasPrefix("HTTP/1.1 200") && again.isActive { try await Task.sleep(for: .milliseconds(100)) }
                answered = raw.text.hasPrefix("HTTP/1.1 200")
                try? await again.close()
            }
            #expect(answered)
            for ch in open.dropFirst() { try? await ch.close() }
        }
    }
}
