import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PlexusCore
import Synchronization

/// A request as the lean server hands it over: head and whole body.
public struct HTTPRequestIn: Sendable {
    public var method: HTTPMethod
    /// The path, without the query.
    public var path: String
    public var query: String?
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(method: HTTPMethod, path: String, query: String? = nil, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { headers.first(name: name) }
}

/// What a handler answers: a whole body, or a body streamed from a pipe (chunked).
public enum HTTPResponseOut: Sendable {
    case full(status: Int, headers: [(String, String)], body: [UInt8])
    case stream(status: Int, headers: [(String, String)], body: BytePipe)

    /// JSON with a status.
    public static func json(_ body: [UInt8], status: Int = 200, headers: [(String, String)] = []) -> HTTPResponseOut {
        .full(status: status, headers: [("content-type", "application/json")] + headers, body: body)
    }
}

/// How long a connection may take, and how many one client may hold: a client
/// that opens connections and sends nothing, or a head a byte at a time
/// (slowloris), must not hold the server's descriptors.
public struct ConnectionLimits: Sendable {
    /// A connection with no request under way (new, or kept alive after an answer)
    /// must deliver a whole request head within this, or it is closed.
    public var idle: TimeAmount = .seconds(15)
    /// A request's body must have arrived this long after its head.
    public var body: TimeAmount = .seconds(30)
    /// Connections one client address may hold open at once; more are closed on arrival.
    public var perAddress = 1_024
    /// How often a connection's deadlines are looked at.
    public var tick: TimeAmount = .milliseconds(500)

    public init() {}
}

/// A lean HTTP/1.1 server for the request path of nodes and gateways: no
/// router or middleware layers, a handler per request called with the whole
/// body, keep-alive and pipelining (answers in order), a body limit, deadlines
/// and a cap per client address (`ConnectionLimits`), and streamed answers
/// drained from a `BytePipe` with back-pressure. Closing the connection closes
/// the pipe, which tells the producer to stop. SIGINT and SIGTERM stop it: the
/// listener closes, requests in flight get a few seconds to finish, and `run` returns.
public final class PlainHTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequestIn) async -> HTTPResponseOut

    let host: String
    let port: Int
    let maxBody: Int
    let name: String
    let limits: ConnectionLimits
    let handler: Handler
    let inFlight = Atomic<Int>(0)
    /// Open connections by client address.
    let perAddress = Mutex<[String: Int]>([:])

    public init(host: String, port: Int, maxBody: Int = 1 << 20, name: String, limits: ConnectionLimits = .init(),
                handler: @escaping Handler) {
        self.host = host
        self.port = port
        self.maxBody = maxBody
        self.name = name
        self.limits = limits
        self.handler = handler
    }

    /// Counts a new connection from `address`; false when that address holds its quota already.
    func admit(_ address: String) -> Bool {
        perAddress.withLock { m in
            let n = m[address, default: 0]
            guard n < limits.perAddress else { return false }
            m[address] = n + 1
            return true
        }
    }

    func release(_ address: String) {
        perAddress.withLock { m in
            let n = m[address, default: 1] - 1
            m[address] = n > 0 ? n : nil
        }
    }

    /// Serves until SIGINT, SIGTERM or cancellation; `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) async throws -> Void = { _ in }) async throws {
        let server = self
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try ch.pipeline.syncOperations.addHandler(RequestHandler(server: server))
                }
            }
            .bind(host: host, port: port).get()
        let stop = StopSignals.onStop { channel.close(promise: nil) }
        defer { StopSignals.remove(stop) }
        try await withTaskCancellationHandler {
            try await onListening(channel.localAddress?.port ?? 0)
            try await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        // Requests in flight get a moment to finish.
        for _ in 0..<100 where inFlight.load(ordering: .relaxed) > 0 { try? await Task.sleep(for: .milliseconds(30)) }
    }
}

/// One connection: collects each request, runs the handler in a task, writes the answer.
private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    // Invariant: everything here is touched on the channel's event loop only.
    let server: PlainHTTPServer
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var tooLarge = false
    var current: Task<Void, Never>?
    var streaming: BytePipe?
    /// Where the connection stands, for its deadlines.
    enum Phase { case waiting(since: NIODeadline), receiving(since: NIODeadline), answering }
    var phase = Phase.waiting(since: .now())
    var ticker: RepeatedTask?
    /// The client address counted against its quota (nil: not counted).
    var counted: String?

    init(server: PlainHTTPServer) { self.server = server }

    func handlerAdded(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard server.admit(address) else {
            context.close(promise: nil)
            return
        }
        counted = address
        phase = .waiting(since: .now())
        let limits = server.limits, box = UncheckedBox(self), channel = context.channel
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: limits.tick, delay: limits.tick) { _ in
            let now = NIODeadline.now()
            switch box.value.phase {
            case let .waiting(since) where now - since > limits.idle: channel.close(promise: nil)
            case let .receiving(since) where now - since > limits.body: channel.close(promise: nil)
            default: break
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ticker?.cancel()
        ticker = nil
        if let counted { server.release(counted) }
        counted = nil
    }

    /// The answer is out: the connection waits for the next request.
    func answered() { phase = .waiting(since: .now()) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(h):
            phase = .receiving(since: .now())
            head = h
            body = []
            tooLarge = false
            if let n = h.headers.first(name: "content-length").flatMap(Int.init), n > server.maxBody { tooLarge = true }
        case var .body(buf):
            if tooLarge { return }
            if body.count + buf.readableBytes > server.maxBody {
                tooLarge = true
                body = []
                return
            }
            body += buf.readBytes(length: buf.readableBytes) ?? []
        case .end:
            guard let h = head else { return }
            head = nil
            phase = .answering
            let keepAlive = h.isKeepAlive
            let channel = context.channel
            let box = UncheckedBox(self)
            if tooLarge {
                let msg = Array(#"{"error":{"code":"too_large","message":"the request body exceeds the limit"}}"#.utf8)
                Self.writeFull(channel, status: 413, headers: [("content-type", "application/json")], body: msg, keepAlive: false) {}
                return
            }
            let parts = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let request = HTTPRequestIn(method: h.method, path: String(parts.first ?? ""), query: parts.count > 1 ? String(parts[1]) : nil,
                                        headers: h.headers, body: body)
            body = []
            let server = self.server
            server.inFlight.add(1, ordering: .relaxed)
            current = Task {
                defer { server.inFlight.subtract(1, ordering: .relaxed) }
                let answer = await server.handler(request)
                switch answer {
                case let .full(status, headers, body):
                    Self.writeFull(channel, status: status, headers: headers, body: body, keepAlive: keepAlive) { box.value.answered() }
                case let .stream(status, headers, pipe):
                    channel.eventLoop.execute { box.value.streaming = pipe }
                    await Self.writeStream(channel, status: status, headers: headers, pipe: pipe, keepAlive: keepAlive)
                    channel.eventLoop.execute { box.value.answered() }
                }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client went away: stop the work for it.
        current?.cancel()
        streaming?.close()
        context.fireChannelInactive()
    }

    static func responseHead(_ status: Int, _ headers: [(String, String)], keepAlive: Bool) -> HTTPResponseHead {
        var h = HTTPHeaders(headers)
        if !keepAlive { h.replaceOrAdd(name: "connection", value: "close") }
        return HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: h)
    }

    /// Writes a whole answer; `done` runs on the channel's event loop once it is out.
    static func writeFull(_ channel: any Channel, status: Int, headers: [(String, String)], body: [UInt8], keepAlive: Bool,
                          done onDone: @escaping () -> Void) {
        channel.eventLoop.execute {
            var head = responseHead(status, headers, keepAlive: keepAlive)
            head.headers.replaceOrAdd(name: "content-length", value: String(body.count))
            var buf = channel.allocator.buffer(capacity: body.count)
            buf.writeBytes(body)
            channel.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
            channel.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buf))), promise: nil)
            let done = channel.eventLoop.makePromise(of: Void.self)
            done.futureResult.whenComplete { _ in
                if keepAlive { onDone() } else { channel.close(promise: nil) }
            }
            channel.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: done)
        }
    }

    static func writeStream(_ channel: any Channel, status: Int, headers: [(String, String)], pipe: BytePipe, keepAlive: Bool) async {
        var head = responseHead(status, headers, keepAlive: keepAlive)
        head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        do {
            try await channel.writeAndFlush(NIOAny(HTTPServerResponsePart.head(head))).get()
            while let bytes = try await pipe.next() {
                var buf = channel.allocator.buffer(capacity: bytes.count)
                buf.writeBytes(bytes)
                // Waiting for each write keeps a slow reader from piling answers up in memory.
                try await channel.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buf)))).get()
            }
            try await channel.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).get()
            if !keepAlive { channel.close(promise: nil) }
        } catch {
            pipe.close()
            channel.close(promise: nil)
        }
    }
}

/// Hands an event-loop-bound object to a task that only uses it back on that loop.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension SignatureBatcher {
    /// Batches on the calling thread's event loop: the first request's batch
    /// runs after the tasks its event loop already has queued, so requests read
    /// in one pass over the sockets are verified in one batch.
    public static let onEventLoop: Later = { work in
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else { return false }
        loop.execute(work)
        return true
    }
}
