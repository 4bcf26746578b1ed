#if canImport(Glibc)
import Glibc
#endif

/// Diagnostics for operators, on standard error, one line per call. A single write(2) per
/// line: no stdio buffer shared between threads, so lines from workers never interleave.
/// Never called per packet.
public enum Log {
    @inline(never)
    public static func error(_ message: String) {
        var line = "sluiced: " + message + "\n"
        line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
    }
}
