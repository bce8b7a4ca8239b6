#!/usr/bin/python3
"""A live change in the middle of a capture, replayed: snapshot swap under traffic.

   replay_swap.py SLUICE_REPLAY

For each mode (nat and fullnat, IPv4 and IPv6) 300 TCP flows open and exchange data, then a
sluicectl command runs through the control plane (a backend is added, one gets a new weight),
then the same flows go on and 300 new flows open. Checked on the output captures:
  - no packet is dropped (the harness's counters, and one output per input);
  - every established flow keeps its backend across the swap;
  - every new flow goes where the new configuration sends it: the backend a replay that runs
    the new configuration from the start picks for it;
  - the added backend takes new flows, and only new flows.
Uses Debian's scapy (/usr/bin/python3). Addresses are the documentation ranges."""
import json
import os
import subprocess
import sys
import tempfile

from scapy.all import IP, IPv6, TCP, Ether, rdpcap, wrpcap  # noqa: E402

REPLAY = sys.argv[1]
CLIENT_MAC, PORT0_MAC = "02:00:00:00:c1:01", "02:00:00:00:00:01"
FLOWS = 300


def packets(v6, base_port, flows, flags_first):
    """One packet per flow: a SYN (flags_first='S') or an ACK carrying data."""
    out = []
    for i in range(flows):
        src = f"2001:db8:1::{i % 200 + 10:x}" if v6 else f"192.0.2.{i % 200 + 10}"
        dst = "2001:db8:3::10" if v6 else "203.0.113.10"
        ip = IPv6(src=src, dst=dst, hlim=64) if v6 else IP(src=src, dst=dst, ttl=64)
        tcp = TCP(sport=base_port + i, dport=80, flags=flags_first, seq=1000)
        pkt = Ether(src=CLIENT_MAC, dst=PORT0_MAC) / ip / tcp
        if flags_first != "S":
            pkt = pkt / b"data"
        out.append(pkt)
    return out


def config(mode, v6, with_new):
    vip = "[2001:db8:3::10]:80" if v6 else "203.0.113.10:80"
    be = (lambda n: f"[2001:db8:2::{n}]") if v6 else (lambda n: f"198.51.100.{n}")
    lines = [f"vip = web,{vip}/tcp,{mode}"]
    for n, w in ((11, 1), (12, 1 if not with_new else 3), (13, 1)):
        lines.append(f"backend = web,{be(n)}:8080,weight={w}")
    if with_new:
        lines.append(f"backend = web,{be(14)}:8080,weight=2")
    for n in (11, 12, 13, 14):
        lines.append(f"neighbor = {be(n).strip('[]')},02:00:00:00:b1:{n}")
    lines.append("snat = 2001:db8:2::100" if v6 else "snat = 198.51.100.100")
    return "\n".join(lines) + "\n"


def replay(work, name, conf_text, inputs, control=()):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    inp, out, stats = (os.path.join(work, f"{name}-{x}") for x in ("in.pcap", "out.pcap", "stats.json"))
    wrpcap(inp, inputs)
    cmd = [REPLAY, "--in", f"0={inp}", "--out", f"0={out}", "--out", f"1={out}.p1", "--config", conf,
           "--stats-json", stats, "--control-socket", "none"]
    for at, c in control:
        cmd += ["--control-at", f"{at}={c}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.communicate()
    r = subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)
    if r.returncode != 0:
        sys.exit(f"replay_swap: {name}: sluice-replay failed:\n{r.stdout}\n{r.stderr}")
    # The harness's own EAL prefix leaves no runtime directory behind.
    if os.path.exists(f"/run/dpdk/sluice-replay-{p.pid}"):
        sys.exit(f"replay_swap: {name}: /run/dpdk/sluice-replay-{p.pid} left behind")
    with open(stats) as f:
        st = json.load(f)
    return rdpcap(f"{out}.p1"), st, r.stdout


def backend_of(pkt):
    ip = pkt[IPv6] if IPv6 in pkt else pkt[IP]
    return ip.dst


def main():
    failures = []
    work = tempfile.mkdtemp(prefix="sluice-swap.")
    for mode in ("nat", "fullnat"):
        for v6 in (False, True):
            label = f"{mode}{'6' if v6 else '4'}"
            be = (lambda n: f"2001:db8:2::{n}") if v6 else (lambda n: f"198.51.100.{n}")
            old_flows = packets(v6, 20000, FLOWS, "S") + packets(v6, 20000, FLOWS, "A")
            later = packets(v6, 20000, FLOWS, "A") + packets(v6, 30000, FLOWS, "S")
            swap_at = len(old_flows)
            control = [(swap_at, f"add-backend web {'[' + be(14) + ']' if v6 else be(14)}:8080 weight=2"),
                       (swap_at, f"set-weight web {'[' + be(12) + ']' if v6 else be(12)}:8080 3")]
            out, st, log = replay(work, label, config(mode, v6, False), old_flows + later, control)
            if log.count(": ok") != 2:
                failures.append(f"{label}: control commands did not succeed:\n{log}")
            if st["total"]["dropped"] != 0 or len(out) != len(old_flows) + len(later):
                failures.append(f"{label}: {st['totals']['drops']} drops, {len(out)} outputs for "
                                f"{len(old_flows) + len(later)} inputs")
                continue
            # Outputs are in input order (one per input packet).
            before, after = out[:swap_at], out[swap_at:]
            first = {i: backend_of(before[i]) for i in range(FLOWS)}
            moved = [i for i in range(FLOWS) if backend_of(after[i]) != first[i]]
            if moved:
                failures.append(f"{label}: {len(moved)} established flows changed backend across the swap")
            # New flows: as a replay of the new config from the start places them.
            ref, _, _ = replay(work, label + "-ref", config(mode, v6, True), packets(v6, 30000, FLOWS, "S"))
            new = after[FLOWS:]
            wrong = [i for i in range(FLOWS) if backend_of(new[i]) != backend_of(ref[i])]
            if wrong:
                failures.append(f"{label}: {len(wrong)} new flows did not follow the new configuration")
            on_new = sum(1 for p in new if backend_of(p) == be(14))
            old_on_new = sum(1 for i in range(FLOWS) if backend_of(after[i]) == be(14))
            if on_new == 0 or old_on_new:
                failures.append(f"{label}: added backend took {on_new} new and {old_on_new} established flows")
            print(f"replay_swap: {label}: {FLOWS} established flows kept their backend across the swap, "
                  f"{FLOWS} new flows followed the new config ({on_new} on the added backend), 0 drops")
    if failures:
        print("replay_swap: FAIL\n  " + "\n  ".join(failures))
        return 1
    print("replay_swap: PASS")
    return 0


sys.exit(main())
