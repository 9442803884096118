import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PlexusCore
import Synchronization

/// A lean HTTP/1.1 client for plain `http://` endpoints (nodes on a private
/// network or loopback): persistent connections kept per host and event loop
/// (a request made on an event loop goes out on a connection of that loop, so
/// the request, its answer and the task waiting for it stay on one thread),
/// the request written in one event-loop hop, and the response body handed
/// over in coalesced pieces through a `BytePipe`. TLS endpoints go through a
/// general client instead.
public final class PlainHTTPClient: Sendable {
    /// Where requests go: host and port of a plain `http://` URL.
    public struct Target: Hashable, Sendable {
        public var host: String
        public var port: Int

        /// The target of `url` (`http://host[:port][/…]`), or nil for anything else (https, malformed).
        public init?(url: String) {
            guard url.hasPrefix("http://") else { return nil }
            var rest = url.dropFirst(7)
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            guard !rest.isEmpty, !rest.contains("@"), !rest.hasPrefix("[") else { return nil }
            if let colon = rest.lastIndex(of: ":") {
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(p), colon > rest.startIndex else { return nil }
                host = String(rest[..<colon])
                port = p
            } else {
                host = String(rest)
                port = 80
            }
        }
    }

    /// A response whose head has arrived; its body streams through `body`.
    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: BytePipe
    }

    /// The connection closed before the response ended.
    public struct ConnectionClosed: Error, CustomStringConvertible {
        public var description: String { "the connection closed before the response ended" }
    }

    /// The connection closed before the request went out (nothing was sent: it may go again on another).
    struct ClosedBeforeSending: Error {}

    /// The response did not end within the exchange's timeout (the connection is closed).
    public struct TimedOut: Error, CustomStringConvertible {
        public var after: TimeAmount
        public var description: String { "the response did not end within \(Double(after.nanoseconds) / 1e9) s" }
    }

    /// The server answered with a status no HTTP/1.1 server may send.
    public struct MalformedResponse: Error, CustomStringConvertible {
        public var status: Int
        public var description: String { "the server answered with an invalid status \(status)" }
    }

    /// Idle connections are kept per target and per event loop.
    private struct PoolKey: Hashable {
        var target: Target
        var loop: ObjectIdentifier
    }

    private let group: any EventLoopGroup
    private let idle = Mutex<[PoolKey: [Connection]]>([:])
    private let maxIdlePerTarget: Int

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxIdlePerTarget: Int = 64) {
        self.group = group
        self.maxIdlePerTarget = maxIdlePerTarget
    }

    /// Sends `POST path` with `body` and hands the response to `consume`. The
    /// connection goes back to the pool once the response has ended, even if
    /// `consume` returns before reading all of it; a connection left in an
    /// unknown state (an error, a cancellation, `timeout`) is closed.
    public func post<T: Sendable>(_ target: Target, path: String, headers: [(String, String)], body: [UInt8], timeout: TimeAmount,
                                  consume: (Response) async throws -> T) async throws -> T {
        try await send(target, method: .POST, path: path, headers: headers, body: body, timeout: timeout, consume: consume)
    }

    /// As `post`, with any method.
    public func send<T: Sendable>(_ target: Target, method: HTTPMethod, path: String, headers: [(String, String)], body: [UInt8],
                                  timeout: TimeAmount, consume: (Response) async throws -> T) async throws -> T {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: "\(target.host):\(target.port)")
        head.headers.add(name: "content-length", value: String(body.count))
        for (n, v) in headers { head.headers.add(name: n, value: v) }
        // A pooled connection the server has meanwhile closed fails before any answer: then once more on a new one.
        var reused = true
        // A new connection closed before the request went out (a busy server, a reset): up to three more.
        var unsent = 0
        func sendAgain() throws {
            unsent += 1
            reused = false
            if unsent > 3 || Task.isCancelled { throw ConnectionClosed() }
        }
        // The loop this task runs on, if it is one of the group's: its connections first.
        let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? group.any()
        let key = PoolKey(target: target, loop: ObjectIdentifier(loop))
        while true {
            let connection: Connection
            if reused, let c = checkout(key) {
                connection = c
            } else {
                reused = false
                do {
                    connection = try await connect(target, on: loop)
                } catch is ClosedBeforeSending {
                    try sendAgain()
                    continue
                }
            }
            let exchange = Exchange()
            do {
                let response = try await withTaskCancellationHandler {
                    try await connection.start(exchange, head: head, body: body, timeout: timeout)
                } onCancel: {
                    connection.channel.close(promise: nil)
                }
                let result: T
                do {
                    result = try await withTaskCancellationHandler {
                        try await consume(response)
                    } onCancel: {
                        connection.channel.close(promise: nil)
                    }
                } catch {
                    finish(connection, exchange, key: key, abandon: false)
                    throw error
                }
                finish(connection, exchange, key: key, abandon: true)
                return result
            } catch let e as ConnectionClosed where reused && !exchange.sawResponse && !Task.isCancelled {
                _ = e
                reused = false
                continue
            } catch is ClosedBeforeSending {
                connection.channel.close(promise: nil)
                try sendAgain()
                continue
            }
        }
    }

    /// Closes idle connections.
    public func closeIdle() {
        let all = idle.withLock { d -> [Connection] in
            let v = d.values.flatMap { $0 }
            d = [:]
            return v
        }
        for c in all { c.channel.close(promise: nil) }
    }

    private func checkout(_ k: PoolKey) -> Connection? {
        idle.withLock { d -> Connection? in
            while var list = d[k], let c = list.popLast() {
                d[k] = list
                if c.channel.isActive { return c }
            }
            return nil
        }
    }

    private func release(_ c: Connection, _ k: PoolKey) {
        let kept = c.channel.isActive && idle.withLock { d -> Bool in
            guard d[k, default: []].count < maxIdlePerTarget else { return false }
            d[k, default: []].append(c)
            return true
        }
        if !kept { c.channel.close(promise: nil) }
    }

    /// After `consume`: with the response ended and the connection reusable,
    /// back to the pool; with the response still arriving and `abandon`, back
    /// to the pool when it ends; otherwise closed.
    private func finish(_ c: Connection, _ e: Exchange, key: PoolKey, abandon: Bool) {
        e.body.close()
        switch e.settle(abandon: abandon) {
        case .release: release(c, key)
        case .later: e.whenEnded { [self] keepAlive in keepAlive ? release(c, key) : c.channel.close(promise: nil) }
        case .close: c.channel.close(promise: nil)
        }
    }

    private func connect(_ t: Target, on loop: any EventLoop) async throws -> Connection {
        let channel = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHTTPClientHandlers()
                    try ch.pipeline.syncOperations.addHandler(ExchangeHandler())
                }
            }
            .connect(host: t.host, port: t.port).get()
        // A connection closed at once has lost its handlers already (the pipeline says `notFound`).
        guard let handler = try? await channel.pipeline.handler(type: ExchangeHandler.self).get() else {
            channel.close(promise: nil)
            throw ClosedBeforeSending()
        }
        return Connection(channel: channel, handler: handler)
    }
}

/// One pooled connection and its response handler.
final class Connection: Sendable {
    let channel: any Channel
    let handler: ExchangeHandler

    init(channel: any Channel, handler: ExchangeHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// Writes the request and returns when the response head arrives.
    func start(_ e: Exchange, head: HTTPRequestHead, body: [UInt8], timeout: TimeAmount) async throws -> PlainHTTPClient.Response {
        let channel = self.channel, handler = self.handler
        let h: HTTPResponseHead = try await withCheckedThrowingContinuation { c in
            e.setHeadWaiter(c)
            channel.eventLoop.execute {
                guard channel.isActive else { return e.fail(PlainHTTPClient.ClosedBeforeSending()) }
                handler.exchange = e
                e.setTimer(channel.eventLoop.scheduleTask(in: timeout) {
                    e.fail(PlainHTTPClient.TimedOut(after: timeout))
                    channel.close(promise: nil)
                })
                var buf = channel.allocator.buffer(capacity: body.count)
                buf.writeBytes(body)
                channel.write(NIOAny(HTTPClientRequestPart.head(head)), promise: nil)
                channel.write(NIOAny(HTTPClientRequestPart.body(.byteBuffer(buf))), promise: nil)
                let done = channel.eventLoop.makePromise(of: Void.self)
                done.futureResult.whenFailure { _ in
                    e.fail(PlainHTTPClient.ConnectionClosed())
                    channel.close(promise: nil)
                }
                channel.writeAndFlush(NIOAny(HTTPClientRequestPart.end(nil)), promise: done)
            }
        }
        return PlainHTTPClient.Response(status: Int(h.status.code), headers: h.headers, body: e.body)
    }
}

/// The state of one request on a connection.
final class Exchange: @unchecked Sendable {
    // Invariant: mutable state only under `lock`.
    private let lock = NSLock()
    private var headWaiter: CheckedContinuation<HTTPResponseHead, any Error>?
    private var ended = false
    private var abandoned = false
    private var keepAlive = false
    private var _sawResponse = false
    private var _timer: Scheduled<Void>?
    private var _onEnd: (@Sendable (Bool) -> Void)?
    let body = BytePipe()

    enum Settlement { case release, later, close }

    var sawResponse: Bool { lock.withLock { _sawResponse } }
    /// The exchange's deadline (cancelled when it ends).
    func setTimer(_ t: Scheduled<Void>) { lock.withLock { _timer = t } }
    /// Calls `f` with whether the connection may be reused once the abandoned response ends
    /// (at once if it already has: it may have ended since `settle` said `.later`).
    func whenEnded(_ f: @escaping @Sendable (Bool) -> Void) {
        let run = lock.withLock { () -> Bool? in
            if ended { return keepAlive }
            _onEnd = f
            return nil
        }
        if let run { f(run) }
    }

    func setHeadWaiter(_ c: CheckedContinuation<HTTPResponseHead, any Error>) { lock.withLock { headWaiter = c } }

    func head(_ h: HTTPResponseHead) {
        let w = lock.withLock { () -> CheckedContinuation<HTTPResponseHead, any Error>? in
            _sawResponse = true
            keepAlive = h.isKeepAlive
            defer { headWaiter = nil }
            return headWaiter
        }
        w?.resume(returning: h)
    }

    func bodyPart(_ b: ByteBuffer) { body.write(Array(buffer: b)) }

    /// The response ended on the wire.
    func end() {
        let (t, run, keep) = lock.withLock { () -> (Scheduled<Void>?, (@Sendable (Bool) -> Void)?, Bool) in
            ended = true
            defer { _onEnd = nil }
            return (_timer, abandoned ? _onEnd : nil, keepAlive)
        }
        t?.cancel()
        body.finish()
        run?(keep)
    }

    /// The connection failed or closed.
    func fail(_ error: any Error) {
        let (w, t) = lock.withLock { () -> (CheckedContinuation<HTTPResponseHead, any Error>?, Scheduled<Void>?) in
            ended = true
            keepAlive = false
            _onEnd = nil
            defer { headWaiter = nil }
            return (headWaiter, _timer)
        }
        t?.cancel()
        w?.resume(throwing: error)
        body.finish(error)
    }

    /// What becomes of the connection once the consumer is done with it.
    func settle(abandon: Bool) -> Settlement {
        lock.withLock {
            if ended { return keepAlive ? .release : .close }
            guard abandon else { return .close }
            abandoned = true
            return .later
        }
    }
}

/// Hands a connection's response parts to its current exchange (on the event loop only).
final class ExchangeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    // Invariant: `exchange` only on the channel's event loop.
    var exchange: Exchange?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let e = exchange else {
            // Nothing was asked: the connection is out of step.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case let .head(h):
            // RFC 9110 §15: a status outside 100...599 is invalid (the decoder reads `020` as 20).
            guard (100...599).contains(h.status.code) else {
                exchange = nil
                e.fail(PlainHTTPClient.MalformedResponse(status: Int(h.status.code)))
                context.close(promise: nil)
                return
            }
            e.head(h)
        case let .body(b): e.bodyPart(b)
        case .end:
            exchange = nil
            e.end()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange?.fail(PlainHTTPClient.ConnectionClosed())
        exchange = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        exchange?.fail(error)
        exchange = nil
        context.close(promise: nil)
    }
}
