import CDPDK
import SluiceMetrics

#if canImport(Glibc)
import Glibc
#endif

/// Sluice's commands on the EAL's telemetry socket (`dpdk-telemetry.py -f FILE-PREFIX`), beside
/// DPDK's own (`/ethdev/stats,N` for the ports). Each request runs on DPDK's telemetry thread:
/// it takes a sample (relaxed loads of the workers' counters, no lock a worker ever takes) and
/// copies `TelemetryCommands.reply` into the `rte_tel_data` DPDK sends back as JSON.
public enum Telemetry {
    /// What the commands read. Kept for the life of the process: DPDK 22.11 cannot unregister a
    /// command, and its thread may call one until exit.
    final class Source: Sendable {
        let sample: @Sendable () -> MetricsSample?
        init(_ sample: @escaping @Sendable () -> MetricsSample?) { self.sample = sample }
    }

    /// Registers every command of `TelemetryCommands.help` on `sample`; nil answers fail the
    /// request (the daemon is shutting down). Call once, on the main lcore, after `EAL.initialize`.
    /// Returns one message per command that could not be registered.
    public static func register(sample: @escaping @Sendable () -> MetricsSample?) -> [String] {
        let context = Unmanaged.passRetained(Source(sample)).toOpaque()   // never released (see Source)
        var failures: [String] = []
        for (command, help) in TelemetryCommands.help {
            let ret = sl_telemetry_register(command, help, Telemetry.handler, context)
            if ret != 0 { failures.append("telemetry: \(command): \(String(cString: sl_strerror(ret)))") }
        }
        return failures
    }

    private static let handler: sl_telemetry_handler = { context, command, params, data in
        guard let context, let command, let data else { return -EINVAL }
        // Safe: `context` is the Source retained in `register`, never released.
        let source = Unmanaged<Source>.fromOpaque(context).takeUnretainedValue()
        guard let sample = source.sample() else { return -EAGAIN }
        let reply = TelemetryCommands.reply(String(cString: command), parameter: params.map { String(cString: $0) },
                                            sample: sample)
        return write(reply, into: data)
    }

    /// Copies `reply` into `d`; 0 or the first negative errno value DPDK returned.
    static func write(_ reply: TelemetryReply, into d: OpaquePointer) -> Int32 {
        switch reply {
        case .invalidParameter:
            return -EINVAL
        case .u64Array(let values):
            return first(sl_tel_start_u64_array(d), values.prefix(TelemetryReply.maxArrayEntries).map { sl_tel_add_array_u64(d, $0) })
        case .stringArray(let values):
            return first(sl_tel_start_string_array(d),
                         values.prefix(TelemetryReply.maxArrayEntries).map { sl_tel_add_array_string(d, $0) })
        case .dict(let entries):
            var results = [sl_tel_start_dict(d)]
            for (name, value) in entries.prefix(TelemetryReply.maxDictEntries) {
                switch value {
                case .u64(let v): results.append(sl_tel_add_dict_u64(d, name, v))
                case .string(let s): results.append(sl_tel_add_dict_string(d, name, s))
                case .u64Array(let v): results += nest(.u64Array(v), under: name, in: d)
                case .stringArray(let v): results += nest(.stringArray(v), under: name, in: d)
                }
            }
            return first(results[0], results.dropFirst())
        }
    }

    /// An array in a container of its own under `name` (the library frees the container).
    private static func nest(_ array: TelemetryReply, under name: String, in d: OpaquePointer) -> [Int32] {
        guard let child = sl_tel_alloc() else { return [-ENOMEM] }
        return [write(array, into: child), sl_tel_add_dict_array(d, name, child)]
    }

    private static func first(_ start: Int32, _ rest: some Sequence<Int32>) -> Int32 {
        if start != 0 { return start }
        return rest.first { $0 != 0 } ?? 0
    }
}
