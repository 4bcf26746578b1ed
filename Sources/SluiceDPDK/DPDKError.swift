import CDPDK

/// A DPDK setup call that failed: which object, which call, and DPDK's own text for the error
/// (rte_strerror, which also knows DPDK's private codes). Setup never traps; it throws this.
public struct DPDKError: Error, CustomStringConvertible, Sendable {
    /// What was being set up: `EAL`, `port uplink (net_null0)`, `mempool sluiced_mbufs`.
    public var subject: String
    /// The DPDK call (or check) that failed.
    public var operation: String
    /// The negative errno value DPDK returned (0 for a failed check of our own).
    public var code: Int32
    /// rte_strerror's text, captured at once: its buffer for unknown codes is per thread.
    public var reason: String

    public init(subject: String, operation: String, code: Int32) {
        self.subject = subject
        self.operation = operation
        self.code = code
        self.reason = String(cString: sl_strerror(code))
    }

    public init(subject: String, operation: String, reason: String) {
        self.subject = subject
        self.operation = operation
        self.code = 0
        self.reason = reason
    }

    public var description: String { "\(subject): \(operation): \(reason)" }
}

extension String {
    /// A string from a fixed-size C `char` array imported as a tuple (NUL-terminated inside it).
    init<T>(cArray tuple: T) {
        self = withUnsafeBytes(of: tuple) { bytes in
            let chars = bytes.prefix { $0 != 0 }
            return String(decoding: chars, as: UTF8.self)
        }
    }
}
