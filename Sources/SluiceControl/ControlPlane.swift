import SluiceConfig
import SluiceConntrack
import SluiceCore
import SluiceDataPlane
import Yams

/// The control protocol's state and methods: the accepted desired state (VIPs, services, a
/// generation) and the JSON-RPC methods that read and change it.
///
/// Every request is validated whole against a working copy of the state; a batch (a JSON
/// array of requests) is one transaction. Only when every request of it succeeded is the new
/// state built into a snapshot and published to the data plane, once; on any error nothing
/// changes, neither here nor in the data plane. Not thread-safe: the control server calls it
/// from its one thread.
public final class ControlPlane {
    public static let apiVersion = "1.0"
    /// Most flows one `conntrack.list` returns.
    public static let maxListLimit = 10_000
    public static let defaultListLimit = 100

    /// The configuration the data plane runs (ports, routes… fixed; VIPs and services as last
    /// accepted).
    public private(set) var config: SluicedConfig
    /// The desired state's generation: set by `state.apply`, + 1 for any other change (a change
    /// to what already is, such as the same weight again, leaves it).
    public private(set) var generation: UInt64
    public let target: ControlTarget
    /// Called after each accepted change with the `event` notification's params.
    public var onChange: ((JSONValue) -> Void)?

    let schema = StateSchema(file: "request", strictTypes: true)

    public init(config: SluicedConfig, target: ControlTarget, generation: UInt64 = 0) {
        self.config = config
        self.target = target
        self.generation = generation
    }

    public var state: DesiredState { config.desiredState(generation: generation) }

    /// What one connection asked for beyond request/response.
    public struct Session: Sendable {
        /// Set by `events.subscribe`: stream `event` notifications on this connection.
        public var subscription: Subscription?
        public init() {}
    }

    public struct Subscription: Sendable, Equatable {
        public var intervalMilliseconds: Int
        public var stats: Bool
    }

    public static let methods = [
        "api.version", "state.get", "state.apply", "service.list", "service.add", "service.update", "service.delete",
        "backend.add", "backend.update", "backend.remove", "vip.own", "vip.disown", "stats",
        "conntrack.count", "conntrack.list", "conntrack.flush", "neighbors.list", "events.subscribe",
    ]

    // MARK: - Requests

    /// Most requests one batch may hold: each is validated and answered in one go on the
    /// control thread, so an unbounded batch would hold it (and memory) without limit.
    public static let maxBatchRequests = 256

    /// One line from a client: a request, a notification or a batch. Returns the response
    /// (nil when every request was a notification).
    ///
    /// Throws (a `limitExceeded` error: answer it and close the connection) when the response
    /// would be longer than `maxResponseBytes`; building stops there and nothing of the line is
    /// applied, so one line cannot make the server hold more than about that much output.
    public func handle(line: [UInt8], session: inout Session,
                       maxResponseBytes: Int = .max) throws(RPCError) -> JSONValue? {
        let message: JSONValue
        do {
            message = try JSONParser.parse(line)
        } catch {
            return RPCError(code: RPCError.parseError, message: "parse error: \(error)").response(id: .null)
        }
        if case .array(let items) = message {
            guard !items.isEmpty else {
                return RPCError(code: RPCError.invalidRequest, message: "empty batch").response(id: .null)
            }
            guard items.count <= ControlPlane.maxBatchRequests else {
                return RPCError(code: RPCError.invalidRequest,
                                message: "batch of \(items.count) requests; at most \(ControlPlane.maxBatchRequests) per batch")
                    .response(id: .null)
            }
            let responses = try run(batch: items, session: &session, maxResponseBytes: maxResponseBytes)
            return responses.isEmpty ? nil : .array(responses)
        }
        return try run(batch: [message], session: &session, maxResponseBytes: maxResponseBytes).first
    }

    /// A request checked for form: method, params, id.
    struct Request {
        var id: JSONValue?
        var method: String
        var params: JSONValue
    }

    static func request(_ v: JSONValue) -> Result<Request, RPCError> {
        guard case .object(let members) = v else {
            return .failure(RPCError(code: RPCError.invalidRequest, message: "a request must be a JSON object"))
        }
        for (key, _) in members where !["jsonrpc", "method", "params", "id"].contains(key) {
            return .failure(RPCError(code: RPCError.invalidRequest, message: "\(key): unknown member of a request", field: key))
        }
        guard v["jsonrpc"] == .string("2.0") else {
            return .failure(RPCError(code: RPCError.invalidRequest, message: "jsonrpc: must be \"2.0\"", field: "jsonrpc"))
        }
        let id = v["id"]
        switch id {
        case nil, .null?, .string?: break
        case .number(let n)?:
            guard Int64(n) != nil else {
                return .failure(RPCError(code: RPCError.invalidRequest, message: "id: must be a string or an integer", field: "id"))
            }
        default:
            return .failure(RPCError(code: RPCError.invalidRequest, message: "id: must be a string or an integer", field: "id"))
        }
        guard case .string(let method)? = v["method"] else {
            return .failure(RPCError(code: RPCError.invalidRequest, message: "method: must be a string", field: "method"))
        }
        let params = v["params"] ?? .object([])
        switch params {
        case .object: break
        default:
            return .failure(RPCError(code: RPCError.invalidParams, message: "params: must be an object (named parameters)",
                                     field: "params"))
        }
        return .success(Request(id: id, method: method, params: params))
    }

    /// Bytes a response's envelope adds to its result (`{"jsonrpc":"2.0","id":…,"result":…}`,
    /// with room for a long id): counted per request against the output limit.
    static let envelopeBytes = 128

    /// Runs `items` as one transaction and returns the responses of those that have an id.
    /// Throws `limitExceeded` as soon as the results built so far pass `maxResponseBytes`
    /// (before anything is committed).
    func run(batch items: [JSONValue], session: inout Session, maxResponseBytes: Int = .max) throws(RPCError) -> [JSONValue] {
        var responseBytes = 0
        var work = Transaction(base: state)
        var outcomes: [(id: JSONValue?, result: Result<JSONValue, RPCError>, mutating: Bool)] = []
        var failedAt: Int?
        var subscribed: Subscription?
        // state.apply is idempotent by its generation: a retry of the same apply must find
        // exactly its content. Another change in its batch would commit under its generation
        // with other content, so a batch holding state.apply may hold no other change.
        let changing = items.compactMap { item -> String? in
            guard case .string(let m)? = item["method"], !ControlPlane.readOnly.contains(m),
                  ControlPlane.methods.contains(m) else { return nil }
            return m
        }
        let applyNotAlone = changing.contains("state.apply") && changing.count > 1
        for (index, item) in items.enumerated() {
            switch ControlPlane.request(item) {
            case .failure(let e):
                // An unparseable request has no usable id: answer with null (JSON-RPC §5).
                let id: JSONValue = switch item["id"] {
                case .string?, .number?: item["id"]!
                default: .null
                }
                outcomes.append((id, .failure(e), false))
                failedAt = failedAt ?? index
            case .success(let request) where request.method == "conntrack.flush" && items.count > 1:
                // A flush acts at once and cannot be undone: it would break the batch's all-or-nothing.
                outcomes.append((request.id, .failure(RPCError(code: RPCError.invalidRequest,
                    message: "method: conntrack.flush cannot be part of a batch (it cannot be undone)", field: "method")), false))
                failedAt = failedAt ?? index
            case .success(let request) where applyNotAlone && !ControlPlane.readOnly.contains(request.method):
                outcomes.append((request.id, .failure(RPCError(code: RPCError.invalidRequest,
                    message: "method: this batch holds state.apply and \(changing.count - 1) other state change(s); "
                        + "state.apply must be the only change of its batch (its generation names exactly its content)",
                    field: "method")), false))
                failedAt = failedAt ?? index
            case .success(let request):
                let mutating = !ControlPlane.readOnly.contains(request.method)
                do throws(RPCError) {
                    let result = try execute(request, work: &work, subscribed: &subscribed)
                    responseBytes += result.serializedByteCount + ControlPlane.envelopeBytes
                    guard responseBytes <= maxResponseBytes else {
                        throw RPCError.responseTooLarge(limit: maxResponseBytes, at: index, of: items.count)
                    }
                    outcomes.append((request.id, .success(result), mutating))
                } catch let error where error.code == RPCError.limitExceeded {
                    throw error
                } catch {
                    outcomes.append((request.id, .failure(error), mutating))
                    failedAt = failedAt ?? index
                }
            }
        }
        var committed: UInt64?
        if failedAt == nil, work.changed || work.generation != generation {
            do throws(RPCError) {
                committed = try commit(work)
            } catch {
                // The data plane refused the whole: every mutating request gets its error.
                outcomes = outcomes.map { $0.mutating ? ($0.id, .failure(error), true) : $0 }
                failedAt = 0
            }
        }
        if failedAt == nil, let subscribed { session.subscription = subscribed }
        var responses: [JSONValue] = []
        for outcome in outcomes {
            guard let id = outcome.id else { continue }  // a notification gets no response
            switch outcome.result {
            case .failure(let e):
                responses.append(e.response(id: id))
            case .success(var result):
                if let failedAt {
                    responses.append(RPCError(code: RPCError.batchAborted,
                                              message: "not applied: request \(failedAt) of the batch failed").response(id: id))
                    continue
                }
                if outcome.mutating, case .object(var members) = result {
                    members.removeAll { $0.0 == "generation" }
                    members.insert(("generation", .int(committed ?? generation)), at: 0)
                    result = .object(members)
                }
                responses.append(RPC.result(id: id, result))
            }
        }
        return responses
    }

    /// Methods that change nothing (also safe inside any batch).
    static let readOnly: Set<String> = ["api.version", "state.get", "service.list", "stats", "conntrack.count",
                                        "conntrack.list", "neighbors.list", "events.subscribe", "conntrack.flush"]

    /// The working copy a batch changes.
    struct Transaction {
        var vips: [VIPConfig]
        var services: [ServiceConfig]
        var generation: UInt64
        var changed = false
        var changes: [String] = []
        /// Set by `state.apply`: the generation it asked for.
        var explicitGeneration: UInt64?

        init(base: DesiredState) {
            vips = base.vips
            services = base.services
            generation = base.generation ?? 0
        }
    }

    /// Validates the working copy as a whole, builds and publishes the snapshot, then commits.
    func commit(_ work: Transaction) throws(RPCError) -> UInt64 {
        do {
            try schema.check(vips: work.vips, services: work.services, ports: config.ports)
        } catch {
            throw RPCError.params(error)
        }
        let next = config.replacing(DesiredState(vips: work.vips, services: work.services))
        var nextGeneration = work.explicitGeneration ?? generation
        if work.changed && work.explicitGeneration == nil && next != config { nextGeneration = generation + 1 }
        // A change to what already is (the same weight again): nothing to publish or announce.
        if next == config && nextGeneration == generation { return generation }
        if next != config {
            do {
                _ = try target.publish(next)
            } catch {
                throw RPCError(code: RPCError.rejected, message: "rejected by the data plane: \(error.field.isEmpty ? "" : "\(error.field): ")\(error.reason)",
                               field: error.field.isEmpty ? nil : error.field)
            }
        }
        config = next
        generation = nextGeneration
        onChange?(.object([("type", .string("state")), ("generation", .int(generation)),
                           ("changes", .array(work.changes.map { .string($0) }))]))
        return generation
    }

    /// Replaces the whole configuration (the daemon's SIGHUP reload: routes and neighbors may
    /// change too). Published like any change; the generation moves on by one. The caller has
    /// checked `next` (`checkLiveChange`); on error nothing changes.
    public func replaceConfiguration(_ next: SluicedConfig, reason: String) throws(ConfigError) -> UInt64 {
        let published = try target.publish(next)
        config = next
        generation += 1
        onChange?(.object([("type", .string("state")), ("generation", .int(generation)),
                           ("changes", .array([.string(reason)]))]))
        return published
    }

    // MARK: - Methods

    func execute(_ r: Request, work: inout Transaction, subscribed: inout Subscription?) throws(RPCError) -> JSONValue {
        let p = r.params.yamlNode
        switch r.method {
        case "api.version":
            _ = try fields(p, [])
            return .object([("api", .string(ControlPlane.apiVersion)), ("server", .string("sluiced")),
                            ("methods", .array(ControlPlane.methods.map { .string($0) }))])
        case "state.get":
            _ = try fields(p, [])
            return .state(DesiredState(generation: work.generation, vips: work.vips, services: work.services))
        case "state.apply":
            return try stateApply(p, work: &work)
        case "service.list":
            let m = try fields(p, ["name"])
            var list = work.services
            if let n = m["name"] {
                let name = try string(n, "params.name")
                list = list.filter { $0.name == name }
                guard !list.isEmpty else { throw notFound("params.name", "no service named '\(name)'") }
            }
            return .object([("generation", .int(work.generation)), ("services", .array(list.map(JSONValue.service)))])
        case "service.add":
            let service = try parse { () throws(ConfigError) in try schema.service(p, path: "params") }
            if work.services.contains(where: { $0.name == service.name }) {
                throw conflict("params.name", "service '\(service.name)' already exists (use service.update)")
            }
            try checkServiceKey(service, ignoring: nil, in: work)
            work.services.append(service)
            return changed(&work, r.method, .object([("service", .string(service.name))]))
        case "service.update":
            let service = try parse { () throws(ConfigError) in try schema.service(p, path: "params") }
            guard let i = work.services.firstIndex(where: { $0.name == service.name }) else {
                throw notFound("params.name", "no service named '\(service.name)' (use service.add)")
            }
            try checkServiceKey(service, ignoring: i, in: work)
            work.services[i] = service
            return changed(&work, r.method, .object([("service", .string(service.name))]))
        case "service.delete":
            let m = try fields(p, ["name"], required: ["name"])
            let name = try string(m["name"]!, "params.name")
            guard let i = work.services.firstIndex(where: { $0.name == name }) else {
                throw notFound("params.name", "no service named '\(name)'")
            }
            work.services.remove(at: i)
            return changed(&work, r.method, .object([("service", .string(name))]))
        case "backend.add":
            let m = try fields(p, ["service", "backend"], required: ["service", "backend"])
            let s = try serviceIndex(m["service"]!, work)
            let backend = try parse { () throws(ConfigError) in
                try schema.backend(m["backend"]!, path: "params.backend", of: work.services[s])
            }
            if work.services[s].backends.contains(where: { $0.address == backend.address && $0.port == backend.port }) {
                throw conflict("params.backend.address", "backend \(backend.address) port \(backend.port) already exists in service '\(work.services[s].name)'")
            }
            guard work.services[s].backends.count < 65534 else { throw RPCError.params("params.backend", "the service has 65534 backends already") }
            work.services[s].backends.append(backend)
            return changed(&work, r.method, .object([("service", .string(work.services[s].name))]))
        case "backend.update":
            let m = try fields(p, ["service", "address", "port", "weight", "drain"], required: ["service", "address"])
            let s = try serviceIndex(m["service"]!, work)
            let b = try backendIndex(m, service: work.services[s])
            guard (m["weight"] == nil) != (m["drain"] == nil) else {
                throw RPCError.params("params.weight", "give either weight (0-65535) or drain: true")
            }
            if let n = m["weight"] {
                work.services[s].backends[b].weight = UInt32(try int(n, "params.weight", 0...65535))
            } else {
                guard try bool(m["drain"]!, "params.drain") else {
                    throw RPCError.params("params.drain", "only drain: true is meaningful; give a weight to undrain")
                }
                work.services[s].backends[b].weight = 0
            }
            return changed(&work, r.method, .object([("service", .string(work.services[s].name)),
                                                     ("weight", .int(work.services[s].backends[b].weight))]))
        case "backend.remove":
            let m = try fields(p, ["service", "address", "port"], required: ["service", "address"])
            let s = try serviceIndex(m["service"]!, work)
            let b = try backendIndex(m, service: work.services[s])
            work.services[s].backends.remove(at: b)
            return changed(&work, r.method, .object([("service", .string(work.services[s].name))]))
        case "vip.own":
            let vip = try parse { () throws(ConfigError) in try schema.vip(p, path: "params") }
            guard config.ports.contains(where: { $0.name == vip.port }) else {
                throw notFound("params.port", "no port named '\(vip.port)' (ports: \(config.ports.map(\.name).joined(separator: ", ")))")
            }
            if work.vips.contains(where: { $0.address == vip.address && $0.port == vip.port }) {
                throw conflict("params.address", "\(vip.address) is already owned on port \(vip.port)")
            }
            work.vips.append(vip)
            return changed(&work, r.method, .object([("address", .string(vip.address.description))]))
        case "vip.disown":
            let m = try fields(p, ["address", "port"], required: ["address"])
            let address = try parse { () throws(ConfigError) in try schema.address(m["address"]!, path: "params.address") }
            let port = try m["port"].map { (n: Node) throws(RPCError) in try string(n, "params.port") }
            let keep = work.vips.filter { !($0.address == address && (port == nil || $0.port == port)) }
            guard keep.count < work.vips.count else {
                throw notFound("params.address", "\(address) is not owned\(port.map { " on port \($0)" } ?? "")")
            }
            if !keep.contains(where: { $0.address == address }),
               let user = work.services.first(where: { $0.vip == address }) {
                throw conflict("params.address", "\(address) is the VIP of service '\(user.name)'; delete that service first")
            }
            work.vips = keep
            return changed(&work, r.method, .object([("address", .string(address.description))]))
        case "stats":
            _ = try fields(p, [])
            return statsJSON()
        case "conntrack.count":
            let filter = try flowFilter(p, extra: [])
            let now = target.now
            let snapshot = target.snapshot
            var n = 0
            target.flows.view.forEach(now: now) { s in
                if !s.isExpired, filter.matches(s, snapshot, target.flows.view, now: now) { n += 1 }
                return true
            }
            return .object([("count", .int(n)), ("capacity", .int(target.flows.view.slotCount))])
        case "conntrack.list":
            let m = try fields(p, FlowQuery.keys + ["limit"])
            let filter = try flowFilter(p, extra: ["limit"])
            let limit = try m["limit"].map { (n: Node) throws(RPCError) in try int(n, "params.limit", 1...ControlPlane.maxListLimit) }
                ?? ControlPlane.defaultListLimit
            let now = target.now
            let snapshot = target.snapshot
            var flows: [JSONValue] = []
            var more = false
            target.flows.view.forEach(now: now) { s in
                guard !s.isExpired, filter.matches(s, snapshot, target.flows.view, now: now) else { return true }
                if flows.count == limit { more = true; return false }
                flows.append(ControlPlane.flowJSON(s, snapshot, target.flows.view, now: now))
                return true
            }
            return .object([("flows", .array(flows)), ("truncated", .bool(more))])
        case "conntrack.flush":
            let m = try fields(p, FlowQuery.keys + ["all"])
            let filter = try flowFilter(p, extra: ["all"])
            let all = try m["all"].map { (n: Node) throws(RPCError) in try bool(n, "params.all") } ?? false
            guard filter.isRestricted || all else {
                throw RPCError.params("params", "give a filter (vip, service, backend, protocol) or all: true")
            }
            guard !(filter.isRestricted && all) else {
                throw RPCError.params("params.all", "all: true flushes everything; it cannot be combined with a filter")
            }
            let snapshot = target.snapshot
            let now = target.now
            let view = target.flows.view
            // Full-NAT return entries first: they are resolved through their forward entries.
            let returns = DataPlaneSnapshot.fullNATReturnFlowZone
            func pass() -> Int {
                view.flush(now: now) { s in s.key.zone == returns && filter.matches(s, snapshot, view, now: now) }
                    + view.flush(now: now) { s in filter.matches(s, snapshot, view, now: now) }
            }
            // Twice, around the workers' current bursts: reverse entries a worker kept back
            // (DeferredReverseEntries) may go in after the first pass, without their forward entry.
            var n = pass()
            target.waitForWorkers()
            n += pass()
            return .object([("flushed", .int(n))])
        case "neighbors.list":
            _ = try fields(p, [])
            return .object([("neighbors", .array(target.neighbors.entries.map { e in
                .object([("address", .string(e.ipv4?.description ?? e.address.description)),
                         ("mac", e.mac.map { .string($0.description) } ?? .null),
                         ("confirmed", .int(e.confirmed))])
            }))])
        case "events.subscribe":
            let m = try fields(p, ["interval_ms", "stats"])
            let interval = try m["interval_ms"].map { (n: Node) throws(RPCError) in try int(n, "params.interval_ms", 100...60_000) } ?? 1000
            let stats = try m["stats"].map { (n: Node) throws(RPCError) in try bool(n, "params.stats") } ?? true
            subscribed = Subscription(intervalMilliseconds: interval, stats: stats)
            return .object([("subscribed", .bool(true)), ("interval_ms", .int(interval)), ("stats", .bool(stats))])
        default:
            throw RPCError(code: RPCError.methodNotFound, message: "method: no method '\(r.method)' (api.version lists them)",
                           field: "method")
        }
    }

    func stateApply(_ p: Node, work: inout Transaction) throws(RPCError) -> JSONValue {
        let m = try fields(p, ["generation", "vips", "services"], required: ["generation"])
        let desired = try parse { () throws(ConfigError) in try schema.state(p, path: "params", ports: config.ports) }
        let g = desired.generation!
        _ = m
        let current = DesiredState(generation: work.generation, vips: work.vips, services: work.services)
        if g < work.generation {
            throw conflict("params.generation", "generation \(g) is older than the current \(work.generation)")
        }
        if g == work.generation {
            guard desired.sameContent(as: current) else {
                throw conflict("params.generation", "generation \(g) is already applied with other content; use a higher generation")
            }
            return .object([("generation", .int(g)), ("changed", .bool(false))])
        }
        let differs = !desired.sameContent(as: current)
        work.vips = desired.vips
        work.services = desired.services
        work.generation = g
        work.explicitGeneration = g
        work.changed = work.changed || differs
        work.changes.append("state.apply")
        return .object([("generation", .int(g)), ("changed", .bool(differs))])
    }

    func changed(_ work: inout Transaction, _ method: String, _ result: JSONValue) -> JSONValue {
        work.changed = true
        work.changes.append(method)
        return result
    }

    // MARK: - Validation helpers (every error names the field)

    func parse<T>(_ body: () throws(ConfigError) -> T) throws(RPCError) -> T {
        do { return try body() } catch { throw RPCError.params(error) }
    }

    func fields(_ p: Node, _ allowed: [String], required: [String] = []) throws(RPCError) -> [String: Node] {
        let m = try parse { () throws(ConfigError) in try schema.mapping(p, path: "params", allowed: Set(allowed)) }
        for key in required where m[key] == nil { throw RPCError.params("params.\(key)", "required field missing") }
        return m
    }

    func string(_ n: Node, _ field: String) throws(RPCError) -> String {
        try parse { () throws(ConfigError) in try schema.string(n, path: field) }
    }

    func int(_ n: Node, _ field: String, _ range: ClosedRange<Int>) throws(RPCError) -> Int {
        try parse { () throws(ConfigError) in try schema.int(n, path: field, range: range) }
    }

    func bool(_ n: Node, _ field: String) throws(RPCError) -> Bool {
        guard case .scalar(let s) = n, s.style == .plain, s.string == "true" || s.string == "false" else {
            throw RPCError.params(field, "expected true or false")
        }
        return s.string == "true"
    }

    func notFound(_ field: String, _ reason: String) -> RPCError {
        RPCError(code: RPCError.notFound, message: "\(field): \(reason)", field: field)
    }

    func conflict(_ field: String, _ reason: String) -> RPCError {
        RPCError(code: RPCError.conflict, message: "\(field): \(reason)", field: field)
    }

    func serviceIndex(_ n: Node, _ work: Transaction) throws(RPCError) -> Int {
        let name = try string(n, "params.service")
        guard let i = work.services.firstIndex(where: { $0.name == name }) else {
            throw notFound("params.service", "no service named '\(name)'")
        }
        return i
    }

    /// The backend `params.address` (and `params.port`, needed only when the address is not
    /// unique in the service) names.
    func backendIndex(_ m: [String: Node], service: ServiceConfig) throws(RPCError) -> Int {
        let address = try parse { () throws(ConfigError) in try schema.address(m["address"]!, path: "params.address") }
        let port = try m["port"].map { (n: Node) throws(RPCError) in UInt16(try int(n, "params.port", 0...65535)) }
        let matches = service.backends.indices.filter {
            service.backends[$0].address == address && (port == nil || service.backends[$0].port == port)
        }
        guard let first = matches.first else {
            throw notFound("params.address", "service '\(service.name)' has no backend \(address)\(port.map { " port \($0)" } ?? "")")
        }
        guard matches.count == 1 else {
            throw RPCError.params("params.port", "service '\(service.name)' has \(matches.count) backends at \(address); give the port")
        }
        return first
    }

    /// (VIP, protocol, port) unique and the VIP owned, as the configuration file requires.
    func checkServiceKey(_ s: ServiceConfig, ignoring index: Int?, in work: Transaction) throws(RPCError) {
        for (i, other) in work.services.enumerated() where i != index {
            if other.vip == s.vip && other.proto == s.proto && other.port == s.port {
                throw conflict("params.port", "\(s.vip) \(s.proto.rawValue) port \(s.port) is already service '\(other.name)'")
            }
        }
        guard work.vips.contains(where: { $0.address == s.vip }) else {
            throw RPCError.params("params.vip", "\(s.vip) is not owned on any port (vip.own it first)")
        }
    }

    // MARK: - Conntrack

    /// The conntrack filters: by service (name or VIP), backend address, protocol.
    struct FlowQuery {
        static let keys = ["vip", "service", "backend", "protocol"]
        var vip: IPv6Address?
        var service: String?
        var backend: IPv6Address?
        var proto: UInt8?

        var isRestricted: Bool { vip != nil || service != nil || backend != nil || proto != nil }

        func matches(_ s: FlowSnapshot, _ snapshot: DataPlaneSnapshot, _ flows: FlowTableView, now: UInt32) -> Bool {
            if let proto, s.key.proto != proto { return false }
            guard vip != nil || service != nil || backend != nil else { return true }
            guard let owner = snapshot.owner(of: s.value, zone: s.key.zone, flows: flows, now: now) else { return false }
            let svc = snapshot.services.services[owner.serviceIndex]
            if let vip, svc.vip != vip { return false }
            if let service, svc.name != service { return false }
            if let backend, svc.backends[owner.backendIndex].address != backend { return false }
            return true
        }
    }

    static let protocolNumbers: [String: UInt8] = ["tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58]

    func flowFilter(_ p: Node, extra: [String]) throws(RPCError) -> FlowQuery {
        let m = try fields(p, FlowQuery.keys + extra)
        var q = FlowQuery()
        if let n = m["vip"] { q.vip = try parse { () throws(ConfigError) in try schema.address(n, path: "params.vip") }.mapped }
        if let n = m["service"] { q.service = try string(n, "params.service") }
        if let n = m["backend"] { q.backend = try parse { () throws(ConfigError) in try schema.address(n, path: "params.backend") }.mapped }
        if let n = m["protocol"] {
            let text = try string(n, "params.protocol")
            guard let number = ControlPlane.protocolNumbers[text] else {
                throw RPCError.params("params.protocol", "'\(text)' is not one of: icmp, icmpv6, sctp, tcp, udp")
            }
            q.proto = number
        }
        return q
    }

    static func addressText(_ a: IPv6Address, ipv6: Bool) -> String {
        !ipv6 && a.isIPv4Mapped ? IPv4Address(value: a.ipv4Value).description : a.description
    }

    static func flowJSON(_ s: FlowSnapshot, _ snapshot: DataPlaneSnapshot, _ flows: FlowTableView, now: UInt32) -> JSONValue {
        let k = s.key
        let name = protocolNumbers.first { $0.value == k.proto }?.key
        var m: [(String, JSONValue)] = [
            ("protocol", name.map { .string($0) } ?? .int(k.proto)),
            ("source", .string(addressText(k.sourceIPv6, ipv6: k.isIPv6))), ("source_port", .int(k.sourcePort)),
            ("destination", .string(addressText(k.destinationIPv6, ipv6: k.isIPv6))), ("destination_port", .int(k.destinationPort)),
            ("direction", .string(k.zone == DataPlaneSnapshot.forwardFlowZone ? "original" : "reply")),
            ("state", .string(s.state.description)), ("reply_seen", .bool(s.replySeen)), ("expires_in_s", .int(s.remaining)),
        ]
        if let owner = snapshot.owner(of: s.value, zone: k.zone, flows: flows, now: now) {
            let svc = snapshot.services.services[owner.serviceIndex]
            let b = svc.backends[owner.backendIndex]
            m.append(("service", .string(svc.name)))
            m.append(("backend", .string(addressText(b.address, ipv6: !b.isIPv4))))
            // An all-ports backend (port 0) keeps the port the client asked for: the original
            // entry's destination, the reply entry's source.
            m.append(("backend_port", .int(b.port != 0 ? b.port : owner.isReverse ? k.sourcePort : k.destinationPort)))
        }
        return .object(m)
    }

    // MARK: - Stats

    static func counters(_ c: CounterSnapshot) -> JSONValue {
        .object(Counter.allCases.map { ($0.name, .int(c.counters[$0] ?? 0)) }
            + TransmitAction.allCases.map { ($0.name, .int(c.actions[$0] ?? 0)) }
            + [("drops", .object(DropReason.allCases.map { ($0.name, .int(c.drops[$0] ?? 0)) }))])
    }

    /// `stats`'s result (and the `stats` event's params).
    public func statsJSON() -> JSONValue {
        let s = target.statistics()
        var total = CounterSnapshot.zero
        for w in s.workers { total.add(w) }
        let occupancy = target.flows.view.occupancy(now: target.now)
        return .object([
            ("generation", .int(generation)), ("dataplane_generation", .int(s.generation)),
            ("total", ControlPlane.counters(total)),
            ("workers", .array(s.workers.enumerated().map { i, w in
                .object([("worker", .int(i)), ("counters", ControlPlane.counters(w))])
            })),
            ("ports", .array(s.ports.map { p in
                .object([("name", .string(p.name)), ("rx_packets", .int(p.rxPackets)), ("tx_packets", .int(p.txPackets)),
                         ("rx_bytes", .int(p.rxBytes)), ("tx_bytes", .int(p.txBytes)), ("rx_missed", .int(p.rxMissed)),
                         ("rx_errors", .int(p.rxErrors)), ("tx_errors", .int(p.txErrors)), ("rx_no_mbuf", .int(p.rxNoMbuf))])
            })),
            ("conntrack", .object([("count", .int(occupancy.live)), ("capacity", .int(occupancy.slots))])),
        ])
    }
}

extension CounterSnapshot {
    static var zero: CounterSnapshot { CounterSnapshot(summing: []) }

    mutating func add(_ other: CounterSnapshot) {
        for (k, v) in other.counters { counters[k, default: 0] &+= v }
        for (k, v) in other.drops { drops[k, default: 0] &+= v }
        for (k, v) in other.actions { actions[k, default: 0] &+= v }
    }
}
