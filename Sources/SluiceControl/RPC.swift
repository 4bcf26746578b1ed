import SluiceConfig

/// A JSON-RPC 2.0 error (https://www.jsonrpc.org/specification §5.1). Codes are stable: clients
/// branch on them. `field` is the request field at fault (`params.backends[0].weight`), sent as
/// `error.data.field`.
public struct RPCError: Error, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var field: String?

    public init(code: Int, message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    // JSON-RPC 2.0's own codes.
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    // Sluice's codes (the -32000...-32099 "server error" range).
    /// The named service, backend or VIP does not exist.
    public static let notFound = -32001
    /// Already exists, still in use, or a stale / conflicting state generation.
    public static let conflict = -32002
    /// Valid on its own, but the data plane cannot build it (e.g. no route to a backend).
    public static let rejected = -32003
    /// The peer's credentials are not allowed on this socket.
    public static let permissionDenied = -32004
    /// Another request of the same batch failed, so this one was not applied.
    public static let batchAborted = -32005
    /// Too many clients, request or response too large, or idle too long: the connection is closed.
    public static let limitExceeded = -32006

    public var description: String {
        field.map { "\($0): \(message)" } ?? message
    }

    /// A schema error from `SluiceConfig`: its field path and reason.
    static func params(_ e: ConfigError) -> RPCError {
        RPCError(code: invalidParams, message: e.field.isEmpty ? e.reason : "\(e.field): \(e.reason)",
                 field: e.field.isEmpty ? nil : e.field)
    }

    /// The answer to a line whose response would pass the output limit (the connection is closed).
    static func responseTooLarge(limit: Int, at index: Int, of count: Int) -> RPCError {
        RPCError(code: limitExceeded,
                 message: "response longer than the output limit of \(limit) bytes"
                     + (count > 1 ? " (reached at request \(index) of the batch of \(count))" : "")
                     + "; nothing applied; closing")
    }

    static func params(_ field: String, _ reason: String) -> RPCError {
        RPCError(code: invalidParams, message: "\(field): \(reason)", field: field)
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [("code", .int(code)), ("message", .string(message))]
        if let field { members.append(("data", .object([("field", .string(field))]))) }
        return .object(members)
    }

    /// `{"jsonrpc":"2.0","id":…,"error":{…}}`
    func response(id: JSONValue) -> JSONValue {
        .object([("jsonrpc", .string("2.0")), ("id", id), ("error", json)])
    }
}

enum RPC {
    static func result(id: JSONValue, _ result: JSONValue) -> JSONValue {
        .object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)])
    }

    static func notification(method: String, _ params: JSONValue) -> JSONValue {
        .object([("jsonrpc", .string("2.0")), ("method", .string(method)), ("params", params)])
    }
}
