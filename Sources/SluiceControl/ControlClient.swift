#if canImport(Glibc)
import Glibc
#endif

/// What went wrong talking to the control socket.
public enum ControlClientError: Error, CustomStringConvertible {
    /// The socket could not be reached (no server, no permission).
    case connect(String)
    /// The connection failed or timed out mid-request.
    case io(String)
    /// The server answered with a JSON-RPC error.
    case server(RPCError)
    /// The server sent something that is not a JSON-RPC response.
    case malformed(String)

    public var description: String {
        switch self {
        case .connect(let s): "cannot connect: \(s)"
        case .io(let s): s
        case .server(let e): "error \(e.code): \(e.message)"
        case .malformed(let s): "malformed response: \(s)"
        }
    }
}

/// A blocking client of the control socket: one request at a time, `event` notifications
/// kept aside for `nextNotification`. Used by `sluicectl` and the tests.
public final class ControlClient {
    public let path: String
    let fd: Int32
    var input: [UInt8] = []
    var nextID = 1
    public var timeoutMilliseconds: Int
    /// Notifications received while waiting for a response.
    public private(set) var notifications: [JSONValue] = []

    public init(path: String, timeoutMilliseconds: Int = 10_000) throws(ControlClientError) {
        self.path = path
        self.timeoutMilliseconds = timeoutMilliseconds
        guard var addr = ControlServer.address(path) else { throw .connect("\(path): path too long") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connect("socket: \(ControlServer.errorText())") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let text = ControlServer.errorText()
            close(fd)
            throw .connect("\(path): \(text)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends raw bytes (tests send malformed input with it).
    public func send(raw bytes: [UInt8]) throws(ControlClientError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("send: \(ControlServer.errorText())")
            }
            sent += n
        }
    }

    public func send(line: String) throws(ControlClientError) {
        try send(raw: Array((line + "\n").utf8))
    }

    /// The next line from the server, parsed; nil when the server closed the connection.
    public func readMessage(timeoutMilliseconds: Int? = nil) throws(ControlClientError) -> JSONValue? {
        let deadline = ControlServer.monotonicMilliseconds() + UInt64(timeoutMilliseconds ?? self.timeoutMilliseconds)
        while true {
            if let nl = input.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(input[..<nl])
                input.removeFirst(nl + 1)
                do {
                    return try JSONParser.parse(line)
                } catch {
                    throw .malformed("\(error): \(String(decoding: line.prefix(200), as: UTF8.self))")
                }
            }
            let now = ControlServer.monotonicMilliseconds()
            guard now < deadline else { throw .io("no response within \(timeoutMilliseconds ?? self.timeoutMilliseconds) ms") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(deadline - now))
            if ready < 0 && errno != EINTR { throw .io("poll: \(ControlServer.errorText())") }
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == ECONNRESET { return nil }
                throw .io("recv: \(ControlServer.errorText())")
            }
            input.append(contentsOf: chunk[0..<n])
        }
    }

    /// Sends a request and waits for its response: the result, or the server's error thrown.
    @discardableResult
    public func call(_ method: String, _ params: JSONValue = .object([])) throws(ControlClientError) -> JSONValue {
        let id = nextID
        nextID += 1
        let request = JSONValue.object([("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string(method)),
                                        ("params", params)])
        do {
            try send(line: request.serialized)
        } catch {
            // The server may have refused the connection with an error line and closed it
            // (permission, too many clients) before the request went out: report that error.
            if let early = try? readMessage(timeoutMilliseconds: 1000), let e = early["error"] {
                throw .server(ControlClient.rpcError(e))
            }
            throw error
        }
        while true {
            guard let message = try readMessage() else { throw .io("the server closed the connection") }
            if message["id"] == nil, message["method"] != nil {
                notifications.append(message)
                continue
            }
            if let error = message["error"] {
                throw .server(ControlClient.rpcError(error))
            }
            guard message["id"] == .int(id), let result = message["result"] else {
                throw .malformed(message.serialized)
            }
            return result
        }
    }

    static func rpcError(_ e: JSONValue) -> RPCError {
        RPCError(code: e["code"]?.intValue ?? RPCError.internalError, message: e["message"]?.stringValue ?? e.serialized,
                 field: e["data"]?["field"]?.stringValue)
    }

    /// The next `event` notification (kept from earlier calls, or read now).
    public func nextNotification(timeoutMilliseconds: Int? = nil) throws(ControlClientError) -> JSONValue? {
        if !notifications.isEmpty { return notifications.removeFirst() }
        return try readMessage(timeoutMilliseconds: timeoutMilliseconds)
    }
}
