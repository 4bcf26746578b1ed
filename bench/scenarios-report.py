#!/usr/bin/python3
"""Aggregates bench/scenarios.sh's runs into scenarios.json, scenarios.md and PNG plots.

Reads $WORK/runs/NAME.rROUND.{pktgen.json,lb.log,lb.log.memory}, conntrack.log, maglev.md and
the environment variables bench/scenarios.sh exports. Medians over rounds. Standard library
plus matplotlib (Debian's python3-matplotlib). Exits 1 when a scenario has no result or a flow
moved to another backend (Maglev + conntrack must keep every flow on its first backend).
"""
import glob
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

env = os.environ
work = env["WORK"]
out_dir = env["RESULTS_DIR"]
scenarios = env["SCENARIOS"].split()

DESCRIPTIONS = {
    "ceiling": ("dpdk-testpmd io", "1k established flows, max rate"),
    "ceiling-latency": ("dpdk-testpmd io", f"1k flows at {int(env['LAT_RATE']):,} pps"),
    "dnat-1k": ("sluiced dnat", "1k established flows"),
    "dnat-1k-latency": ("sluiced dnat", f"1k flows at {int(env['LAT_RATE']):,} pps"),
    "dnat-1k-latency-drain10": ("sluiced dnat", f"1k flows at {int(env['LAT_RATE']):,} pps, tx_drain_us 10"),
    "dnat-100k": ("sluiced dnat", "100k established flows"),
    "dnat-1m": ("sluiced dnat", "1M established flows"),
    "dnat-1m-zipf": ("sluiced dnat", "1M flows, Zipf(0.99) popularity"),
    "dnat-10m": ("sluiced dnat", "10M established flows"),
    "syn-1m": ("sluiced dnat", "new flows only: 1M SYNs, each a new flow"),
    "handshake-1m": ("sluiced dnat", "whole TCP connections over 1M client ends, as fast as they complete"),
    "handshake-1m-latency": ("sluiced dnat", f"whole TCP connections at {int(env.get('HS_RATE', '100000')):,}/s"),
    "vxlan-100k": ("sluiced vxlan", "100k established flows, DNAT + VXLAN"),
    "fullnat-100k": ("sluiced fullnat", "100k established flows, source from a 2-address pool"),
    "udp-1k": ("sluiced dnat", "1k UDP flows to a UDP service"),
    "ipv6-1k": ("sluiced dnat", "1k established IPv6 flows, 84-byte frames"),
}
CEILING = "ceiling"


def sluiced_counters(log):
    counters, mhz = {}, None
    for line in open(log, errors="replace"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "counter":
            counters[parts[1]] = int(parts[2])
        m = re.search(r", tsc (\d+) MHz$", line.strip())
        if m:
            mhz = int(m.group(1))
    return counters, mhz


def testpmd_figures(log):
    text = open(log, errors="replace").read()
    m = re.search(r"CPU cycles/packet=([\d.]+) \(total cycles=(\d+) / total io packets=(\d+)\) at (\d+) MHz", text)
    if not m:
        return None
    return {"cycles_per_packet": float(m.group(1)), "busy_cycles": int(m.group(2)), "packets": int(m.group(3)),
            "tsc_mhz": int(m.group(4))}


def memory(log):
    try:
        values = dict(line.split(":", 1) for line in open(log + ".memory"))
        return {k: int(v.split()[0]) * 1024 for k, v in values.items()}
    except OSError:
        return {}


def schedstat(log):
    try:
        run, wait = (int(x) for x in open(log + ".schedstat").read().split()[:2])
        return run, wait
    except (OSError, ValueError):
        return None


def window(log):
    """PACKETS RUN_NS WAIT_NS WALL_NS FIRST LAST [BUSY_CYCLES TOTAL_CYCLES] from
    bench/telemetry-window.py, or None."""
    try:
        fields = [int(float(x)) for x in open(log + ".window").read().split()]
        return fields if len(fields) in (6, 8) and fields[0] > 0 and fields[1] > 0 else None
    except (OSError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


results = []
problems = []
for name in scenarios:
    if name in ("update-storm", "conntrack", "maglev"):
        continue
    handshake = name.startswith("handshake")
    rounds = []
    for path in sorted(glob.glob(f"{work}/runs/{name}.r*.pktgen.json")):
        report = json.load(open(path))
        log = path.replace(".pktgen.json", ".lb.log")
        rnd = {"pktgen": report}
        if name.startswith("ceiling"):
            rnd["testpmd"] = testpmd_figures(log)
            figures = rnd["testpmd"] or {}
            rnd["cycles_per_packet"] = figures.get("cycles_per_packet")
            rnd["tsc_mhz"] = figures.get("tsc_mhz")
            rnd["busy_share"] = None
        else:
            counters, mhz = sluiced_counters(log)
            rnd["sluiced_counters"] = {k: v for k, v in counters.items() if v}
            rx = counters.get("rx_packets", 0)
            rnd["cycles_per_packet"] = counters["busy_cycles"] / rx if rx else None
            rnd["busy_share"] = counters["busy_cycles"] / counters["total_cycles"] if counters.get("total_cycles") else None
            rnd["tsc_mhz"] = mhz
            rnd["drops"] = sum(v for k, v in counters.items() if k.startswith("drop_"))
        rnd["memory"] = memory(log)
        packets = (rnd["testpmd"] or {}).get("packets") if name.startswith("ceiling") else rnd["sluiced_counters"].get("rx_packets")
        ss = schedstat(log)
        rnd["cpu_share"] = rnd["oncpu_cycles_per_packet"] = rnd["busy_oncpu_cycles_per_packet"] = None
        if ss and ss[0] > 0 and packets and rnd["tsc_mhz"]:
            rnd["cpu_share"] = ss[0] / (ss[0] + ss[1])
            rnd["oncpu_cycles_per_packet"] = ss[0] * rnd["tsc_mhz"] / 1000 / packets
            if rnd["busy_share"] is None and rnd.get("testpmd"):
                # testpmd's busy TSC cycles over the TSC cycles its thread existed (run + wait:
                # a polling thread is always running or runnable).
                rnd["busy_share"] = min(1.0, rnd["testpmd"]["busy_cycles"] / ((ss[0] + ss[1]) * rnd["tsc_mhz"] / 1000))
            if rnd["busy_share"] is not None:
                # Preemption falls on busy and idle polls alike, so the busy share of TSC time is
                # also the busy share of on-CPU time: on-CPU busy cycles per packet.
                rnd["busy_oncpu_cycles_per_packet"] = rnd["oncpu_cycles_per_packet"] * rnd["busy_share"]
        w = window(log)
        rnd["window"] = None
        if w and rnd["tsc_mhz"]:
            rnd["window"] = {"packets": w[0], "run_ns": w[1], "wait_ns": w[2], "wall_ns": w[3],
                             "oncpu_cycles_per_packet": w[1] * rnd["tsc_mhz"] / 1000 / w[0],
                             "oncpu_mpps": w[0] * 1000 / w[1], "cpu_share": w[1] / (w[1] + w[2]),
                             "wall_mpps": w[0] * 1000 / w[3],
                             # sluiced's worker: busy cycles / loop cycles within the window itself
                             "busy_share": (w[6] / w[7]) if len(w) == 8 and w[7] > 0 else None}
        rounds.append(rnd)
        if report["flows"]["moved_flows"]:
            problems.append(f"{name}: {report['flows']['moved_flows']} flows moved backend")
    if not rounds:
        problems.append(f"{name}: no result")
        continue
    last = rounds[-1]["pktgen"]
    cycles = median([r["cycles_per_packet"] for r in rounds])
    busy_oncpu = median([r["busy_oncpu_cycles_per_packet"] for r in rounds])
    mhz = median([r["tsc_mhz"] for r in rounds])
    entry = {
        "name": name,
        "program": DESCRIPTIONS[name][0],
        "what": DESCRIPTIONS[name][1],
        "flows": last["plan"]["flows"],
        "traffic": last["plan"]["traffic"],
        "frame_bytes": last["plan"]["sizes"],
        "rate_pps": last["plan"]["rate_pps"],
        "rounds": len(rounds),
        "delivered_mpps": median([r["pktgen"]["measured"]["rx_mpps"] for r in rounds]),
        "offered_mpps": median([r["pktgen"]["measured"]["tx_mpps"] for r in rounds]),
        "cycles_per_packet": cycles,
        "busy_oncpu_cycles_per_packet": busy_oncpu,
        "window_cycles_per_packet": median([(r["window"] or {}).get("oncpu_cycles_per_packet") for r in rounds]),
        "window_oncpu_mpps": median([(r["window"] or {}).get("oncpu_mpps") for r in rounds]),
        "window_wall_mpps": median([(r["window"] or {}).get("wall_mpps") for r in rounds]),
        "capacity_mpps": (mhz / busy_oncpu) if busy_oncpu and mhz else None,
        "busy_share": median([r.get("busy_share") for r in rounds]),
        "cpu_share": median([r.get("cpu_share") for r in rounds]),
        "oncpu_cycles_per_packet": median([r.get("oncpu_cycles_per_packet") for r in rounds]),
        "latency_ns": {k: median([r["pktgen"]["latency"][k] for r in rounds]) for k in ("p50_ns", "p99_ns", "p999_ns", "max_ns")},
        "sent": sum(r["pktgen"]["measured"]["sent"] for r in rounds),
        "lost": sum(r["pktgen"]["measured"]["lost"] for r in rounds),
        "flows_back": last["flows"]["seen"],
        "moved_flows": max(r["pktgen"]["flows"]["moved_flows"] for r in rounds),
        "backends": last["flows"]["backends"],
        "peak_rss_bytes": max((r["memory"].get("VmHWM", 0) for r in rounds), default=0),
        "every_round_mpps": [r["pktgen"]["measured"]["rx_mpps"] for r in rounds],
        "raw_rounds": rounds,
    }
    entry["loss_ratio"] = entry["lost"] / entry["sent"] if entry["sent"] else 0
    if handshake:
        # Port 0's ipackets (the window's packets) are three of each connection's five segments.
        conns = [r["pktgen"]["connections"] for r in rounds]
        window_cycles = entry["window_cycles_per_packet"]
        entry["connections"] = {
            "completed_per_s": median([c["completed_per_s"] for c in conns]),
            "balancer_segments_mpps": median([c["balancer_mpps"] for c in conns]),
            "opened": sum(c["opened"] for c in conns),
            "completed": sum(c["completed"] for c in conns),
            "failed": sum(c["failed"] for c in conns),
            "unexpected": sum(c["unexpected"] for c in conns),
            "steady_oncpu_cycles_per_connection": 3 * window_cycles if window_cycles else None,
            "steady_oncpu_cycles_per_segment": 3 * window_cycles / 5 if window_cycles else None,
            "one_core_connections_per_s": (mhz * 1e6 / (3 * window_cycles)) if window_cycles and mhz else None,
        }
        busy = median([(r["window"] or {}).get("busy_share") for r in rounds])
        c = entry["connections"]
        c["window_busy_share"] = busy
        # Below 100 % busy the window's cycles include idle polls: × the window's busy share
        # leaves the work (busy polls also include the poll that found packets' own overhead).
        c["busy_oncpu_cycles_per_connection"] = c["steady_oncpu_cycles_per_connection"] * busy if window_cycles and busy else None
        c["busy_one_core_connections_per_s"] = (mhz * 1e6 / c["busy_oncpu_cycles_per_connection"]
                                                if c["busy_oncpu_cycles_per_connection"] and mhz else None)
    results.append(entry)

def best_cycles(r):
    """The lowest steady on-CPU cycles/packet over the rounds (None without a window)."""
    cycles = [(x["window"] or {}).get("oncpu_cycles_per_packet") for x in r["raw_rounds"]]
    cycles = [c for c in cycles if c]
    return min(cycles) if cycles else None


by_name = {r["name"]: r for r in results}
ceiling = by_name.get(CEILING)
for r in results:
    if ceiling and r["name"] != CEILING and not r["name"].startswith("ceiling") and not r["rate_pps"] and "connections" not in r:
        r["ratio_to_ceiling"] = r["delivered_mpps"] / ceiling["delivered_mpps"] if ceiling["delivered_mpps"] else None
        # Best round against best round: this VM flips between two speed modes (the slow one
        # ~1.6× the cycles) independently of what runs, so medians can pair a slow ceiling with
        # a fast row; the fastest round of each is each program's own cost.
        ceiling_best = best_cycles(ceiling)
        row_best = best_cycles(r)
        r["cycles_ratio_to_ceiling"] = ceiling_best / row_best if ceiling_best and row_best else None
    else:
        r["ratio_to_ceiling"] = None
        r["cycles_ratio_to_ceiling"] = None

conntrack = []
if "conntrack" in scenarios:
    for line in open(f"{work}/runs/conntrack.log"):
        m = re.match(r"(\d+) flows: (\d+) slots, (\d+) bytes per table, ([\d.]+) bytes/flow at ([\d.]+) % load", line)
        if m:
            conntrack.append({"flows": int(m.group(1)), "slots": int(m.group(2)), "table_bytes": int(m.group(3)),
                              "bytes_per_entry": float(m.group(4)), "load_percent": float(m.group(5)),
                              # sluiced keeps a forward and a reverse entry per connection
                              "bytes_per_connection": 2 * float(m.group(4))})
maglev = []
if "maglev" in scenarios:
    section = False
    for line in open(f"{work}/runs/maglev.md"):
        if line.startswith("## 3."):
            section = True
        elif line.startswith("## "):
            section = False
        elif section and re.match(r"\| \d", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            maglev.append({"backends": int(cells[0]), "table_size": int(cells[1]), "cpu_median": cells[2],
                           "cpu_min": cells[3], "wall_median": cells[4]})

environment = {k.lower(): env.get(k) for k in ("CPU", "MHZ", "DPDK_VERSION", "SWIFT_VERSION", "COMMIT", "DIRTY", "COMMAND",
                                                "SETTINGS", "ELAPSED", "LOAD_BEFORE", "LOAD_AFTER")}
environment["vcpus"] = os.cpu_count()
others = []
try:
    others = [int(line.split()[2]) for line in open(f"{work}/runs/others")]
except OSError:
    pass
environment["other_dpdk_processes_max"] = max(others, default=0)
environment["other_dpdk_processes_runs"] = sum(1 for n in others if n > 0)
shares = [r["cpu_share"] for r in results if r.get("cpu_share") is not None]
environment["balancer_cpu_share_median"] = median(shares)
storm = None
baseline = None
try:
    base_pg = json.load(open(f"{work}/runs/update-storm-baseline.pktgen.json"))
    baseline = {"delivered_mpps": base_pg["measured"]["rx_mpps"], "sent": base_pg["measured"]["sent"],
                "lost": base_pg["measured"]["lost"], "flows": base_pg["flows"]["flows"],
                "moved_flows": base_pg["flows"]["moved_flows"],
                "rate_series_mpps": [[round(i["t_s"], 3), round(i["rx_mpps"], 4)] for i in base_pg.get("intervals", [])]}
except (OSError, KeyError, ValueError):
    pass
try:
    storm_pg = json.load(open(f"{work}/runs/update-storm.pktgen.json"))
    storm_updates = json.load(open(f"{work}/runs/update-storm.updates.json"))
    # pktgen's 50 ms samples: seconds since its first measured send, delivered Mpps in the interval
    rates = [(i["t_s"], i["rx_mpps"]) for i in storm_pg.get("intervals", [])]
    storm = {"updates": storm_updates, "delivered_mpps": storm_pg["measured"]["rx_mpps"],
             "measured_start_unix": storm_pg.get("measured_start_unix"),
             "sent": storm_pg["measured"].get("sent"), "lost": storm_pg["measured"]["lost"],
             "flows": storm_pg["flows"]["flows"], "moved_flows": storm_pg["flows"]["moved_flows"],
             "rate_series_mpps": [[round(t, 3), round(r, 4)] for t, r in rates]}
except (OSError, KeyError, ValueError):
    pass
document = {"environment": environment, "scenarios": results, "conntrack": conntrack, "maglev_build": maglev,
            "update_storm": storm if storm else {"status": "not run"},
            "update_storm_baseline": baseline if baseline else {"status": "not run"}}
slim = json.loads(json.dumps(document))
for r in slim["scenarios"]:
    for rnd in r["raw_rounds"]:   # keep the committed file small: no CDF or interval series per round
        rnd["pktgen"]["latency"].pop("cdf", None)
        rnd["pktgen"].pop("intervals", None)
with open(f"{out_dir}/scenarios.json", "w") as f:
    json.dump(slim, f, indent=1, sort_keys=True)

# ---- plots ----------------------------------------------------------------------------------------
fig, ax = plt.subplots(figsize=(7, 4.2))
series = [r for r in results if r["name"] in ("dnat-1k", "dnat-100k", "dnat-1m", "dnat-10m")]
if series:
    xs = [r["flows"] for r in series]
    ax.plot(xs, [r["delivered_mpps"] for r in series], "o-", label="sluiced dnat: delivered Mpps")
    ax.plot(xs, [r["window_oncpu_mpps"] or 0 for r in series], "s--", label="sluiced dnat: one-core Mpps (steady window, on-CPU, median)")
    mhz_of = lambda r: r["raw_rounds"][-1].get("tsc_mhz") or 0
    ax.plot(xs, [(mhz_of(r) / best_cycles(r)) if best_cycles(r) else 0 for r in series], "^:",
            label="sluiced dnat: one-core Mpps, best round")
    for r in series:
        ax.annotate(f"{r['delivered_mpps']:.2f}", (r["flows"], r["delivered_mpps"]), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
if ceiling:
    ax.axhline(ceiling["delivered_mpps"], color="gray", linestyle=":", label=f"testpmd io, same link: delivered {ceiling['delivered_mpps']:.2f} Mpps")
    if ceiling["window_oncpu_mpps"]:
        ax.axhline(ceiling["window_oncpu_mpps"], color="gray", linestyle="-.",
                   label=f"testpmd io, same link: one-core {ceiling['window_oncpu_mpps']:.2f} Mpps (steady, on-CPU, median)")
    if best_cycles(ceiling):
        best = ceiling["raw_rounds"][-1]["tsc_mhz"] / best_cycles(ceiling)
        ax.axhline(best, color="black", linestyle="--", lw=0.8, label=f"testpmd io, same link: one-core {best:.2f} Mpps, best round")
ax.set_xscale("log")
ax.set_xlabel("established flows (64-byte TCP)")
ax.set_ylabel("Mpps, one worker core")
ax.set_ylim(bottom=0)
ax.set_title("sluiced over memif: throughput vs flows")
ax.legend(fontsize=8)
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(f"{out_dir}/scenarios-throughput.png", dpi=110)

fig, ax = plt.subplots(figsize=(7, 4.2))
for r in results:
    if r["name"] not in ("ceiling-latency", "dnat-1k-latency", "dnat-1k-latency-drain10", "dnat-1k", "ceiling"):
        continue
    cdf = r["raw_rounds"][-1]["pktgen"]["latency"]["cdf"]
    if cdf:
        label = f"{r['program']}, {r['what']}"
        ax.plot([p[0] / 1000 for p in cdf], [p[1] for p in cdf], label=label)
ax.set_xscale("log")
ax.set_xlabel("latency, µs (pktgen TSC stamp → back at pktgen)")
ax.set_ylabel("percentile")
ax.set_title("latency CDF over memif (last round)")
ax.legend(fontsize=8)
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(f"{out_dir}/scenarios-latency-cdf.png", dpi=110)
if storm and storm["rate_series_mpps"]:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if baseline and baseline["rate_series_mpps"]:
        ax.plot([t for t, _ in baseline["rate_series_mpps"]], [r for _, r in baseline["rate_series_mpps"]], lw=3,
                color="lightgray", label=f"baseline, no changes: lost {baseline['lost']} of {baseline['sent']:,}")
    ax.plot([t for t, _ in storm["rate_series_mpps"]], [r for _, r in storm["rate_series_mpps"]], lw=1,
            label=f"with the changes: lost {storm['lost']} of {storm['sent']:,}")
    u0 = storm["updates"]
    if storm.get("measured_start_unix") and u0.get("start_unix"):
        # Both wall clocks: the client's first request and pktgen's first measured packet.
        first = u0["start_unix"] - storm["measured_start_unix"]
        ax.axvspan(first, first + u0["seconds"], color="orange", alpha=0.15, label="backend changes")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_xlabel("seconds since pktgen's first measured packet (50 ms intervals)")
    ax.set_ylabel("delivered Mpps")
    u = storm["updates"]
    ax.set_title(f"update storm: {u['updates']} backend changes at {u['achieved_rate']:.0f}/s over {u['seconds']:.1f} s, "
                 "next to a baseline run without changes", fontsize=8)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(f"{out_dir}/scenarios-update-storm.png", dpi=110)

# ---- markdown -------------------------------------------------------------------------------------
def fmt(v, d=2):
    return "—" if v is None else f"{v:.{d}f}"


def us(ns):
    return "—" if ns is None else f"{ns / 1000:.1f}"


def pct(x):
    return "—" if x is None else f"{100 * x:.0f}%"


rows = []
for r in results:
    if "connections" in r:
        continue
    lat = r["latency_ns"]
    busy = "—" if r["busy_share"] is None else f"{100 * r['busy_share']:.0f}%"
    # At a fixed rate below capacity the window is mostly idle polling: no per-core figure.
    steady = (None, None) if r["rate_pps"] else (r["window_cycles_per_packet"], r["window_oncpu_mpps"])
    share = "—" if r["cpu_share"] is None else f"{100 * r['cpu_share']:.0f}%"
    rows.append(f"| {r['name']} | {r['program']} | {r['what']} | **{fmt(r['delivered_mpps'], 3)}** | "
                f"{busy} | {share} | **{fmt(steady[0], 0)}** | **{fmt(steady[1], 2)}** | "
                f"{fmt(r['busy_oncpu_cycles_per_packet'], 0)} | "
                f"{fmt(r['ratio_to_ceiling'])} | {fmt(r['cycles_ratio_to_ceiling'])} | {us(lat['p50_ns'])} | {us(lat['p99_ns'])} | {us(lat['p999_ns'])} | "
                f"{r['lost']} ({100 * r['loss_ratio']:.3f}%) | {r['flows_back']}/{r['flows']}, {r['moved_flows']} moved | "
                f"{r['peak_rss_bytes'] / 2**20:.0f} |")
round_rows = ["| %s | %s | %s | %s |" % (
    r["name"] + (" (M connections/s)" if "connections" in r else ""), " / ".join(f"{x:.3f}" for x in r["every_round_mpps"]),
    " / ".join(fmt((x["window"] or {}).get("oncpu_cycles_per_packet"), 0) for x in r["raw_rounds"]),
    " / ".join(pct(x["cpu_share"]) for x in r["raw_rounds"])) for r in results]
ct_rows = [f"| {c['flows']:,} | {c['slots']:,} | {c['table_bytes'] / 2**20:.0f} MiB | {c['bytes_per_entry']:.1f} | "
           f"{c['bytes_per_connection']:.1f} | {c['load_percent']:.0f}% |" for c in conntrack]
mg_rows = [f"| {m['backends']} | {m['table_size']} | {m['cpu_median']} | {m['cpu_min']} | {m['wall_median']} |" for m in maglev]
head = {r["name"]: r for r in results}


def best_round(r, per=1, unit="Mpps"):
    """' (best round: C cycles = R unit per core)' when the rounds differ: this VM runs in two
    speed modes (the slow one ~1.6× the cycles), so the best round is the code's cost, the median
    what a run here will likely see. `per`: cycles per unit of work / cycles per window packet."""
    cycles = [(x["window"] or {}).get("oncpu_cycles_per_packet") for x in r["raw_rounds"]]
    cycles = [c * per for c in cycles if c]
    mhz = r["raw_rounds"][-1].get("tsc_mhz")
    if len(cycles) < 2 or not mhz:
        return ""
    low = min(cycles)
    return f" (best round: {low:.0f} cycles = {mhz / low:.2f} {unit} per core)"


def headline(name, label):
    r = head.get(name)
    if not r:
        return ""
    ratio = ""
    if r.get("ratio_to_ceiling"):
        ratio = (f"; {r['ratio_to_ceiling']:.2f}× testpmd's delivered rate (medians), testpmd's cycles ÷ these "
                 f"{fmt(r['cycles_ratio_to_ceiling'])} (best rounds)")
    lat = r["latency_ns"]
    best = best_round(r)
    return (f"- {label}: **{r['delivered_mpps']:.2f} Mpps** delivered through the harness; sluiced's worker "
            f"{fmt(r['window_cycles_per_packet'], 0)} on-CPU cycles/packet in the steady window = **{fmt(r['window_oncpu_mpps'])} Mpps "
            f"per core**{best}{ratio}; latency p50/p99/p99.9 {us(lat['p50_ns'])}/{us(lat['p99_ns'])}/{us(lat['p999_ns'])} µs "
            f"(at max rate: queueing); loss {100 * r['loss_ratio']:.3f}%\n")


contention = ""
if environment["balancer_cpu_share_median"] is not None and environment["balancer_cpu_share_median"] < 0.8:
    contention = (f"**This run was contended**: the balancer's forwarding thread got a median "
                  f"{100 * environment['balancer_cpu_share_median']:.0f} % of its CPU; "
                  f"{environment['other_dpdk_processes_runs']} of {len(others)} runs started while other DPDK processes "
                  f"were polling (at most {environment['other_dpdk_processes_max']}). Delivered rates and latency tails "
                  "reflect that, and a neighbour on the balancer's core also evicts its caches, so cycles per packet rise "
                  "too: compare the rounds (their CPU share is listed below).\n\n")

hs_line = ""
if head.get("handshake-1m", {}).get("connections"):
    r = head["handshake-1m"]
    c = r["connections"]
    lat_r = head.get("handshake-1m-latency")
    hs_line = (f"- Whole TCP connections (five segments each), 1M client ends: **{c['completed_per_s'] / 1e6:.3f} M connections/s** "
               f"completed through the harness ({c['balancer_segments_mpps']:.2f} Mpps of segments through sluiced); sluiced's worker "
               f"{fmt(c['steady_oncpu_cycles_per_connection'], 0)} on-CPU cycles per connection in the steady window = "
               f"**{fmt(c['one_core_connections_per_s'] / 1e6 if c['one_core_connections_per_s'] else None)} M connections/s per core**"
               f"{best_round(r, per=3, unit='M connections/s')}; "
               f"{c['failed']} failed"
               + (f"; connect time at {int(env.get('HS_RATE', '100000')):,}/s p50/p99/p99.9 "
                  f"{us(lat_r['latency_ns']['p50_ns'])}/{us(lat_r['latency_ns']['p99_ns'])}/{us(lat_r['latency_ns']['p999_ns'])} µs"
                  if lat_r else "") + "\n")
lat_line = ""
if "dnat-1k-latency" in head and "ceiling-latency" in head:
    a, b, c = head["ceiling-latency"]["latency_ns"], head["dnat-1k-latency"]["latency_ns"], head.get("dnat-1k-latency-drain10", {}).get("latency_ns")
    lat_line = (f"- Latency at {int(env['LAT_RATE']):,} pps, 1k flows (p50 / p99 / p99.9 µs): testpmd io {us(a['p50_ns'])} / "
                f"{us(a['p99_ns'])} / {us(a['p999_ns'])}; sluiced {us(b['p50_ns'])} / {us(b['p99_ns'])} / {us(b['p999_ns'])}"
                + (f"; sluiced with `tx_drain_us: 10` {us(c['p50_ns'])} / {us(c['p99_ns'])} / {us(c['p999_ns'])}" if c else "")
                + ". Below one full burst per drain interval, sluiced holds forwarded packets until its TX drain timer "
                "(`workers.tx_drain_us`, default 100 µs) fires.\n")

handshake_md = ""
hs_rows = []
for r in results:
    c = r.get("connections")
    if not c:
        continue
    lat = r["latency_ns"]
    steady = r["rate_pps"] == 0
    hs_rows.append(f"| {r['name']} | {r['what']} | **{c['completed_per_s'] / 1e6:.3f}** | {fmt(c['balancer_segments_mpps'], 2)} | "
                   f"{pct(c['window_busy_share'])} | {pct(r['cpu_share'])} | "
                   f"**{fmt(c['steady_oncpu_cycles_per_connection'] if steady else None, 0)}** | "
                   f"{fmt(c['steady_oncpu_cycles_per_segment'] if steady else None, 0)} | "
                   f"**{fmt(c['one_core_connections_per_s'] / 1e6 if steady and c['one_core_connections_per_s'] else None, 2)}** | "
                   f"{fmt(c['busy_oncpu_cycles_per_connection'] if steady else None, 0)} | "
                   f"{fmt(c['busy_one_core_connections_per_s'] / 1e6 if steady and c['busy_one_core_connections_per_s'] else None, 2)} | "
                   f"{us(lat['p50_ns'])} | {us(lat['p99_ns'])} | {us(lat['p999_ns'])} | "
                   f"{c['completed']:,} of {c['opened']:,}, {c['failed']} failed, {c['unexpected']} unexpected | {r['moved_flows']} |")
if hs_rows:
    handshake_md = f"""
## Whole TCP connections (`--traffic handshake`)

sluice-pktgen opens connections to the VIP from 1M client ends (203.0.113.0/24, ports from 1024)
and answers as the backends: SYN → SYN-ACK → ACK with an 18-byte GET and FIN → FIN-ACK → last ACK,
five segments per connection, each through sluiced once (three from clients: DNAT to the backend;
two from backends: back to the VIP). A connection counts when its last ACK reaches its backend;
every segment of it must reach the same backend. The connect time is SYN sent → SYN-ACK received
at the client (through the balancer both ways, plus pktgen's own turn-around), from the echoed
TCP timestamp. pktgen answers before it opens new connections, so at max rate the open rate is
what the loop sustains. Each connection is a new flow in sluiced (a forward and a reverse entry)
unless its client end was used before in the run (a closed entry reused).

| scenario | traffic | M connections/s completed | Mpps of segments through sluiced | busy (window) | CPU share | steady on-CPU cycles/connection | per segment | one-core M connections/s (steady) | × busy share: cycles/connection | one-core M connections/s (busy) | connect p50 µs | p99 µs | p99.9 µs | connections | moved |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|
{chr(10).join(hs_rows)}

Steady on-CPU cycles come from the same window as the table above (port 0 receives three of the
five segments, so cycles per connection = 3 × cycles per port-0 packet). They include idle polls:
when **busy (window)** — sluiced's worker's busy cycles over its loop cycles within that same
window — is below 100 %, sluice-pktgen (which does more per connection than sluiced: it builds
every segment, both ends) was the limit, and the steady figure is an upper bound; × that busy
share takes the idle polls out. At a fixed rate the window is mostly idle polling, so only the max-rate
row has a per-core figure.
"""

md = f"""# Scenarios: sluiced driven by sluice-pktgen over memif

Measured by `{env['COMMAND'].strip()}` ({env['SETTINGS']}) on {env.get('DATE', '?')}
at commit `{env['COMMIT']}`{env['DIRTY']}; {env['ELAPSED']} s in all.
CPU: {env['CPU']}, {os.cpu_count()} vCPUs at {env['MHZ']} MHz (virtual machine, no hardware performance counters);
DPDK {env['DPDK_VERSION']} (Debian); {env['SWIFT_VERSION']}. Load average before / after:
{env['LOAD_BEFORE']} / {env['LOAD_AFTER']} (the machine is shared with other work; the CPU share column shows
what the balancer got).

{contention}**Both programs share this 2-vCPU machine**: the balancer (sluiced with one worker, or testpmd
with one forwarding core) polls on CPU 1, sluice-pktgen generates and receives on CPU 0. Every
packet crosses two memif links (a copy into and out of shared memory on each side), so the
"delivered" rate is bounded by the link and by pktgen as much as by the balancer; the
busy-cycles figures isolate the balancer's own cost.

{headline('dnat-1m', 'Established flows, 1M')}{headline('syn-1m', 'New flows (SYN only), 1M')}{hs_line}{headline('dnat-1k', 'Established flows, 1k')}{lat_line}
| scenario | program | traffic | Mpps delivered | busy | CPU share | steady on-CPU cycles/packet | one-core Mpps (steady) | busy on-CPU cycles/packet, whole run | delivered ÷ ceiling | ceiling cycles ÷ these (best rounds) | p50 µs | p99 µs | p99.9 µs | lost | flows back, moved | peak RSS MiB |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|
{chr(10).join(rows)}

- **Mpps delivered**: packets that came back to sluice-pktgen per second of its sending window
  (median of {env['ROUNDS']} round(s)), at the highest rate the link took (pktgen retries a full
  ring; it never counts a packet the port refused) or at the fixed rate named.
- **busy**: the share of the forwarding loop's TSC time spent in polls that received packets
  (sluiced's `busy_cycles / total_cycles`; testpmd's `--record-core-cycles` busy cycles over the
  TSC time its thread existed). Below 100 % the balancer waited for packets: pktgen or the link
  was the limit, not the balancer.
- **CPU share**: the forwarding thread's run time / (run + time runnable but waiting for its
  CPU), from `/proc/PID/task/TID/schedstat`. Below 100 % other processes (pktgen's neighbours,
  builds) took its CPU.
- **steady on-CPU cycles/packet** (the per-core figure): over a window after the warm-up pass
  (established rows: from flows + 100k packets, MEASURE − 1 s; syn-1m: packets 5 %..95 % of its
  single pass), bench/telemetry-window.py samples port 0's `ipackets` through the balancer's DPDK
  telemetry socket with its forwarding thread's run time (`/proc/PID/task/TID/schedstat`), as
  bench/lb-fastpath.sh does: run time × TSC Hz / packets. Idle polls are included, so it is exact
  only when **busy** is near 100 % (the balancer is the bottleneck) and an upper bound otherwise.
  **one-core Mpps (steady)** = packets / run time in that window.
- **busy on-CPU cycles/packet, whole run**: on-CPU cycles/packet over the balancer's whole life ×
  busy share: idle polling and preemption taken out, but the warm-up pass (each flow's first,
  flow-creating packet) included: at 10M flows that pass is half the packets.
- **delivered ÷ ceiling**: delivered Mpps over testpmd io's delivered Mpps on the same link in the
  same run (medians); **ceiling cycles ÷ these (best rounds)**: testpmd's steady on-CPU
  cycles/packet over this row's, each in its fastest round (the per-core ratio: 0.5 means sluiced
  does its load balancing in twice testpmd's io forwarding cost, memif copies included in both).
  Best rounds because this VM switches between two speed modes (the slow one costs ~1.6× the
  cycles, whatever runs): a median can pair a slow testpmd round with a fast sluiced one.
- **Latency**: sluice-pktgen writes the low 48 bits of its TSC into each packet and records
  arrival − stamp in an HDR histogram (hdrhistogram-swift, 3 significant digits). At max rate it
  is dominated by the memif rings' queueing (4096 slots each way); the `-latency` rows send at
  {int(env['LAT_RATE']):,} pps, below every capacity, so they show the path itself.
- **lost**: sent − received after the drain (sluiced's drops are its `drop_*` counters, in
  `scenarios.json`); **flows back, moved**: flows that came back at least once, and flows that
  ever reached a backend other than their first (must be 0).
- **peak RSS**: the balancer's VmHWM (flow table, mempool, code).

Every round (medians above):

| scenario | Mpps delivered | steady on-CPU cycles/packet | CPU share |
|---|---|---|---|
{chr(10).join(round_rows)}

Plots: `scenarios-throughput.png` (throughput vs flows), `scenarios-latency-cdf.png` (latency
CDF), `scenarios-update-storm.png` (delivered rate over time during the update storm, below).

{handshake_md}
## Conntrack memory (sluice-conntrack-bench)

| flows | slots | table | bytes/entry | bytes/connection (forward + reverse entry) | load |
|---:|---:|---:|---:|---:|---:|
{chr(10).join(ct_rows)}

## Maglev table build time (sluice-maglev-report --quick)

| backends N | table size M | CPU median | CPU min | wall median |
|---:|---:|---:|---:|---:|
{chr(10).join(mg_rows)}

## Commands

```sh
{env['COMMAND'].strip()}     # everything above
# one run by hand (the balancer is the memif server, pktgen the client):
sluiced --config C.yaml -- {env['EAL_LB_TEXT']} -m 768 --file-prefix lb
sluice-pktgen --tx-port net_memif0,role=client,socket=c.sock,{env['MEMIF_OPTS']} \\
  --rx-port net_memif1,role=client,socket=b.sock,{env['MEMIF_OPTS']} \\
  --target 192.0.2.10:80 --dst-mac 02:00:00:00:5e:10 --flows 1000000 --traffic established --warmup --duration {env['MEASURE']} \\
  --json r.json --wait-peer-close-ms 10000 -- {env['EAL_PG_TEXT']} --file-prefix pg
dpdk-testpmd {env['EAL_LB_TEXT']} -m 1024 --vdev net_memif0,role=server,socket=c.sock,{env['MEMIF_OPTS']} \\
  --vdev net_memif1,role=server,socket=b.sock,{env['MEMIF_OPTS']} -- --forward-mode=io --nb-cores=1 --auto-start \\
  --stats-period 1 --total-num-mbufs=16384 --record-core-cycles
```

The sluiced configuration (`C.yaml`; `mode: vxlan` with `vtep`/`vni`/`inner_mac` backends for vxlan-100k,
IPv6 backends for ipv6-1k) is written by `lb_config` in bench/scenarios.sh.
"""
if storm:
    u = storm["updates"]
    base_line = "No baseline run (run update-storm to get one)."
    if baseline:
        base_line = (f"**Baseline**, the same traffic with no changes, just before: {baseline['delivered_mpps']:.3f} Mpps delivered, "
                     f"**{baseline['lost']} lost of {baseline['sent']:,}** ({100 * baseline['lost'] / max(1, baseline['sent']):.4f} %), "
                     f"{baseline['moved_flows']} of {baseline['flows']} flows moved. **With the changes**: {storm['lost']} lost of "
                     f"{storm['sent']:,} ({100 * storm['lost'] / max(1, storm['sent']):.4f} %).")
    md += f"""
## Update storm (round 1)

sluiced (dnat, 1k established flows, control socket) while sluice-pktgen sends at a fixed rate
and a client on the socket changes backend 2's weight 1 <-> 2 (a new Maglev table and an RCU
publication each time): **{u['updates']} changes at {u['achieved_rate']:.0f}/s** over {u['seconds']:.1f} s
(errors {u['errors']}); request -> response p50 {u['latency_ms']['p50']:.2f} ms, p99 {u['latency_ms']['p99']:.2f} ms
(the response is sent once every worker passed a quiescent state, so it bounds the time to effect).
pktgen: {storm['delivered_mpps']:.3f} Mpps delivered, **{storm['lost']} lost**, **{storm['moved_flows']} of
{storm['flows']} flows moved** backend. The rate over time is `scenarios-update-storm.png`.

{base_line}
On this 2-vCPU machine pktgen busy-polls the CPU that the control thread and the client share,
so the change rate is lower here than in bench/control-storm.sh (an in-process source).
"""
with open(f"{out_dir}/scenarios.md", "w") as f:
    f.write(md)
print(f"-> {out_dir}/scenarios.json, {out_dir}/scenarios.md, {out_dir}/scenarios-throughput.png, {out_dir}/scenarios-latency-cdf.png")
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
