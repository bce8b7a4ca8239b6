#!/usr/bin/python3
"""check_corpus.py: replays the malformed-packet corpus through sluice-replay and checks every kind.

    check_corpus.py SLUICE_REPLAY SCRIPT_DIR [--workers 1,2] [--jobs 2] [--keep DIR] [--kind KIND ...]

For each worker count, gen_malformed.py (in SCRIPT_DIR) writes the corpus into a temporary
directory; then every kind is replayed on its own (a fresh process, so its counters are its own)
with --stats-json and --out captures, and passes when
  - sluice-replay exits 0 (it fails, among others, when an mbuf was not returned to the pool);
  - the drop counters are exactly {expected reason: packets of the kind}: that reason rose by
    the number of packets and no other did (or none at all for forwarded/replied/oversize kinds);
  - `forwarded` and `replies` count the setup packets and, if expected, the packets under test;
    RX-oversize counts the giants;
  - each port sent exactly the packets gen_malformed.py expects, byte for byte (so nothing
    reached the backend port unless the kind is forwarded);
  - independently of that model, every packet out differs from the packet that caused it only
    in MACs, IP addresses, TTL / hop limit, IPv4 header checksum, ports and transport checksum;
    its IPv4 header checksum is right; and its TCP/UDP checksum, recomputed by scapy, is off by
    exactly what the input's was off by (0 for a valid one; IPv4 UDP without checksum stays 0).
Then all kinds are replayed together in one capture: the exit status, the drop counters, and
`forwarded`/`replies` must be the sums of the per-kind runs.

Kinds listed in gen_malformed.KNOWN_FAILURES are reported as KNOWN-FAIL while they fail, and
fail the run once they pass (remove them from the list with the fix). Prints a table
kind -> expected -> observed -> verdict per worker count. Exit status 0 on success, 1 on failure,
77 (skipped) when scapy is missing.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pcapfile import read_pcap, write_pcap  # noqa: E402

try:
    from scapy.all import IP, TCP, UDP, Dot1Q, Ether, IPv6, checksum
    from scapy.layers.inet import in4_chksum
    from scapy.layers.inet6 import in6_chksum
except ImportError:
    print("check_corpus: scapy is not installed (Debian: python3-scapy); skipping")
    sys.exit(77)

OUTCOMES_NOT_DROPS = ("forwarded", "replied", "oversize")


def replay(exe, conf, ins, outs, stats, workers):
    cmd = [exe]
    for p, path in sorted(ins.items()):
        cmd += ["--in", "%d=%s" % (p, path)]
    for p, path in sorted(outs.items()):
        cmd += ["--out", "%d=%s" % (p, path)]
    cmd += ["--workers", str(workers), "--config", conf, "--stats-json", stats]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    oversize = sum(int(x) for x in re.findall(r"RX-oversize:\s*(\d+)", r.stdout))
    counters = None
    if os.path.exists(stats):
        with open(stats) as f:
            counters = json.load(f)["total"]
    return r, counters, oversize, cmd


# ---- the independent check of a packet out against the packet in ------------------------------

def ones_sub(a, b):
    """a - b in one's complement, as 0..0xFFFE (0 and 0xFFFF are both zero)."""
    s = a + (~b & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    return 0 if s == 0xFFFF else s


def layout(fr):
    """Offsets of a frame scapy can dissect: (pkt, l3, ip layer, l4 offset, l4 layer, l4 end)."""
    pkt = Ether(fr)
    l3 = 18 if pkt.haslayer(Dot1Q) else 14
    ip = pkt.getlayer(IP) if pkt.haslayer(IP) else pkt.getlayer(IPv6)
    l4 = pkt.getlayer(TCP) if pkt.haslayer(TCP) else pkt.getlayer(UDP)
    if ip is None or l4 is None:
        return None
    l4_off = len(fr) - len(bytes(l4))
    end = l3 + (ip.len if isinstance(ip, IP) else 40 + ip.plen)
    return pkt, l3, ip, l4_off, l4, end


def l4_error(fr):
    """(stored transport checksum, its error against scapy's recomputation) of a frame."""
    pkt, l3, ip, off, l4, end = layout(fr)
    csum_off = off + (16 if isinstance(l4, TCP) else 6)
    stored = struct.unpack("!H", fr[csum_off:csum_off + 2])[0]
    zeroed = bytearray(fr)
    zeroed[csum_off:csum_off + 2] = b"\0\0"
    z = layout(bytes(zeroed))
    seg = bytes(zeroed[off:end])
    proto = 6 if isinstance(l4, TCP) else 17
    if isinstance(ip, IP):
        correct = in4_chksum(proto, z[2].copy(), seg)
    else:
        correct = in6_chksum(proto, z[4], seg)  # walks the extension headers (routing, home address)
    if proto == 17 and correct == 0:
        correct = 0xFFFF
    return stored, ones_sub(stored, correct)


def check_rewrite(fin, fout):
    """Problems with packet fout as the rewrite of fin (empty when it is one)."""
    errs = []
    if len(fin) == len(fout) + 4 and fin[12:14] == b"\x81\x00" and fout[12:14] != b"\x81\x00":
        fin = fin[:12] + fin[16:]  # the corpus serves no VLAN: a (priority) tag comes off
    if len(fin) != len(fout):
        return ["length %d in, %d out" % (len(fin), len(fout))]
    lin, lout = layout(fin), layout(fout)
    if lin is None or lout is None:
        return ["scapy cannot dissect the packet in or out"]
    _, l3, ip, off, l4, end = lin
    allowed = set(range(12))
    if isinstance(ip, IP):
        allowed |= {l3 + 8} | set(range(l3 + 10, l3 + 20))  # TTL, header checksum, addresses
    else:
        allowed |= {l3 + 7} | set(range(l3 + 8, l3 + 40))  # hop limit, addresses
    allowed |= set(range(off, off + 4)) | set(range(off + (16 if isinstance(l4, TCP) else 6),
                                                    off + (18 if isinstance(l4, TCP) else 8)))
    changed = [i for i in range(len(fin)) if fin[i] != fout[i] and i not in allowed]
    if changed:
        errs.append("bytes that must not change changed at offsets %s" % changed[:8])
    if isinstance(ip, IP):
        ihl = (fout[l3] & 0x0F) * 4
        if checksum(fout[l3:l3 + ihl]) != 0:
            errs.append("IPv4 header checksum out is wrong")
    s_in, e_in = l4_error(fin)
    s_out, e_out = l4_error(fout)
    if isinstance(ip, IP) and isinstance(l4, UDP) and s_in == 0:
        if s_out != 0:
            errs.append("IPv4 UDP without checksum got checksum 0x%04x" % s_out)
    elif e_in != e_out:
        errs.append("transport checksum error 0x%04x in, 0x%04x out (0x%04x -> 0x%04x)" % (e_in, e_out, s_in, s_out))
    return errs


# ---- one kind ----------------------------------------------------------------------------------

def observed_of(counters, oversize, sent):
    parts = ["%s x%d" % (k, v) for k, v in sorted(counters.get("drops", {}).items())]
    if sent[1]:
        parts.append("port1 x%d" % sent[1])
    if sent[0]:
        parts.append("port0 x%d" % sent[0])
    if oversize:
        parts.append("oversize x%d" % oversize)
    return ", ".join(parts) or "nothing"


def compare_outputs(ins, outs, expected):
    """Problems with what each port sent against the expected captures; packets sent per port."""
    errs, sent = [], {}
    inputs = {}
    for path in ins.values():
        for ts, b in read_pcap(path):
            inputs[ts] = b
    for p in sorted(outs):
        got = read_pcap(outs[p]) if os.path.exists(outs[p]) else []
        exp = read_pcap(expected[p])
        sent[p] = len(got)
        if len(got) != len(exp):
            errs.append("port %d sent %d packets, expected %d" % (p, len(got), len(exp)))
        for j, ((ts_g, g), (ts_e, e)) in enumerate(zip(got, exp)):
            if g != e or ts_g != ts_e:
                at = next((k for k in range(min(len(g), len(e))) if g[k] != e[k]), min(len(g), len(e)))
                errs.append("port %d packet %d (ts %d us, expected %d) differs at byte %d (%d bytes, expected %d)\n"
                            "      got      %s\n      expected %s" %
                            (p, j, ts_g, ts_e, at, len(g), len(e), g[max(0, at - 8):at + 24].hex(),
                             e[max(0, at - 8):at + 24].hex()))
                break
        for j, (ts_g, g) in enumerate(got):
            if ts_g not in inputs:
                errs.append("port %d packet %d: no input packet at its timestamp" % (p, j))
                continue
            for e in check_rewrite(inputs[ts_g], g):
                errs.append("port %d packet %d: %s" % (p, j, e))
    return errs, sent


def run_and_check(exe, d, conf, name, ins, expected, workers, drops, forwarded, replies, oversize_n):
    """Replays ins and checks exit status, counters and outputs; {errors, observed, cmd}."""
    outs = {p: os.path.join(d, "out", "%s.out-port%d.pcap" % (name, p)) for p in ins}
    r, c, oversize, cmd = replay(exe, conf, ins, outs, os.path.join(d, "out", "%s.stats.json" % name), workers)
    errs = []
    if r.returncode != 0:
        errs.append("sluice-replay exited %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
    if c is None:
        return {"errors": errs + ["no stats JSON"], "observed": "?", "cmd": cmd}
    if c.get("drops", {}) != drops:
        errs.append("drops %s, expected %s" % (c.get("drops", {}), drops))
    if c["forwarded"] != forwarded or c["replies"] != replies:
        errs.append("forwarded %d replies %d, expected %d and %d" % (c["forwarded"], c["replies"], forwarded, replies))
    if oversize != oversize_n:
        errs.append("RX-oversize %d, expected %d" % (oversize, oversize_n))
    out_errs, sent = compare_outputs(ins, outs, expected)
    return {"errors": errs + out_errs, "observed": observed_of(c, oversize, sent), "cmd": cmd}


def paths(d, files):
    return {int(p): os.path.join(d, f) for p, f in files.items()}


def check_kind(exe, d, conf, kind, workers):
    n, setup, expect = kind["packets"], kind["setup"], kind["expect"]
    res = run_and_check(exe, d, conf, kind["name"], paths(d, kind["in"]), paths(d, kind["expected"]), workers,
                        {} if expect in OUTCOMES_NOT_DROPS else {expect: n},
                        setup + (n if expect == "forwarded" else 0), n if expect == "replied" else 0,
                        n if expect == "oversize" else 0)
    res["kind"] = kind
    return res


def check_together(exe, d, conf, man, workers):
    """All kinds but the known failures in one replay, against their expected outputs and sums."""
    a = man["all"]
    return run_and_check(exe, d, conf, "all", paths(d, a["in"]), paths(d, a["expected"]), workers, a["drops"],
                         a["forwarded"], a["replies"], a["oversize"])


def drop_reasons(script_dir):
    """The names in SLUICE_DROP_REASONS, or None when the header is not where the tree has it."""
    path = os.path.join(script_dir, "..", "..", "lib", "lb", "counters.hpp")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    block = text[text.index("#define SLUICE_DROP_REASONS"):]
    return set(re.findall(r"\bX\((\w+)\)", block[:block.index("enum class Drop")]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sluice_replay")
    ap.add_argument("script_dir")
    ap.add_argument("--kind", dest="kinds", action="append", default=[],
                    help="only this kind (repeatable; default: every kind, then all together)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--jobs", type=int, default=2, help="replays run at a time")
    ap.add_argument("--keep", help="write the corpus and outputs here and keep them")
    a = ap.parse_args()
    exe = os.path.abspath(a.sluice_replay)
    gen = os.path.join(a.script_dir, "gen_malformed.py")
    base = a.keep or tempfile.mkdtemp(prefix="sluice-corpus-")
    failed = 0
    try:
        for workers in [int(x) for x in a.workers.split(",")]:
            d = os.path.join(base, "w%d" % workers)
            os.makedirs(os.path.join(d, "out"), exist_ok=True)
            g = subprocess.run([sys.executable, gen, d, "--workers", str(workers)], capture_output=True, text=True)
            if g.returncode != 0:
                print("check_corpus: %s failed:\n%s%s" % (gen, g.stdout, g.stderr))
                return 1
            with open(os.path.join(d, "manifest.json")) as f:
                man = json.load(f)
            reasons = drop_reasons(a.script_dir)
            for k in man["kinds"]:
                if reasons is not None and k["expect"] not in reasons | set(OUTCOMES_NOT_DROPS) and \
                        not k.get("known_failure"):
                    print("check_corpus: kind %s expects %s, which is not a drop reason in lib/lb/counters.hpp"
                          % (k["name"], k["expect"]))
                    return 1
            kinds = [k for k in man["kinds"] if not a.kinds or k["name"] in a.kinds]
            if a.kinds and len(kinds) != len(set(a.kinds)):
                print("check_corpus: unknown kinds: %s" % sorted(set(a.kinds) - {k["name"] for k in kinds}))
                return 1
            conf = os.path.join(d, man["config"])
            with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
                results = list(pool.map(lambda k: check_kind(exe, d, conf, k, workers), kinds))
            print("\n== %d kinds, --workers %d ==" % (len(kinds), workers))
            print("%-38s %-19s %-32s %s" % ("kind", "expected", "observed", "verdict"))
            counts = {"OK": 0, "FAIL": 0, "KNOWN-FAIL": 0, "FIXED": 0}
            for res in results:
                kind, errs = res["kind"], res["errors"]
                known = kind.get("known_failure")
                verdict = ("KNOWN-FAIL" if errs else "FIXED") if known else ("FAIL" if errs else "OK")
                counts[verdict] += 1
                print("%-38s %-19s %-32s %s" % (kind["name"], kind["expect"], res["observed"], verdict))
                if verdict == "FAIL":
                    print("    %s" % " ".join(res["cmd"]))
                elif verdict == "KNOWN-FAIL":
                    print("    known failure: %s" % known)
                elif verdict == "FIXED":
                    print("    passes now: remove it from KNOWN_FAILURES in gen_malformed.py")
                for e in errs:
                    print("    - " + e)
            failed += counts["FAIL"] + counts["FIXED"]
            if not a.kinds:
                res = check_together(exe, d, conf, man, workers)
                a_ = man["all"]
                print("%-38s %-19s %-32s %s" % ("(%d kinds in one replay)" % a_["kinds"], "all as above",
                                                "%d drops, %d fwd, %d replies" % (sum(a_["drops"].values()),
                                                                                  a_["forwarded"], a_["replies"]),
                                                "FAIL" if res["errors"] else "OK"))
                if res["errors"]:
                    print("    %s" % " ".join(res["cmd"]))
                for e in res["errors"]:
                    print("    - " + e)
                failed += bool(res["errors"])
            print("--workers %d: %s" % (workers, ", ".join("%s %d" % kv for kv in counts.items())))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("check_corpus: %s" % ("FAILED (%d)" % failed if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
