import Testing
import SluiceConfig
import SluiceConntrack
import SluiceCore
import SluiceDataPlane
@testable import SluiceControl

#if canImport(Glibc)
import Glibc
#endif

/// The configuration every test starts from: one port with a connected /24 for backends, one
/// VIP, one service with two backends.
let baseYAML = """
ports:
  - name: lan0
    device: net_null0
    addresses: [198.51.100.1/24, "2001:db8:1::1/64"]
  - name: lan1
    device: net_null1
vips:
  - { address: 192.0.2.10, port: lan0 }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080, weight: 2 }
"""

/// A real server on a socket in a fresh temporary directory, in front of a real in-process
/// data plane (snapshots built by `makeSnapshot`).
final class Harness {
    let dir: String
    let path: String
    let target: InProcessTarget
    let plane: ControlPlane
    let server: ControlServer

    init(configure: (inout ControlServerOptions) -> Void = { _ in }) throws {
        var template = Array("/tmp/sluice-control-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ControlServerError(reason: "mkdtemp failed") }
        dir = String(cString: made)
        path = dir + "/sluiced.sock"
        let config = try SluicedConfig.parse(yaml: baseYAML, file: "base.yaml")
        target = try InProcessTarget(config: config,
                                     portMACs: [MACAddress("02:00:00:00:00:01")!, MACAddress("02:00:00:00:00:02")!])
        plane = ControlPlane(config: config, target: target)
        var options = ControlServerOptions(path: path)
        configure(&options)
        server = ControlServer(options: options, plane: plane)
        try server.start()
    }

    deinit {
        server.stop()
        rmdir(dir)
    }

    func client() throws -> ControlClient { try ControlClient(path: path, timeoutMilliseconds: 5000) }

    /// The server's error for `method`, or a test failure if it succeeded.
    func error(_ method: String, _ params: String) throws -> RPCError {
        let c = try client()
        let request = try JSONParser.parse(params)
        do throws(ControlClientError) {
            let result = try c.call(method, request)
            Issue.record("\(method) \(params) succeeded: \(result.serialized)")
            return RPCError(code: 0, message: "")
        } catch {
            guard case .server(let e) = error else { throw error }
            return e
        }
    }

    /// The state as `state.get` returns it, serialized (compared before and after errors).
    func stateText() throws -> String { try client().call("state.get").serialized }
}

func json(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }

@Suite struct ControlMethods {
    @Test func apiVersionListsEveryMethod() throws {
        let h = try Harness()
        let r = try h.client().call("api.version")
        #expect(r["api"] == .string("1.0"))
        #expect(r["methods"]?.arrayValue?.count == ControlPlane.methods.count)
    }

    @Test func stateGetRoundTripsThroughStateApply() throws {
        let h = try Harness()
        let c = try h.client()
        let state = try c.call("state.get")
        #expect(state["generation"] == .int(0))
        #expect(state["services"]?.arrayValue?.first?["name"] == .string("web"))
        // The same content under a new generation: accepted, nothing to rebuild.
        guard case .object(var m) = state else { Issue.record("not an object"); return }
        m[0].1 = .int(5)
        let published = h.target.generation
        let r = try c.call("state.apply", .object(m))
        #expect(r["generation"] == .int(5))
        #expect(r["changed"] == .bool(false))
        #expect(h.target.generation == published)
        // Again: idempotent.
        let again = try c.call("state.apply", .object(m))
        #expect(again["changed"] == .bool(false))
        #expect(h.plane.generation == 5)
    }

    @Test func serviceAddUpdateDelete() throws {
        let h = try Harness()
        let c = try h.client()
        let add = try c.call("service.add", json("""
            {"name":"dns","vip":"192.0.2.10","protocol":"udp","port":53,"backends":[{"address":"198.51.100.21"}]}
            """))
        #expect(add["generation"] == .int(1))
        #expect(h.target.snapshot.services.services.map(\.name) == ["web", "dns"])
        #expect(h.target.snapshot.services.services[1].backends.first?.port == 53)
        try c.call("service.update", json("""
            {"name":"dns","vip":"192.0.2.10","protocol":"udp","port":53,"backends":[{"address":"198.51.100.22","weight":3}]}
            """))
        #expect(h.target.snapshot.services.services[1].backends.map(\.weight) == [3])
        let list = try c.call("service.list", json(#"{"name":"dns"}"#))
        #expect(list["services"]?.arrayValue?.first?["backends"]?.arrayValue?.first?["address"] == .string("198.51.100.22"))
        try c.call("service.delete", json(#"{"name":"dns"}"#))
        #expect(h.target.snapshot.services.services.map(\.name) == ["web"])
        #expect(h.plane.generation == 3)
    }

    @Test func serviceErrorsNameTheFieldAndChangeNothing() throws {
        let h = try Harness()
        let before = try h.stateText()
        let published = h.target.generation
        let cases: [(String, String, Int, String)] = [
            ("service.add", #"{"name":"web","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[]}"#, RPCError.conflict, "params.name"),
            ("service.add", #"{"name":"web2","vip":"192.0.2.10","protocol":"tcp","port":80,"backends":[]}"#, RPCError.conflict, "params.port"),
            ("service.add", #"{"name":"x","vip":"192.0.2.99","protocol":"tcp","port":80,"backends":[]}"#, RPCError.invalidParams, "params.vip"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":"81","backends":[]}"#, RPCError.invalidParams, "params.port"),
            ("service.add", #"{"name":7,"vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[]}"#, RPCError.invalidParams, "params.name"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[],"color":"red"}"#, RPCError.invalidParams, "params.color"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"icmp","port":81,"backends":[]}"#, RPCError.invalidParams, "params.protocol"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81}"#, RPCError.invalidParams, "params.backends"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[{"address":"198.51.100.1","weight":65536}]}"#, RPCError.invalidParams, "params.backends[0].weight"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[{"address":"198.51.100.300"}]}"#, RPCError.invalidParams, "params.backends[0].address"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[{"address":"2001:db8:1::5"}]}"#, RPCError.invalidParams, "params.backends[0].address"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[{"address":"198.51.100.5"},{"address":"198.51.100.5"}]}"#, RPCError.invalidParams, "params.backends[1]"),
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"maglev_size":100,"backends":[]}"#, RPCError.invalidParams, "params.maglev_size"),
            // Valid on its own, but no port or route reaches the backend: the data plane refuses.
            ("service.add", #"{"name":"x","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[{"address":"203.0.113.5"}]}"#, RPCError.rejected, "services[1].backends[0].address"),
            ("service.update", #"{"name":"nope","vip":"192.0.2.10","protocol":"tcp","port":81,"backends":[]}"#, RPCError.notFound, "params.name"),
            ("service.delete", #"{"name":"nope"}"#, RPCError.notFound, "params.name"),
            ("service.delete", #"{}"#, RPCError.invalidParams, "params.name"),
            ("service.list", #"{"name":"nope"}"#, RPCError.notFound, "params.name"),
        ]
        for (method, params, code, field) in cases {
            let e = try h.error(method, params)
            #expect(e.code == code, "\(method) \(params): \(e)")
            #expect(e.field == field, "\(method) \(params): \(e)")
            #expect(e.message.contains(field), "message names the field: \(e.message)")
        }
        #expect(try h.stateText() == before)
        #expect(h.target.generation == published)
    }

    @Test func backendAddUpdateDrainRemove() throws {
        let h = try Harness()
        let c = try h.client()
        try c.call("backend.add", json(#"{"service":"web","backend":{"address":"198.51.100.13","port":8080}}"#))
        #expect(h.target.snapshot.services.services[0].backends.count == 3)
        try c.call("backend.update", json(#"{"service":"web","address":"198.51.100.13","weight":5}"#))
        #expect(h.target.snapshot.services.services[0].backends[2].weight == 5)
        // The same weight again changes nothing: no publication, no new generation.
        let published = h.target.generation
        let same = try c.call("backend.update", json(#"{"service":"web","address":"198.51.100.13","weight":5}"#))
        #expect(same["generation"] == .int(2))
        #expect(h.target.generation == published)
        let drained = try c.call("backend.update", json(#"{"service":"web","address":"198.51.100.13","drain":true}"#))
        #expect(drained["weight"] == .int(0))
        #expect(h.target.snapshot.services.services[0].backends[2].weight == 0)
        try c.call("backend.remove", json(#"{"service":"web","address":"198.51.100.13","port":8080}"#))
        #expect(h.target.snapshot.services.services[0].backends.map(\.address) == [
            IPv6Address(ipv4Mapped: 0xC633_640B), IPv6Address(ipv4Mapped: 0xC633_640C)])
        #expect(h.plane.generation == 4)
    }

    @Test func backendErrors() throws {
        let h = try Harness()
        try h.client().call("backend.add", json(#"{"service":"web","backend":{"address":"198.51.100.11","port":9090}}"#))
        let before = try h.stateText()
        let cases: [(String, String, Int, String)] = [
            ("backend.add", #"{"service":"web","backend":{"address":"198.51.100.11","port":8080}}"#, RPCError.conflict, "params.backend.address"),
            ("backend.add", #"{"service":"nope","backend":{"address":"198.51.100.13"}}"#, RPCError.notFound, "params.service"),
            ("backend.add", #"{"service":"web","backend":{"address":"bogus"}}"#, RPCError.invalidParams, "params.backend.address"),
            ("backend.add", #"{"service":"web","backend":{"address":"198.51.100.13","vni":5}}"#, RPCError.invalidParams, "params.backend.vni"),
            ("backend.add", #"{"service":"web"}"#, RPCError.invalidParams, "params.backend"),
            ("backend.add", #"{"service":"web","backend":{"address":"203.0.113.9"}}"#, RPCError.rejected, "services[0].backends[3].address"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","weight":-1}"#, RPCError.invalidParams, "params.weight"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","weight":70000}"#, RPCError.invalidParams, "params.weight"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","weight":1.5}"#, RPCError.invalidParams, "params.weight"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12"}"#, RPCError.invalidParams, "params.weight"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","weight":1,"drain":true}"#, RPCError.invalidParams, "params.weight"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","drain":"yes"}"#, RPCError.invalidParams, "params.drain"),
            ("backend.update", #"{"service":"web","address":"198.51.100.12","drain":false}"#, RPCError.invalidParams, "params.drain"),
            ("backend.update", #"{"service":"web","address":"198.51.100.99","weight":1}"#, RPCError.notFound, "params.address"),
            // Two backends at .11 (ports 8080 and 9090): the port must say which.
            ("backend.update", #"{"service":"web","address":"198.51.100.11","weight":1}"#, RPCError.invalidParams, "params.port"),
            ("backend.remove", #"{"service":"web","address":"198.51.100.12","port":1}"#, RPCError.notFound, "params.address"),
            ("backend.remove", #"{"service":"web","address":"198.51.100.11"}"#, RPCError.invalidParams, "params.port"),
            ("backend.remove", #"{"address":"198.51.100.12"}"#, RPCError.invalidParams, "params.service"),
        ]
        for (method, params, code, field) in cases {
            let e = try h.error(method, params)
            #expect(e.code == code, "\(method) \(params): \(e)")
            #expect(e.field == field, "\(method) \(params): \(e)")
        }
        #expect(try h.stateText() == before)
    }

    @Test func vipOwnAndDisown() throws {
        let h = try Harness()
        let c = try h.client()
        try c.call("vip.own", json(#"{"address":"192.0.2.20","port":"lan0"}"#))
        #expect(h.target.snapshot.ports[0].owned.ipv4Addresses.map(\.0).contains(IPv4Address("192.0.2.20")!))
        try c.call("vip.own", json(#"{"address":"2001:db8::20","port":"lan1","mac":"02:00:00:00:00:20"}"#))
        #expect(h.target.snapshot.ports[1].owned.ipv6Addresses.first?.1 == MACAddress("02:00:00:00:00:20"))
        try c.call("vip.disown", json(#"{"address":"192.0.2.20"}"#))
        #expect(!h.target.snapshot.ports[0].owned.ipv4Addresses.map(\.0).contains(IPv4Address("192.0.2.20")!))
        let before = try h.stateText()
        let cases: [(String, String, Int, String)] = [
            ("vip.own", #"{"address":"192.0.2.10","port":"lan0"}"#, RPCError.conflict, "params.address"),
            ("vip.own", #"{"address":"192.0.2.30","port":"wan9"}"#, RPCError.notFound, "params.port"),
            ("vip.own", #"{"address":"224.0.0.1","port":"lan0"}"#, RPCError.invalidParams, "params.address"),
            ("vip.own", #"{"address":"192.0.2.30","port":"lan0","mac":"01:00:5e:00:00:01"}"#, RPCError.invalidParams, "params.mac"),
            ("vip.own", #"{"address":"192.0.2.30"}"#, RPCError.invalidParams, "params.port"),
            ("vip.disown", #"{"address":"192.0.2.10"}"#, RPCError.conflict, "params.address"),
            ("vip.disown", #"{"address":"192.0.2.99"}"#, RPCError.notFound, "params.address"),
            ("vip.disown", #"{"address":"192.0.2.10","port":"lan1"}"#, RPCError.notFound, "params.address"),
        ]
        for (method, params, code, field) in cases {
            let e = try h.error(method, params)
            #expect(e.code == code, "\(method) \(params): \(e)")
            #expect(e.field == field, "\(method) \(params): \(e)")
        }
        #expect(try h.stateText() == before)
        // Once the service is gone its VIP can go.
        try c.call("service.delete", json(#"{"name":"web"}"#))
        try c.call("vip.disown", json(#"{"address":"192.0.2.10","port":"lan0"}"#))
        #expect(h.target.snapshot.ports[0].owned.ipv4Addresses.map(\.0) == [IPv4Address("198.51.100.1")!])
    }

    @Test func stateApplyGenerations() throws {
        let h = try Harness()
        let c = try h.client()
        let desired = """
            {"generation":7,"vips":[{"address":"192.0.2.10","port":"lan0"},{"address":"192.0.2.11","port":"lan0"}],
             "services":[{"name":"api","vip":"192.0.2.11","protocol":"tcp","port":443,"backends":[{"address":"198.51.100.31"}]}]}
            """
        let r = try c.call("state.apply", json(desired))
        #expect(r["changed"] == .bool(true))
        #expect(h.target.snapshot.services.services.map(\.name) == ["api"])
        let published = h.target.generation
        let same = try c.call("state.apply", json(desired))
        #expect(same["changed"] == .bool(false))
        #expect(h.target.generation == published)
        let before = try h.stateText()
        let cases: [(String, Int, String)] = [
            (#"{"generation":6,"vips":[],"services":[]}"#, RPCError.conflict, "params.generation"),
            (#"{"generation":7,"vips":[],"services":[]}"#, RPCError.conflict, "params.generation"),
            (#"{"vips":[],"services":[]}"#, RPCError.invalidParams, "params.generation"),
            (#"{"generation":-1,"vips":[],"services":[]}"#, RPCError.invalidParams, "params.generation"),
            (#"{"generation":8,"vips":[{"address":"192.0.2.10","port":"lan0"}],"services":[{"name":"a","vip":"192.0.2.12","protocol":"tcp","port":1,"backends":[]}]}"#,
             RPCError.invalidParams, "params.services[0].vip"),
            (#"{"generation":8,"vips":[{"address":"192.0.2.10","port":"lan0"},{"address":"192.0.2.10","port":"lan0"}]}"#,
             RPCError.invalidParams, "params.vips[1].address"),
            (#"{"generation":8,"vips":[{"address":"192.0.2.10","port":"lan7"}]}"#, RPCError.invalidParams, "params.vips[0].port"),
            (#"{"generation":8,"vips":[{"address":"192.0.2.10","port":"lan0"}],"services":[{"name":"a","vip":"192.0.2.10","protocol":"tcp","port":1,"backends":[{"address":"203.0.113.1"}]}]}"#,
             RPCError.rejected, "services[0].backends[0].address"),
            (#"{"generation":8,"extra":1}"#, RPCError.invalidParams, "params.extra"),
        ]
        for (params, code, field) in cases {
            let e = try h.error("state.apply", params)
            #expect(e.code == code, "\(params): \(e)")
            #expect(e.field == field, "\(params): \(e)")
        }
        #expect(try h.stateText() == before)
        #expect(h.target.generation == published)
        // An incremental change moves the generation on by one.
        try c.call("backend.update", json(#"{"service":"api","address":"198.51.100.31","weight":4}"#))
        #expect(h.plane.generation == 8)
    }

    @Test func batchIsAllOrNothing() throws {
        let h = try Harness()
        let c = try h.client()
        let before = try h.stateText()
        let published = h.target.generation
        try c.send(line: """
            [{"jsonrpc":"2.0","id":1,"method":"backend.add","params":{"service":"web","backend":{"address":"198.51.100.13","port":8080}}},
             {"jsonrpc":"2.0","id":2,"method":"backend.remove","params":{"service":"nope","address":"198.51.100.11"}}]
            """.split(separator: "\n").joined())
        let responses = try #require(c.readMessage()?.arrayValue)
        #expect(responses.count == 2)
        #expect(responses[0]["error"]?["code"] == .int(RPCError.batchAborted))
        #expect(responses[1]["error"]?["code"] == .int(RPCError.notFound))
        #expect(try h.stateText() == before)
        #expect(h.target.generation == published)
        // A good batch: published once, one generation.
        try c.send(line: """
            [{"jsonrpc":"2.0","id":1,"method":"backend.add","params":{"service":"web","backend":{"address":"198.51.100.13","port":8080}}},
             {"jsonrpc":"2.0","id":2,"method":"backend.update","params":{"service":"web","address":"198.51.100.11","drain":true}},
             {"jsonrpc":"2.0","method":"vip.own","params":{"address":"192.0.2.40","port":"lan0"}}]
            """.split(separator: "\n").joined())
        let ok = try #require(c.readMessage()?.arrayValue)
        #expect(ok.count == 2)  // the notification gets no response
        #expect(ok[0]["result"]?["generation"] == .int(1))
        #expect(ok[1]["result"]?["generation"] == .int(1))
        #expect(h.target.generation == published + 1)
        #expect(h.target.snapshot.services.services[0].backends.map(\.weight) == [0, 2, 1])
        #expect(h.plane.config.vips.count == 2)
        // A data-plane refusal aborts the whole batch.
        let mid = try h.stateText()
        try c.send(line: """
            [{"jsonrpc":"2.0","id":"a","method":"vip.own","params":{"address":"192.0.2.41","port":"lan0"}},\
            {"jsonrpc":"2.0","id":"b","method":"backend.add","params":{"service":"web","backend":{"address":"203.0.113.8"}}}]
            """)
        let refused = try #require(c.readMessage()?.arrayValue)
        #expect(refused.allSatisfy { $0["error"]?["code"] == .int(RPCError.rejected) })
        #expect(try h.stateText() == mid)
        // conntrack.flush cannot be undone, so it cannot join a batch.
        try c.send(line: #"[{"jsonrpc":"2.0","id":1,"method":"conntrack.flush","params":{"all":true}},{"jsonrpc":"2.0","id":2,"method":"stats"}]"#)
        let flush = try #require(c.readMessage()?.arrayValue)
        #expect(flush[0]["error"]?["code"] == .int(RPCError.invalidRequest))
        #expect(flush[1]["error"]?["code"] == .int(RPCError.batchAborted))
    }

    /// A batch with state.apply and another change would commit the apply's generation with
    /// other content, and a retry of the same apply would then be refused: such a batch is
    /// refused whole, and state.apply with read-only requests still works.
    @Test func stateApplyIsTheOnlyChangeOfItsBatch() throws {
        let h = try Harness()
        let c = try h.client()
        let apply = #"{"jsonrpc":"2.0","id":1,"method":"state.apply","params":{"generation":5,"vips":[{"address":"192.0.2.10","port":"lan0"}],"services":[]}}"#
        let own = #"{"jsonrpc":"2.0","id":2,"method":"vip.own","params":{"address":"192.0.2.60","port":"lan0"}}"#
        try c.send(line: "[\(apply),\(own)]")
        let refused = try #require(c.readMessage()?.arrayValue)
        #expect(refused.count == 2)
        for r in refused {
            #expect(r["error"]?["code"] == .int(RPCError.invalidRequest), "\(r.serialized)")
            #expect(r["error"]?["message"]?.stringValue?.contains("state.apply must be the only change of its batch") == true)
        }
        #expect(h.plane.generation == 0)
        #expect(h.plane.config.vips.count == 1)
        // Two applies in one batch are refused too.
        try c.send(line: "[\(apply),\(apply)]")
        #expect(try #require(c.readMessage()?.arrayValue).allSatisfy { $0["error"]?["code"] == .int(RPCError.invalidRequest) })
        // With read-only requests it is fine, and a retry of it is idempotent.
        let get = #"{"jsonrpc":"2.0","id":3,"method":"state.get"}"#
        try c.send(line: "[\(apply),\(get)]")
        let ok = try #require(c.readMessage()?.arrayValue)
        #expect(ok[0]["result"]?["generation"] == .int(5))
        #expect(ok[1]["result"] != nil)
        try c.send(line: apply)
        #expect(try c.readMessage()?["result"]?["changed"] == .bool(false))
    }

    @Test func protocolErrors() throws {
        let h = try Harness()
        let c = try h.client()
        let cases: [(String, Int, JSONValue)] = [
            ("{", RPCError.parseError, .null),
            (#"{"jsonrpc":"2.0","id":1,"method":"stats"} x"#, RPCError.parseError, .null),
            (#"{"jsonrpc":"2.0","id":1,"id":2,"method":"stats"}"#, RPCError.parseError, .null),
            (String(repeating: "[", count: 100), RPCError.parseError, .null),
            ("[]", RPCError.invalidRequest, .null),
            ("42", RPCError.invalidRequest, .null),
            (#"{"jsonrpc":"1.0","id":1,"method":"stats"}"#, RPCError.invalidRequest, .int(1)),
            (#"{"jsonrpc":"2.0","id":1}"#, RPCError.invalidRequest, .int(1)),
            (#"{"jsonrpc":"2.0","id":{"a":1},"method":"stats"}"#, RPCError.invalidRequest, .null),
            (#"{"jsonrpc":"2.0","id":1,"method":"stats","extra":1}"#, RPCError.invalidRequest, .int(1)),
            (#"{"jsonrpc":"2.0","id":"x","method":"nope"}"#, RPCError.methodNotFound, .string("x")),
            (#"{"jsonrpc":"2.0","id":3,"method":"stats","params":[1]}"#, RPCError.invalidParams, .int(3)),
            (#"{"jsonrpc":"2.0","id":3,"method":"stats","params":{"x":1}}"#, RPCError.invalidParams, .int(3)),
        ]
        for (line, code, id) in cases {
            try c.send(line: line)
            let r = try #require(try c.readMessage())
            #expect(r["error"]?["code"] == .int(code), "\(line) → \(r.serialized)")
            #expect(r["id"] == id, "\(line) → \(r.serialized)")
        }
        // Invalid UTF-8 is a parse error too.
        try c.send(raw: Array(#"{"jsonrpc":"2.0","id":1,"method":"st"#.utf8) + [0xFF, 0xFE] + Array("\"}\n".utf8))
        #expect(try c.readMessage()?["error"]?["code"] == .int(RPCError.parseError))
        // A notification gets no response: the next line answered is the next request's.
        try c.send(line: #"{"jsonrpc":"2.0","method":"stats"}"#)
        try c.send(line: #"{"jsonrpc":"2.0","id":9,"method":"api.version"}"#)
        #expect(try c.readMessage()?["id"] == .int(9))
    }

    @Test func statsReportWorkersPortsDropsAndConntrack() throws {
        let h = try Harness()
        h.target.counters[0].add(.rxPackets, 5)
        h.target.counters[1].add(.rxPackets, 7)
        h.target.counters[1].countDrop(.noBackend, 3)
        let r = try h.client().call("stats")
        #expect(r["total"]?["rx_packets"] == .int(12))
        #expect(r["total"]?["drops"]?["no_backend"] == .int(3))
        #expect(r["workers"]?.arrayValue?.count == 2)
        #expect(r["workers"]?.arrayValue?[1]["counters"]?["rx_packets"] == .int(7))
        #expect(r["ports"]?.arrayValue?.map { $0["name"] } == [.string("lan0"), .string("lan1")])
        #expect(r["conntrack"]?["capacity"] == .int(h.target.flows.view.slotCount))
    }

    /// Inserts forward flows from `clients` clients to (service 0, backend b) for each b.
    func insertFlows(_ h: Harness, clients: Int, backends: [Int]) {
        for c in 0..<clients {
            for b in backends {
                let key = ConntrackKey(ipv4Source: 0xCB00_7100 | UInt32(c), destination: 0xC000_020A,
                                       sourcePort: UInt16(40000 + b), destinationPort: 80, protocol: 6)
                let value = DataPlaneSnapshot.flowValue(service: 0, backend: b, vipPort: 80, ingress: 0)
                _ = h.target.flows.view.insert(key, hash: key.hash(ConntrackHashSeed(7)), value: value,
                                               event: .tcp(flags: 0x02), now: h.target.now)
            }
        }
    }

    @Test func conntrackCountListFlush() throws {
        let h = try Harness()
        insertFlows(h, clients: 10, backends: [0, 1])
        let c = try h.client()
        #expect(try c.call("conntrack.count")["count"] == .int(20))
        #expect(try c.call("conntrack.count", json(#"{"backend":"198.51.100.12"}"#))["count"] == .int(10))
        #expect(try c.call("conntrack.count", json(#"{"vip":"192.0.2.10","protocol":"tcp"}"#))["count"] == .int(20))
        #expect(try c.call("conntrack.count", json(#"{"service":"web","protocol":"udp"}"#))["count"] == .int(0))
        let list = try c.call("conntrack.list", json(#"{"backend":"198.51.100.11","limit":4}"#))
        #expect(list["flows"]?.arrayValue?.count == 4)
        #expect(list["truncated"] == .bool(true))
        let flow = try #require(list["flows"]?.arrayValue?.first)
        #expect(flow["service"] == .string("web"))
        #expect(flow["backend"] == .string("198.51.100.11"))
        #expect(flow["destination"] == .string("192.0.2.10"))
        #expect(flow["protocol"] == .string("tcp"))
        #expect(flow["state"] != nil)
        let flushed = try c.call("conntrack.flush", json(#"{"backend":"198.51.100.11"}"#))
        #expect(flushed["flushed"] == .int(10))
        #expect(try c.call("conntrack.count")["count"] == .int(10))
        for (method, params, field) in [
            ("conntrack.flush", "{}", "params"),
            ("conntrack.flush", #"{"all":true,"vip":"192.0.2.10"}"#, "params.all"),
            ("conntrack.list", #"{"limit":0}"#, "params.limit"),
            ("conntrack.list", #"{"limit":10001}"#, "params.limit"),
            ("conntrack.count", #"{"protocol":"gre"}"#, "params.protocol"),
            ("conntrack.count", #"{"backend":"nope"}"#, "params.backend"),
            ("conntrack.count", #"{"vip":1}"#, "params.vip"),
        ] {
            let e = try h.error(method, params)
            #expect(e.code == RPCError.invalidParams, "\(method) \(params): \(e)")
            #expect(e.field == field, "\(method) \(params): \(e)")
        }
        #expect(try c.call("conntrack.flush", json(#"{"all":true}"#))["flushed"] == .int(10))
        #expect(try c.call("conntrack.count")["count"] == .int(0))
    }

    /// A full-NAT return entry (zone 2) names its forward entry's slot, not a backend: its
    /// service and backend are resolved through that entry.
    @Test func fullNATReturnEntriesResolveThroughTheirForwardEntry() throws {
        let h = try Harness()
        let fwdKey = ConntrackKey(ipv4Source: 0xCB00_7105, destination: 0xC000_020A, sourcePort: 40000,
                                  destinationPort: 80, protocol: 6)
        let value = DataPlaneSnapshot.flowValue(service: 0, backend: 1, vipPort: 80, ingress: 0)
        guard case .inserted(let forward) = h.target.flows.view.insert(
            fwdKey, hash: fwdKey.hash(ConntrackHashSeed(7)), value: value, event: .tcp(flags: 0x02), now: h.target.now) else {
            Issue.record("forward insert failed"); return
        }
        let retKey = ConntrackKey(ipv4Source: 0xC633_640C, destination: 0xC633_6464, sourcePort: 8080,
                                  destinationPort: 2000, protocol: 6, zone: DataPlaneSnapshot.fullNATReturnFlowZone)
        _ = h.target.flows.view.insert(retKey, hash: retKey.hash(ConntrackHashSeed(7)),
                                       value: FlowValue(backend: UInt32(forward.slot), aux: UInt32(forward.generationTag)),
                                       event: .tcp(flags: 0x12, reply: true), now: h.target.now)
        let c = try h.client()
        let list = try c.call("conntrack.list", json(#"{"backend":"198.51.100.12"}"#))
        let flows = try #require(list["flows"]?.arrayValue)
        #expect(flows.count == 2)
        #expect(flows.allSatisfy { $0["service"] == .string("web") && $0["backend_port"] == .int(8080) })
        #expect(flows.map { $0["direction"] } .contains(.string("reply")))
        #expect(try c.call("conntrack.flush", json(#"{"backend":"198.51.100.12"}"#))["flushed"] == .int(2))
        #expect(try c.call("conntrack.count")["count"] == .int(0))
    }

    @Test func neighborsList() throws {
        let h = try Harness()
        _ = h.target.neighbors.learn(ipv4: 0xC633_640B, mac: MACAddress("02:00:00:00:00:0b")!, now: 1)
        let r = try h.client().call("neighbors.list")
        let entry = try #require(r["neighbors"]?.arrayValue?.first { $0["address"] == .string("198.51.100.11") })
        #expect(entry["mac"] == .string("02:00:00:00:00:0b"))
    }

    @Test func eventsStreamChangesAndCounters() throws {
        let h = try Harness()
        let subscriber = try h.client()
        let r = try subscriber.call("events.subscribe", json(#"{"interval_ms":100}"#))
        #expect(r["subscribed"] == .bool(true))
        var sawStats = false
        for _ in 0..<5 where !sawStats {
            sawStats = try subscriber.nextNotification(timeoutMilliseconds: 2000)?["params"]?["type"] == .string("stats")
        }
        #expect(sawStats)
        try h.client().call("backend.update", json(#"{"service":"web","address":"198.51.100.12","weight":9}"#))
        var change: JSONValue?
        for _ in 0..<20 {
            let n = try subscriber.nextNotification(timeoutMilliseconds: 2000)
            if n?["params"]?["type"] == .string("state") { change = n; break }
        }
        #expect(change?["params"]?["generation"] == .int(1))
        #expect(change?["params"]?["changes"] == .array([.string("backend.update")]))
        for params in [#"{"interval_ms":5}"#, #"{"interval_ms":"1000"}"#, #"{"stats":1}"#] {
            #expect(try h.error("events.subscribe", params).code == RPCError.invalidParams)
        }
    }
}

@Suite struct ControlReload {
    /// The daemon's SIGHUP path: a whole configuration through `withPlane`, published, the
    /// generation moved on, subscribers told; a refused one changes nothing.
    @Test func reloadGoesThroughThePlane() throws {
        let h = try Harness()
        let subscriber = try h.client()
        try subscriber.call("events.subscribe", json(#"{"stats":false}"#))
        var next = h.plane.config
        next.services[0].backends.removeLast()
        let published = try h.server.withPlane { plane throws(ConfigError) in try plane.replaceConfiguration(next, reason: "reload") }
        #expect(published == h.target.generation)
        #expect(h.plane.generation == 1)
        #expect(h.target.snapshot.services.services[0].backendCount == 1)
        let event = try #require(try subscriber.nextNotification(timeoutMilliseconds: 3000))
        #expect(event["params"]?["changes"] == .array([.string("reload")]))
        var bad = next
        bad.services[0].backends[0].address = .v4(IPv4Address("203.0.113.1")!)
        #expect(throws: ConfigError.self) {
            try h.server.withPlane { plane throws(ConfigError) in try plane.replaceConfiguration(bad, reason: "reload") }
        }
        #expect(h.plane.config == next)
        #expect(h.plane.generation == 1)
    }
}

@Suite struct ControlLimits {
    @Test func oversizedRequestIsRefusedAndDisconnected() throws {
        let h = try Harness { $0.maxRequestBytes = 1000 }
        let c = try h.client()
        try c.send(raw: Array(repeating: UInt8(ascii: "x"), count: 3000))
        let r = try #require(try c.readMessage())
        #expect(r["error"]?["code"] == .int(RPCError.limitExceeded))
        #expect(try c.readMessage() == nil)
        // The server carries on for others, state untouched.
        #expect(try h.client().call("state.get")["generation"] == .int(0))
    }

    /// One line may not make the server build more than its output limit: a batch of big
    /// `conntrack.list`s is cut off at the limit (-32006, nothing applied, connection closed),
    /// and a batch holds at most `maxBatchRequests` requests.
    @Test func batchResponseIsBoundedByTheOutputLimit() throws {
        let limit = 64 << 10
        let h = try Harness { $0.maxPendingOutputBytes = limit }
        ControlMethods().insertFlows(h, clients: 20, backends: [0, 1])
        let c = try h.client()
        let own = #"{"jsonrpc":"2.0","id":0,"method":"vip.own","params":{"address":"192.0.2.50","port":"lan0"}}"#
        let list = #"{"jsonrpc":"2.0","id":1,"method":"conntrack.list","params":{"limit":10000}}"#
        try c.send(line: "[" + ([own] + Array(repeating: list, count: 200)).joined(separator: ",") + "]")
        let r = try #require(try c.readMessage())
        #expect(r["error"]?["code"] == .int(RPCError.limitExceeded), "\(r.serialized.prefix(300))")
        #expect(r["error"]?["message"]?.stringValue?.contains("\(limit) bytes") == true)
        #expect(try c.readMessage() == nil)
        #expect(h.plane.generation == 0)
        #expect(h.plane.config.vips.count == 1)
        #expect(h.server.peakPendingOutput <= 2 * limit)
        // Too many requests in one batch: refused as a whole, the connection stays.
        let d = try h.client()
        let version = #"{"jsonrpc":"2.0","id":1,"method":"conntrack.count"}"#
        try d.send(line: "[" + Array(repeating: version, count: ControlPlane.maxBatchRequests + 1).joined(separator: ",") + "]")
        let refused = try #require(try d.readMessage())
        #expect(refused["error"]?["code"] == .int(RPCError.invalidRequest))
        #expect(refused["error"]?["message"]?.stringValue?.contains("at most \(ControlPlane.maxBatchRequests)") == true)
        try d.send(line: "[" + Array(repeating: version, count: ControlPlane.maxBatchRequests).joined(separator: ",") + "]")
        #expect(try d.readMessage()?.arrayValue?.count == ControlPlane.maxBatchRequests)
    }

    @Test func tooManyClientsAreTurnedAway() throws {
        let h = try Harness { $0.maxClients = 2 }
        let a = try h.client(), b = try h.client()
        try a.call("api.version")
        try b.call("api.version")
        let c = try h.client()
        let r = try #require(try c.readMessage())
        #expect(r["error"]?["code"] == .int(RPCError.limitExceeded))
        #expect(try c.readMessage() == nil)
        try a.call("api.version")
    }

    @Test func idleAndHalfWrittenClientsAreDisconnected() throws {
        let h = try Harness { $0.idleTimeoutMilliseconds = 300 }
        let idle = try h.client()
        let half = try h.client()
        try half.send(raw: Array(#"{"jsonrpc":"2.0","id":1,"meth"#.utf8))
        for c in [idle, half] {
            let r = try #require(try c.readMessage(timeoutMilliseconds: 3000))
            #expect(r["error"]?["code"] == .int(RPCError.limitExceeded))
            #expect(try c.readMessage(timeoutMilliseconds: 3000) == nil)
        }
        #expect(try h.client().call("api.version")["api"] == .string("1.0"))
    }

    /// Blank lines are not requests: a client that sends only those is idle and is closed.
    @Test func blankLinesDoNotKeepAConnection() throws {
        let h = try Harness { $0.idleTimeoutMilliseconds = 300 }
        let c = try h.client()
        let end = ControlServer.monotonicMilliseconds() + 3000
        var answer: JSONValue?
        while answer == nil && ControlServer.monotonicMilliseconds() < end {
            try? c.send(raw: Array(" \n\n".utf8))  // fails once the server has closed
            answer = try? c.readMessage(timeoutMilliseconds: 50)
        }
        let r = try #require(answer, "still connected after 3 s of blank lines")
        #expect(r["error"]?["code"] == .int(RPCError.limitExceeded))
        #expect(r["error"]?["message"]?.stringValue?.contains("idle") == true)
    }

    /// A client that sends requests but never reads its responses: once the kernel buffers are
    /// full and the server holds more than its output limit for it, it is cut off.
    @Test func clientThatDoesNotReadIsDisconnected() throws {
        let h = try Harness { $0.maxPendingOutputBytes = 64 << 10 }
        let c = try h.client()
        let request = Array(#"{"jsonrpc":"2.0","id":1,"method":"stats"}"#.utf8) + [UInt8(ascii: "\n")]
        var sent = 0
        do {
            for _ in 0..<4000 {
                try c.send(raw: request)
                sent += 1
            }
        } catch {
            // The server closed the connection while we were still sending: what we wanted.
        }
        var answered = 0
        while let _ = try? c.readMessage(timeoutMilliseconds: 3000) { answered += 1 }
        #expect(answered < sent, "answered \(answered) of \(sent): the non-reading client was never cut off")
        // What the server held for it stayed within the limit plus one response (itself at
        // most the limit), however much the client sent.
        #expect(h.server.peakPendingOutput <= 2 * (64 << 10), "peak output \(h.server.peakPendingOutput) bytes")
        #expect(try h.client().call("api.version")["api"] == .string("1.0"))
    }

    @Test func peerCredentialsAreChecked() throws {
        let h = try Harness { $0.owner = 4242; $0.group = 4343 }
        #expect(h.server.isAllowed(.init(pid: 1, uid: 0, gid: 0)))
        #expect(h.server.isAllowed(.init(pid: 1, uid: 4242, gid: 1)))
        #expect(h.server.isAllowed(.init(pid: 1, uid: 1000, gid: 4343)))
        #expect(!h.server.isAllowed(.init(pid: Int32.max, uid: 65534, gid: 65534)))
        // A supplementary group as captured at connect time, not the pid's groups now.
        #expect(h.server.isAllowed(.init(pid: Int32.max, uid: 65534, gid: 65534, groups: [7, 4343])))
        #expect(!h.server.isAllowed(.init(pid: getpid(), uid: 65534, gid: 65534, groups: [7, 434])))
        // The socket file carries the configured owner, group and mode (tests run as root).
        var st = stat()
        #expect(stat(h.path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o660)
        if geteuid() == 0 {
            #expect(st.st_uid == 4242)
            #expect(st.st_gid == 4343)
        }
        // Our own credentials, read over a real connection.
        let c = try h.client()
        _ = c
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let cred = try #require(ControlServer.peerCredentials(fds[0]))
        #expect(cred.uid == geteuid())
        #expect(cred.pid == getpid())
        // SO_PEERGROUPS: our own supplementary groups.
        var own = [gid_t](repeating: 0, count: 65536)
        let n = getgroups(Int32(own.count), &own)
        #expect(n >= 0)
        #expect(Set(cred.groups) == Set(own.prefix(Int(n))))
        close(fds[0]); close(fds[1])
    }

    /// `stop` removes only the socket file it made (not what has since replaced it), and
    /// leaves the plane without a callback into the stopped server.
    @Test func stopRemovesOnlyItsOwnSocketFile() throws {
        let h = try Harness()
        #expect(h.plane.onChange != nil)
        unlink(h.path)
        let fd = open(h.path, O_CREAT | O_WRONLY, 0o600)
        #expect(fd >= 0)
        close(fd)
        h.server.stop()
        #expect(access(h.path, F_OK) == 0, "stop removed a file that is not its socket")
        #expect(h.plane.onChange == nil)
        unlink(h.path)
        // Its own socket file it does remove.
        let own = ControlServer(options: ControlServerOptions(path: h.path), plane: h.plane)
        try own.start()
        #expect(access(h.path, F_OK) == 0)
        own.stop()
        #expect(access(h.path, F_OK) != 0)
    }

    /// The socket is made in a private directory and renamed into place: a parent others may
    /// write to (without the sticky bit) is refused by name, a sticky one is fine, and nothing
    /// is left beside the socket.
    @Test func socketDirectoryIsCheckedAndNothingIsLeftBeside() throws {
        let h = try Harness()
        let open = h.dir + "/open"
        #expect(mkdir(open, 0o700) == 0)
        #expect(chmod(open, 0o777) == 0)
        let refused = ControlServer(options: ControlServerOptions(path: open + "/s.sock"), plane: h.plane)
        do {
            try refused.start()
            refused.stop()
            Issue.record("bound in a world-writable directory without the sticky bit")
        } catch {
            #expect(error.reason.contains(open), "\(error)")
            #expect(error.reason.contains("sticky"), "\(error)")
        }
        #expect(access(open + "/s.sock", F_OK) != 0)
        #expect(chmod(open, 0o1777) == 0)
        var options = ControlServerOptions(path: open + "/s.sock")
        options.mode = 0o600
        let sticky = ControlServer(options: options, plane: h.plane)
        try sticky.start()
        var st = stat()
        #expect(lstat(open + "/s.sock", &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        #expect(st.st_mode & 0o7777 == 0o600)
        #expect(try ControlClient(path: open + "/s.sock").call("api.version")["api"] == .string("1.0"))
        #expect(ControlPlaneTestsSupport.entries(open) == ["s.sock"])
        sticky.stop()
        #expect(ControlPlaneTestsSupport.entries(open) == [])
        rmdir(open)
    }

    @Test func staleSocketIsReplacedLiveOneRefused() throws {
        let h = try Harness()
        let second = ControlServer(options: ControlServerOptions(path: h.path), plane: h.plane)
        #expect(throws: ControlServerError.self) { try second.start() }
        // A leftover socket file with nobody behind it is replaced.
        h.server.stop()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = try #require(ControlServer.address(h.path))
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        let third = ControlServer(options: ControlServerOptions(path: h.path), plane: h.plane)
        try third.start()
        #expect(try ControlClient(path: h.path).call("api.version")["api"] == .string("1.0"))
        third.stop()
    }
}

@Suite struct JSONStrictness {
    @Test func parsesAndSerializes() throws {
        let v = try JSONParser.parse(#" {"a":[1,-2.5e3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"]} "#)
        #expect(v["a"]?.arrayValue?.count == 6)
        #expect(v["a"]?.arrayValue?[5] == .string("x\"\\/\u{08}\u{0C}\n\r\té😀"))
        #expect(try JSONParser.parse(v.serialized) == v)
        let escaped = JSONValue.object([("k\u{2028}", .array([.string("\u{01}\u{7f}é😀\t"), .null, .bool(false), .int(-12)]))])
        for value in [v, escaped, .array([]), .object([])] {
            #expect(value.serializedByteCount == value.serialized.utf8.count)
        }
    }

    /// Members and items are bounded and duplicates found through a set, so a hostile line's
    /// parse stays short: past the bounds it is an error naming the bound (asserted here, not
    /// timed), and a big object of distinct members parses.
    @Test func membersAndItemsAreBounded() throws {
        func object(_ n: Int) -> String {
            "{" + (0..<n).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        }
        #expect(try JSONParser.parse(object(JSONParser.maxMembers)).objectValue?.count == JSONParser.maxMembers)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(object(JSONParser.maxMembers + 1)) }
        do {
            _ = try JSONParser.parse(object(20_000))
            Issue.record("an object of 20000 members parsed")
        } catch {
            #expect(error.reason == "object with more than \(JSONParser.maxMembers) members")
        }
        let items = "[" + Array(repeating: "0", count: JSONParser.maxItems).joined(separator: ",")
        #expect(try JSONParser.parse(items + "]").arrayValue?.count == JSONParser.maxItems)
        do {
            _ = try JSONParser.parse(items + ",0]")
            Issue.record("an array of \(JSONParser.maxItems + 1) items parsed")
        } catch {
            #expect(error.reason == "array with more than \(JSONParser.maxItems) items")
        }
        // Duplicates are still found, however far apart.
        do {
            _ = try JSONParser.parse(String(object(5000).dropLast()) + #","k17":1}"#)
            Issue.record("a duplicate member parsed")
        } catch {
            #expect(error.reason == "duplicate member 'k17'")
        }
    }

    /// Over the socket: a parse error (-32700) naming the bound; the server carries on.
    @Test func tooManyMembersIsAParseErrorOverTheSocket() throws {
        let h = try Harness()
        let c = try h.client()
        let params = (0..<20_000).map { "\"k\($0)\":1" }.joined(separator: ",")
        try c.send(line: #"{"jsonrpc":"2.0","id":1,"method":"stats","params":{"# + params + "}}")
        let r = try #require(try c.readMessage())
        #expect(r["error"]?["code"] == .int(RPCError.parseError))
        #expect(r["error"]?["message"]?.stringValue?.contains("more than \(JSONParser.maxMembers) members") == true)
        #expect(try c.call("api.version")["api"] == .string("1.0"))
    }

    @Test func rejectsWhatIsNotJSON() {
        for text in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "+1", "tru", "\"\\x\"", "\"\\ud800\"", "\"a\u{01}\"",
                     "{\"a\":1}{", "{'a':1}", "NaN", "[1 2]", "{\"a\" 1}", "\"\\udc00\""] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONParser.parse(text) }
        }
    }
}

enum ControlPlaneTestsSupport {
    /// The names in a directory, sorted (without . and ..).
    static func entries(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

/// A data plane target whose one "worker" is mid-burst when a flush starts: it inserts the
/// reverse entry it kept back (DeferredReverseEntries) only when the grace period lets its
/// burst end. The flush must not leave that entry behind.
private final class MidBurstTarget: ControlTarget {
    let inner: InProcessTarget
    var keptBack: (key: ConntrackKey, value: FlowValue)?
    init(_ inner: InProcessTarget) { self.inner = inner }
    func publish(_ config: SluicedConfig) throws(ConfigError) -> UInt64 { try inner.publish(config) }
    var snapshot: DataPlaneSnapshot { inner.snapshot }
    var flows: FlowTable { inner.flows }
    var neighbors: NeighborTable { inner.neighbors }
    var now: UInt32 { inner.now }
    func statistics() -> DataPlaneStatistics { inner.statistics() }
    func waitForWorkers() -> Bool {
        if let (key, value) = keptBack {
            _ = inner.flows.view.insert(key, hash: key.hash(ConntrackHashSeed(7)), value: value, event: .tcp(flags: 0x02),
                                        now: inner.now)
            keptBack = nil
        }
        return true
    }
}

@Suite struct FlushAroundBursts {
    @Test func aFlushAlsoRemovesReverseEntriesCommittedDuringIt() throws {
        let config = try SluicedConfig.parse(yaml: baseYAML, file: "base.yaml")
        let target = MidBurstTarget(try InProcessTarget(config: config,
                                                        portMACs: [MACAddress("02:00:00:00:00:01")!, MACAddress("02:00:00:00:00:02")!]))
        let plane = ControlPlane(config: config, target: target)
        // The worker's new flow: its forward entry is in, its reverse entry kept back.
        let forward = ConntrackKey(ipv4Source: 0xCB00_7105, destination: 0xC000_020A, sourcePort: 40000, destinationPort: 80,
                                   protocol: 6)
        let value = DataPlaneSnapshot.flowValue(service: 0, backend: 1, vipPort: 80, ingress: 0)
        _ = target.flows.view.insert(forward, hash: forward.hash(ConntrackHashSeed(7)), value: value, event: .tcp(flags: 0x02),
                                     now: target.now)
        target.keptBack = (ConntrackKey(ipv4Source: 0xC633_640C, destination: 0xCB00_7105, sourcePort: 8080,
                                        destinationPort: 40000, protocol: 6, zone: 1), value)
        var session = ControlPlane.Session()
        let reply = try plane.handle(line: Array(#"{"jsonrpc":"2.0","id":1,"method":"conntrack.flush","params":{"all":true}}"#.utf8),
                                     session: &session)
        #expect(reply?["result"]?["flushed"] == .int(2))
        #expect(target.keptBack == nil)
        #expect(target.flows.view.count(now: target.now) == 0)
    }
}
