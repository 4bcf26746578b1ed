// Conntrack micro-benchmark: being written (see docs/conntrack.md).
print("sluice-conntrack-bench: not yet implemented")
