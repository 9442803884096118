import Foundation
import NIOCore
import NIOPosix

/// A plain TCP connection for tests of servers' connection handling: sends what it is
/// told and keeps what comes back.
public final class RawConnection: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer
    // Invariant: `received` only under `lock`.
    private let lock = NSLock()
    private var received = ""
    public private(set) var channel: (any Channel)?

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        let s = b.readString(length: b.readableBytes) ?? ""
        lock.withLock { received += s }
    }

    /// What arrived so far.
    public var text: String { lock.withLock { received } }

    /// Connects to 127.0.0.1:`port` and sends `text` (a server that already closed the
    /// connection, as a very busy machine may see, leaves it closed: no error).
    public static func open(port: Int, sending text: String) async throws -> RawConnection {
        let raw = RawConnection()
        let ch = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(raw) } }
            .connect(host: "127.0.0.1", port: port).get()
        raw.channel = ch
        if !text.isEmpty { try? await ch.writeAndFlush(ByteBuffer(string: text)).get() }
        return raw
    }

    public var isOpen: Bool { channel?.isActive ?? false }

    /// Whether the server closed the connection within `seconds`.
    public func closed(within seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isOpen, Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        return !isOpen
    }

    public func close() async { try? await channel?.close() }
}
