import SluiceConfig
import SluiceCore

/// Configuration objects as JSON, in the schema the configuration file and `state.apply`
/// accept: what `state.get` prints can be applied again unchanged.
extension JSONValue {
    public static func service(_ s: ServiceConfig) -> JSONValue {
        var m: [(String, JSONValue)] = [
            ("name", .string(s.name)), ("vip", .string(s.vip.description)), ("protocol", .string(s.proto.rawValue)),
            ("port", .int(s.port)), ("mode", .string(s.method.rawValue)),
        ]
        if s.maglevSize != ServiceConfig.defaultMaglevSize { m.append(("maglev_size", .int(s.maglevSize))) }
        if let clamp = s.mssClamp { m.append(("mss_clamp", .int(clamp))) }
        if !s.sourcePool.isEmpty { m.append(("source_pool", .array(s.sourcePool.map { .string($0.description) }))) }
        m.append(("backends", .array(s.backends.map(backend))))
        return .object(m)
    }

    public static func backend(_ b: BackendConfig) -> JSONValue {
        var m: [(String, JSONValue)] = [("address", .string(b.address.description)), ("port", .int(b.port)),
                                        ("weight", .int(b.weight))]
        if let vtep = b.vtep { m.append(("vtep", .string(vtep.description))) }
        if let vni = b.vni { m.append(("vni", .int(vni))) }
        if let mac = b.innerMAC { m.append(("inner_mac", .string(mac.description))) }
        return .object(m)
    }

    public static func vip(_ v: VIPConfig) -> JSONValue {
        var m: [(String, JSONValue)] = [("address", .string(v.address.description)), ("port", .string(v.port))]
        if let mac = v.mac { m.append(("mac", .string(mac.description))) }
        return .object(m)
    }

    /// `{generation, vips, services}`.
    public static func state(_ s: DesiredState) -> JSONValue {
        var m: [(String, JSONValue)] = []
        if let g = s.generation { m.append(("generation", .int(g))) }
        m.append(("vips", .array(s.vips.map(vip))))
        m.append(("services", .array(s.services.map(service))))
        return .object(m)
    }
}

extension ServiceConfig {
    /// `maglevSize`'s default (the paper's 65537, a prime).
    public static let defaultMaglevSize = 65537
}
