#!/usr/bin/env python3
"""Steady-state churn simulation of the flow table's probing schemes (docs/conntrack.md).

Fills a table of 7-slot buckets to a target occupancy, then replaces random flows with new ones
(remove + insert) for `churn` × population operations, and reports, in header lines (buckets)
touched: per hit, per miss, per insert, and the share of inserts refused. Schemes:

  f14     linear probing, per-bucket pass-through overflow counters (folly F14): a miss probes on
          while the bucket's counter is non-zero. The first design; degrades under churn.
  2choice two random buckets, the less loaded one takes the key; every miss reads both.
  sluice  double hashing (step from the tag), per-home-bucket counters by tag nibble (12 × 4 bits)
          and the largest displacement: a miss leaves the home bucket only when its nibble's
          counter is non-zero. What SluiceConntrack implements.

    python3 tools/conntrack/probe_sim.py            # about a minute
"""
import random

S, NIB, MAXD = 7, 12, 15


def simulate(scheme, load, buckets=20000, churn=4, seed=7):
    rnd = random.Random(seed)
    occ = [0] * buckets
    passed = [0] * buckets                           # f14
    cnt = [[0] * NIB for _ in range(buckets)]        # sluice
    mx = [0] * buckets
    where = {}
    touched = [0, 0]

    def seq(h, step, d):
        return (h + d * step) % buckets

    def insert(k):
        h, tag = rnd.randrange(buckets), rnd.randrange(4096)
        if scheme == "2choice":
            b2 = rnd.randrange(buckets)
            c = h if occ[h] <= occ[b2] else b2
            if occ[c] >= S:
                return False
            occ[c] += 1
            where[k] = (h, tag, 0, c)
            touched[0] += 2; touched[1] += 1
            return True
        step = 1 + (((tag * 2531) & 0xFFF) * (buckets - 1) >> 12) if scheme == "sluice" else 1
        nib = tag * 12 >> 12
        if scheme == "sluice":
            dup = 1 if cnt[h][nib] == 0 else 1 + mx[h]
        else:
            dup, d = 1, 0
            while passed[seq(h, 1, d)] > 0 and d < MAXD:
                d += 1; dup += 1
        for d in range(MAXD + 1):
            b = seq(h, step, d)
            if occ[b] < S:
                occ[b] += 1
                if d > 0:
                    if scheme == "sluice":
                        cnt[h][nib] = min(15, cnt[h][nib] + 1) if cnt[h][nib] < 15 else 15
                        mx[h] = max(mx[h], d)
                    else:
                        for x in range(d):
                            passed[seq(h, 1, x)] += 1
                where[k] = (h, tag, d, b)
                touched[0] += max(dup, d + 1); touched[1] += 1
                return True
        return False

    def remove(k):
        h, tag, d, b = where.pop(k)
        occ[b] -= 1
        if d == 0 or scheme == "2choice":
            return
        if scheme == "sluice":
            nib = tag * 12 >> 12
            if cnt[h][nib] < 15:
                cnt[h][nib] -= 1
            if not any(cnt[h]):
                mx[h] = 0
        else:
            for x in range(d):
                passed[seq(h, 1, x)] -= 1

    population = int(load * S * buckets)
    keys = [k for k in range(population) if insert(k)]
    touched[:] = [0, 0]
    refused = tries = 0
    nxt = population
    for _ in range(churn * population):
        j = rnd.randrange(len(keys))
        remove(keys[j])
        tries += 1
        if insert(nxt):
            keys[j] = nxt
        else:
            refused += 1
            keys[j] = keys[-1]
            keys.pop()
        nxt += 1

    if scheme == "2choice":
        hit = 1 + sum(1 for v in where.values() if v[3] != v[0]) / len(where)
        miss = 2.0
    else:
        hit = sum(v[2] + 1 for v in where.values()) / len(where)
        lines = 0
        for _ in range(20000):
            h, nib = rnd.randrange(buckets), rnd.randrange(NIB)
            if scheme == "sluice":
                lines += 1 if cnt[h][nib] == 0 else 1 + mx[h]
            else:
                d = 0
                while passed[seq(h, 1, d)] > 0 and d < MAXD:
                    d += 1
                lines += d + 1
        miss = lines / 20000
    return hit, miss, touched[0] / max(touched[1], 1), 100.0 * refused / tries


if __name__ == "__main__":
    print(f"{'scheme':8} {'load':>5} {'hit':>6} {'miss':>6} {'insert':>7} {'refused %':>10}")
    for scheme in ("f14", "2choice", "sluice"):
        for load in (0.6, 0.7, 0.8, 0.875):
            hit, miss, ins, ref = simulate(scheme, load)
            print(f"{scheme:8} {load:5.3f} {hit:6.2f} {miss:6.2f} {ins:7.2f} {ref:10.3f}")
