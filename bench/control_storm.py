#!/usr/bin/env python3
"""Backend-update storm over the control socket, for bench/control-storm.sh.

Phases: BASELINE s quiet, then STORM s of backend.update requests paced at RATE/s (weights
toggled so every request is a real change: a new snapshot built and published through RCU),
then AFTER s quiet. One connection sends the updates one at a time and times each
request → response (the response leaves after publish returned, i.e. after every worker
passed a quiescent state); a second connection samples `stats` every second for the workers'
rx_packets. Prints one JSON object with the figures.

With the sluiced PID it also samples the worker thread's (rte-worker-1) run and wait time
(/proc/PID/task/TID/schedstat): a shared machine may take the core away from the worker, and
forwarded packets per on-CPU second separate that from the cost of the updates themselves.

With BATCH > 1 (environment) the updates go BATCH to a JSON-RPC batch, each to another
backend address (ADDRESS's last octet counting down): one transaction, one publication per
batch; the latency is then per batch.

usage: control_storm.py SOCKET SERVICE ADDRESS RATE BASELINE STORM AFTER [SLUICED_PID]
"""
import os
import glob
import json
import socket
import sys
import time

SOCK, SERVICE, ADDRESS = sys.argv[1:4]
RATE, BASELINE, STORM, AFTER = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
PID = sys.argv[8] if len(sys.argv) > 8 else None
BATCH = int(os.environ.get("BATCH", "1"))


def schedstat():
    """(run ns, runnable-but-waiting ns) of the worker thread, or (0, 0)."""
    for task in glob.glob("/proc/%s/task/*" % PID) if PID else []:
        try:
            if open(task + "/comm").read().strip() == "rte-worker-1":
                run, wait = open(task + "/schedstat").read().split()[:2]
                return int(run), int(wait)
        except OSError:
            pass
    return 0, 0


class Conn:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(SOCK)
        self.buf = b""
        self.n = 0

    def call(self, method, params=None):
        self.n += 1
        return self.send({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params or {}})

    def batch(self, calls):
        reqs = []
        for method, params in calls:
            self.n += 1
            reqs.append({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params})
        return self.send(reqs)

    def send(self, req):
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        m = json.loads(line)
        for r in m if isinstance(m, list) else [m]:
            if "error" in r:
                raise RuntimeError(r["error"])
        return m if isinstance(m, list) else m["result"]


def rx(c):
    """(rx packets, forwarded to backends, dropped for any reason, snapshots published)."""
    s = c.call("stats")
    t = s["total"]
    run, wait = schedstat()
    return (t["rx_packets"], t.get("forward_to_backend", 0), sum(t["drops"].values()), s["dataplane_generation"],
            run, wait)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else None


def main():
    ctl, mon = Conn(), Conn()
    samples = []  # (phase, t, (rx, forwarded, dropped, generation))

    def sample(phase):
        samples.append((phase, time.monotonic(), rx(mon)))

    def quiet(phase, seconds):
        end = time.monotonic() + seconds
        sample(phase)
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            sample(phase)

    quiet("baseline", BASELINE)
    gen_before = rx(mon)[3]
    latencies = []
    interval = BATCH / RATE
    prefix, last = ADDRESS.rsplit(".", 1)
    addresses = ["%s.%d" % (prefix, int(last) - i) for i in range(BATCH)]
    start = time.monotonic()
    end = start + STORM
    next_send = start
    next_sample = start + 1.0
    sample("storm")
    weight = 1
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_sample:
            sample("storm")
            next_sample += 1.0
        if now < next_send:
            time.sleep(min(next_send - now, 0.0005))
            continue
        weight = 2 if weight == 1 else 1
        t0 = time.monotonic()
        if BATCH == 1:
            ctl.call("backend.update", {"service": SERVICE, "address": ADDRESS, "weight": weight})
        else:
            ctl.batch([("backend.update", {"service": SERVICE, "address": a, "weight": weight}) for a in addresses])
        latencies.append(time.monotonic() - t0)
        next_send += interval
        if next_send < time.monotonic() - 1.0:
            next_send = time.monotonic()  # fell behind by over a second: do not burst to catch up
    sample("storm")
    storm_seconds = time.monotonic() - start
    gen_after = rx(mon)[3]
    quiet("after", AFTER)

    def rate(phase, k):
        pts = [(t, r[k]) for p, t, r in samples if p == phase]
        if len(pts) < 2:
            return 0
        return round((pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]))

    def delta(phase, k):
        pts = [r[k] for p, t, r in samples if p == phase]
        return pts[-1] - pts[0] if len(pts) > 1 else 0

    ms = [x * 1000 for x in latencies]
    print(json.dumps({
        "target_rate": RATE,
        "batch": BATCH,
        "updates": len(latencies) * BATCH,
        "achieved_rate": round(len(latencies) * BATCH / storm_seconds, 1),
        "snapshots_published": gen_after - gen_before,
        "latency_ms": {"p50": round(pct(ms, 50), 3), "p99": round(pct(ms, 99), 3), "max": round(max(ms), 3)},
        "rx_pps": {p: rate(p, 0) for p in ("baseline", "storm", "after")},
        "forwarded_pps": {p: rate(p, 1) for p in ("baseline", "storm", "after")},
        "dropped": {p: delta(p, 2) for p in ("baseline", "storm", "after")},
        "worker_cpu_share_pct": {p: round(100 * delta(p, 4) / max(1, delta(p, 4) + delta(p, 5)), 1)
                                 for p in ("baseline", "storm", "after")},
        "forwarded_per_oncpu_s": {p: round(delta(p, 1) / max(1e-9, delta(p, 4) / 1e9))
                                  for p in ("baseline", "storm", "after")},
    }))


main()
