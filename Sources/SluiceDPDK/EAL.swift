import CDPDK

/// The DPDK Environment Abstraction Layer: initialised once per process, before any port,
/// mempool or lcore is touched, and cleaned up once at exit.
public enum EAL {
    /// Runs rte_eal_init with `arguments` (the first is the program name, as in `argv`).
    ///
    /// The C strings are duplicated and deliberately never freed: the EAL may keep pointers
    /// into `argv` for the life of the process (DPDK's own examples pass `main`'s argv).
    /// Returns how many arguments the EAL consumed.
    @discardableResult
    public static func initialize(arguments: [String]) throws(DPDKError) -> Int {
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        for (i, argument) in arguments.enumerated() { argv[i] = strdup(argument) }
        argv[arguments.count] = nil
        let consumed = sl_eal_init(Int32(arguments.count), argv)
        guard consumed >= 0 else {
            throw DPDKError(subject: "EAL", operation: "rte_eal_init(\(arguments.dropFirst().joined(separator: " ")))",
                            code: consumed)
        }
        return Int(consumed)
    }

    /// rte_eal_cleanup: releases hugepage files and the runtime directory. Call once, last.
    public static func cleanup() {
        _ = sl_eal_cleanup()
    }

    /// Timestamp counter ticks per second, as the EAL calibrated them.
    public static var tscHz: UInt64 { sl_tsc_hz() }

    /// Whole seconds of the timestamp counter: the clock of the flow table's deadlines, as the
    /// workers read it (`Worker.pipelineLoop`).
    public static var tscSeconds: UInt32 { UInt32(truncatingIfNeeded: sl_rdtsc() / max(1, sl_tsc_hz())) }

    /// The lcore running `main` (the one that called `initialize`).
    public static var mainLcore: Int { Int(sl_main_lcore()) }

    /// True when `lcore` is one of the lcores given to the EAL (`-l`).
    public static func isEnabled(lcore: Int) -> Bool {
        lcore >= 0 && lcore <= Int(UInt32.max) && sl_lcore_is_enabled(UInt32(lcore))
    }

    /// The NUMA socket `lcore` runs on.
    public static func socket(ofLcore lcore: Int) -> Int32 {
        Int32(bitPattern: sl_lcore_socket(UInt32(lcore)))
    }
}

#if canImport(Glibc)
import Glibc
#endif
