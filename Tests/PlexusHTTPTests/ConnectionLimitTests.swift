import Foundation
import NIOCore
import NIOPosix
import PlexusCore
import PlexusHTTP
import PlexusTestKit
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
        // Up to 120 s to bind (a loaded 2-core run can take far longer than the usual milliseconds).
        for _ in 0..<12_000 where port.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        guard port.withLock({ $0 }) != 0 else { throw PlexusError(.io, "the server did not bind") }
        try await body(port.withLock { $0 })
    }

    @Test func halfOpenRequestsAndSilentConnectionsAreClosed() async throws {
        try await Self.withServer(Self.limits()) { port in
            var connections: [RawConnection] = []
            for i in 0..<30 {
                // A request line and one header, then nothing; or nothing at all.
                connections.append(try await RawConnection.open(port: port, sending: i % 2 == 0 ? "POST /x HTTP/1.1\r\nHost: a\r\n" : ""))
            }
            for c in connections { #expect(await c.closed(within: 20)) }
        }
    }

    @Test func aBodyThatStopsComingIsCutOff() async throws {
        try await Self.withServer(Self.limits()) { port in
            let c = try await RawConnection.open(port: port, sending: "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            #expect(await c.closed(within: 20))
            #expect(!c.text.contains("200"))
        }
    }

    /// Sends `path` on a new connection and waits for the server to close it; what came back.
    /// On a machine so busy that the head could not be read within the idle time, the
    /// connection is closed unanswered: that attempt is made again (up to 5 times).
    static func answerThenClose(_ port: Int, _ path: String, seconds: Double) async throws -> String {
        var text = ""
        for _ in 0..<5 {
            let c = try await RawConnection.open(port: port, sending: "GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(await c.closed(within: seconds))
            text = c.text
            if !text.isEmpty { break }
        }
        return text
    }

    @Test func keptAliveConnectionsCloseWhenIdleButLongAnswersFinish() async throws {
        try await Self.withServer(Self.limits()) { port in
            #expect(try await Self.answerThenClose(port, "/x", seconds: 20).hasPrefix("HTTP/1.1 200"))
            // An answer that takes longer than the idle time (2 s of ticks) is not cut.
            let slow = try await Self.answerThenClose(port, "/slow", seconds: 30)
            #expect(slow.components(separatedBy: "tick").count - 1 == 20)
        }
    }

    @Test func oneAddressGetsItsQuotaOfConnections() async throws {
        var limits = Self.limits()
        limits.perAddress = 3
        limits.idle = .seconds(30)
        try await Self.withServer(limits) { port in
            var open: [RawConnection] = []
            for _ in 0..<3 { open.append(try await RawConnection.open(port: port, sending: "")) }
            let extra = try await RawConnection.open(port: port, sending: "")
            #expect(await extra.closed(within: 20))
            for c in open { #expect(c.isOpen) }
            // A closed connection gives its place back (once the server has seen it go).
            await open[0].close()
            var answered = false
            for _ in 0..<100 where !answered {
                try await Task.sleep(for: .milliseconds(100))
                let again = try await RawConnection.open(port: port, sending: "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
                for _ in 0..<50 where !again.text.hasPrefix("HTTP/1.1 200") && again.isOpen { try await Task.sleep(for: .milliseconds(100)) }
                answered = again.text.hasPrefix("HTTP/1.1 200")
                await again.close()
            }
            #expect(answered)
            for c in open.dropFirst() { await c.close() }
        }
    }
}
