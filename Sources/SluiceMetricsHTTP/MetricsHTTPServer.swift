import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceMetrics

/// The Prometheus scrape endpoint: HTTP/1.1 (swift-nio's NIOHTTP1 parses and frames), on one
/// event-loop thread of its own: never a worker lcore, and nothing it does is shared with a
/// worker except the relaxed counter loads `render` makes.
///
/// `GET /metrics` (or `HEAD`) answers `render()`'s text with the exposition format's content
/// type; `GET /` a pointer to it; anything else 404, other methods 405. A connection idle for
/// `idleTimeout` is closed, so a client that connects and stalls holds nothing for long.
public final class MetricsHTTPServer: Sendable {
    public static let idleTimeout = TimeAmount.seconds(30)
    /// Connections accepted and not yet closed; more are closed at once.
    public static let maxConnections = 64

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// Where it listens (the port the kernel chose when asked for port 0).
    public let boundHost: String
    public let boundPort: Int

    /// Binds `host`:`port` and starts serving. `render` runs on the server's thread for each
    /// scrape; nil answers 503 (the daemon is shutting down).
    public init(host: String, port: Int, render: @escaping @Sendable () -> String?) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connections = ConnectionCount()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Unwritable once 1 MiB of answers wait unread (a few scrapes): see `channelRead`.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: MetricsHTTPServer.idleTimeout))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(MetricsRequestHandler(render: render, connections: connections))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.group = group
        boundHost = host
        boundPort = channel.localAddress?.port ?? port
    }

    /// `http://HOST:PORT/metrics`, IPv6 hosts in brackets.
    public var url: String {
        (boundHost.contains(":") ? "http://[\(boundHost)]" : "http://\(boundHost)") + ":\(boundPort)/metrics"
    }

    /// Closes the listening socket and every connection, and joins the server's thread.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Open connections, touched only on the server's one event loop.
final class ConnectionCount: @unchecked Sendable {
    // Safe (@unchecked Sendable): the group has one event loop, and only handlers on it read or
    // write `open`.
    var open = 0
}

/// One connection: requests are answered in order as they complete (NIO's pipelining handler
/// holds later ones back); request bodies are discarded as they arrive.
final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> String?
    private let connections: ConnectionCount
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> String?, connections: ConnectionCount) {
        self.render = render
        self.connections = connections
    }

    func channelActive(context: ChannelHandlerContext) {
        connections.open += 1
        if connections.open > MetricsHTTPServer.maxConnections {
            context.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connections.open -= 1
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            // A client that pipelines requests without reading the answers: the unread answers
            // would pile up in memory. Past the write buffer's high watermark it is cut off.
            guard context.channel.isWritable else {
                context.close(promise: nil)
                return
            }
            if let head { respond(context, head) }
            head = nil
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let status: HTTPResponseStatus
        var body: String
        var contentType = "text/plain; charset=utf-8"
        var extra: [(String, String)] = []
        switch (path, head.method) {
        case ("/metrics", .GET), ("/metrics", .HEAD):
            if let text = render() {
                status = .ok
                body = text
                contentType = PrometheusText.contentType
            } else {
                status = .serviceUnavailable
                body = "sluiced is shutting down\n"
            }
        case ("/", .GET), ("/", .HEAD):
            status = .ok
            body = "sluiced: Prometheus metrics at /metrics\n"
        case ("/metrics", _), ("/", _):
            status = .methodNotAllowed
            body = "only GET and HEAD\n"
            extra.append(("Allow", "GET, HEAD"))
        default:
            status = .notFound
            body = "not found; metrics are at /metrics\n"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        for (name, value) in extra { headers.add(name: name, value: value) }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                      promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
