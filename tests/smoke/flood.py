#!/usr/bin/python3
"""SYN and ACK floods of 50 times the flow table's capacity against established flows, replayed.

   flood.py SLUICE_REPLAY

500 TCP flows to a nat VIP open one a millisecond beforehand with a real three-way handshake
(client SYN on port 0; the backend's SYN-ACK on port 1, from the backend's MAC and address to
the client; the client's ACK acknowledging the SYN-ACK's seq + 1), so they are established under
the "evidence before state" rules. Then, for 2 s of virtual time, each sends a data packet every
20 ms while a flood arrives at 100,000 packets per second into a 4096-flow table:

  syn  200,000 SYNs from distinct spoofed sources, with --new-flow-rate 20000 (FLOOD_RATE);
  ack  200,000 pure ACKs from distinct random spoofed sources in 192.0.2.0/24 (no rate limit:
       every one of them is a new unconfirmed flow competing for the table).

Checked for each flood, with 1 and 2 workers:
  - every packet of every established flow reaches the backend Maglev gave it (100%), and no
    established flow ever misses the table (non_syn_miss counts only flood ACKs), i.e. none was
    evicted: a miss would still reach the same backend through Maglev, so delivery alone would
    not show it;
  - the 500 SYN-ACKs come back to the clients rewritten as nat replies of known flows;
  - every table stays within its capacity and flows were evicted (the flood filled it);
  - nothing is dropped: flood packets are forwarded, with state or (nat) without;
  - syn: the excess over the rate limit is forwarded statelessly (stateless_forwarded > 0), and
    the stateful new flows admitted per worker (maglev_picks minus that worker's established
    flows) stay within 10% of the limit;
  - ack: evictions are those of unconfirmed flows (the only evictable flows there), reported.
The backend each flow gets is learnt first by replaying the 500 SYNs alone (Maglev is not keyed,
so every run agrees), since the SYN-ACKs must come from it.
Frames are built with struct (scapy is too slow for 300k packets); IPv4 header checksums are
real, TCP checksums are left 0 (Sluice patches them incrementally, it does not verify them).
Addresses: clients 192.0.2.0/24, backends 198.51.100.0/24, VIP 203.0.113.10."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pcapfile import read_pcap, write_pcap  # noqa: E402

REPLAY = sys.argv[1]
CAPACITY, RATE = 4096, int(os.environ.get("FLOOD_RATE", "20000"))
EST, FLOOD, SECONDS = 500, 200_000, 2.0
PORT0_MAC = bytes.fromhex("020000000001")
PORT1_MAC = bytes.fromhex("020000000002")
CLIENT_MAC = bytes.fromhex("02000000c101")
VIP, VIP_PORT = bytes([203, 0, 113, 10]), 80
BACKENDS = {bytes([198, 51, 100, b]): bytes.fromhex(f"020000 00b1{b}".replace(" ", "")) for b in range(11, 15)}
BACKEND_PORT = 8080
CLIENT_ISN, SERVER_ISN_BASE = 1000, 0x5EED0000
SYN, ACK, PSH_ACK, SYN_ACK = 0x02, 0x10, 0x18, 0x12
T0 = 1_000_000              # 1 s: the handshakes, one a millisecond (well under the rate)
FLOOD_START = T0 + EST * 1000 + 10_000


def ip_csum(h):
    s = sum(struct.unpack("!10H", h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(dst_mac, src_mac, src, dst, sport, dport, flags, seq, ack):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst))
    struct.pack_into("!H", ip, 10, ip_csum(bytes(ip)))
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + tcp


def client_frame(src, sport, flags, seq=CLIENT_ISN, ack=0):
    return frame(PORT0_MAC, CLIENT_MAC, src, VIP, sport, VIP_PORT, flags, seq, ack)


def est_src(i):
    return bytes([192, 0, 2, 10 + i % 200])


def est_port(i):
    return 20000 + i


def server_isn(i):
    return (SERVER_ISN_BASE + i * 7919) & 0xFFFFFFFF


EST_KEYS = {(est_src(i), est_port(i)): i for i in range(EST)}


def key_of(f):
    """(client address, client port) of a client packet forwarded to a backend."""
    return f[26:30], struct.unpack("!H", f[34:36])[0]


def write_inputs(work, name, inputs):
    """{port: packets} -> {port: capture path}."""
    paths = {}
    for port, pkts in inputs.items():
        paths[port] = os.path.join(work, f"{name}-in{port}.pcap")
        write_pcap(paths[port], pkts)
    return paths


def replay(work, name, paths, workers, rate):
    """Runs sluice-replay on {port: capture}; returns (stats, port-1 output, port-0 output)."""
    out0, out1 = os.path.join(work, f"{name}-w{workers}-out0.pcap"), os.path.join(work, f"{name}-w{workers}-out1.pcap")
    stats = os.path.join(work, f"{name}-w{workers}-stats.json")
    cmd = [REPLAY, "--out", f"0={out0}", "--out", f"1={out1}", "--workers", str(workers), "--stats-json", stats,
           "--vip", "web,203.0.113.10:80/tcp,nat", "--control-socket", "none", "--flow-capacity", str(CAPACITY)]
    for port in sorted(paths):
        cmd += ["--in", f"{port}={paths[port]}"]
    if rate:
        cmd += ["--new-flow-rate", str(rate)]
    for addr, mac in BACKENDS.items():
        a = ".".join(map(str, addr))
        cmd += ["--backend", f"web,{a}:{BACKEND_PORT}", "--neighbor", f"{a},{mac.hex(':')}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"flood: sluice-replay failed ({name}, {workers} worker(s)):\n{r.stdout}\n{r.stderr}")
    with open(stats) as f:
        st = json.load(f)
    return st, read_pcap(out1), read_pcap(out0)


def learn_backends(work):
    """Each established flow's backend (and, with 2 workers, how many flows each worker owns)."""
    syns = [(T0 + i * 1000, client_frame(est_src(i), est_port(i), SYN)) for i in range(EST)]
    st, out1, _ = replay(work, "learn", write_inputs(work, "learn", {0: syns}), 2, 0)
    backend = {}
    for _, f in out1:
        backend[key_of(f)] = f[30:34]
    if set(backend) != set(EST_KEYS) or any(b not in BACKENDS for b in backend.values()):
        sys.exit(f"flood: learning run: {len(backend)} of {EST} SYNs reached a backend")
    owned = [w["maglev_picks"] for w in st["workers"]]
    if sum(owned) != EST:
        sys.exit(f"flood: learning run: {sum(owned)} Maglev picks for {EST} SYNs")
    return backend, {1: [EST], 2: owned}


def build_inputs(kind, backend):
    """(client-side packets, backend-side packets) for one flood."""
    client, server = [], []
    for i in range(EST):
        t, src, sport = T0 + i * 1000, est_src(i), est_port(i)
        be = backend[(src, sport)]
        client.append((t, client_frame(src, sport, SYN)))
        server.append((t + 300, frame(PORT1_MAC, BACKENDS[be], be, src, BACKEND_PORT, sport, SYN_ACK,
                                      server_isn(i), CLIENT_ISN + 1)))
        client.append((t + 600, client_frame(src, sport, ACK, CLIENT_ISN + 1, server_isn(i) + 1)))
    step = int(SECONDS * 1e6 / FLOOD)
    if kind == "syn":
        for k in range(FLOOD):
            # Distinct 4-tuples within 192.0.2.0/24: vary the last octet and the client port
            # (ports 1024..1824, clear of the established flows' 20000..20499).
            src = bytes([192, 0, 2, 1 + (k % 250)])
            client.append((FLOOD_START + k * step, client_frame(src, 1024 + (k // 250) % 60000, SYN)))
    else:
        rnd = random.Random(20240607)
        picks = rnd.sample(range(254 * 64512), FLOOD + EST)
        n = 0
        for p in picks:
            src, sport = bytes([192, 0, 2, 1 + p // 64512]), 1024 + p % 64512
            if (src, sport) in EST_KEYS:
                continue
            client.append((FLOOD_START + n * step,
                           client_frame(src, sport, ACK, rnd.getrandbits(32), rnd.getrandbits(32))))
            n += 1
            if n == FLOOD:
                break
    period = 20_000
    for t in range(FLOOD_START, FLOOD_START + int(SECONDS * 1e6), period):
        for i in range(EST):
            seq = CLIENT_ISN + 1 + (t - FLOOD_START) // period
            client.append((t + i, client_frame(est_src(i), est_port(i), PSH_ACK, seq, server_isn(i) + 1)))
    client.sort(key=lambda p: p[0])
    return client, server


def check_run(kind, workers, st, out1, out0, backend, owned, sent_data):
    failures = []
    label = f"{kind} flood, {workers} worker(s)"
    # Established flows: every packet to the backend Maglev chose; every data packet delivered.
    got, moved, flood_out = {}, 0, 0
    flood_flags = SYN if kind == "syn" else ACK
    for _, f in out1:
        if len(f) < 54:
            continue
        key = key_of(f)
        i = EST_KEYS.get(key)
        if i is None:
            if f[47] == flood_flags and f[30:34] in BACKENDS and f[36:38] == struct.pack("!H", BACKEND_PORT):
                flood_out += 1
            continue
        if f[30:34] != backend[key] or f[0:6] != BACKENDS[backend[key]] or f[36:38] != struct.pack("!H", BACKEND_PORT):
            moved += 1
        if f[47] == PSH_ACK:
            got[key] = got.get(key, 0) + 1
    delivered, total = sum(got.values()), sum(sent_data.values())
    # The SYN-ACKs, back to the clients as nat replies.
    synacks = 0
    for _, f in out0:
        if len(f) >= 54 and f[47] == SYN_ACK and f[0:6] == CLIENT_MAC and f[6:12] == PORT0_MAC and \
                f[26:30] == VIP and struct.unpack("!HH", f[34:38])[0] == VIP_PORT and \
                (f[30:34], struct.unpack("!H", f[36:38])[0]) in EST_KEYS:
            synacks += 1
    tot = st["total"]
    tables = [w["flows_v4"] for w in st["workers"]]
    evicted = sum(t["evictions"] for t in tables)
    summary = (f"flood: {label}: established packets delivered {delivered}/{total} "
               f"({100.0 * delivered / total:.2f}%), moved {moved}, SYN-ACKs replied {synacks}/{EST}, "
               f"non-SYN misses {tot['non_syn_miss']}; flood packets forwarded {flood_out}/{FLOOD}, "
               f"stateless {tot['stateless_forwarded']}; new flows with state "
               f"{tot['maglev_picks'] - EST}")
    if kind == "syn":
        admitted = [w["maglev_picks"] - o for w, o in zip(st["workers"], owned)]
        rates = [a / SECONDS for a in admitted]
        summary += f" ({', '.join(f'{r:.0f}' for r in rates)}/s per worker, limit {RATE})"
    summary += (f"; evicted {evicted}{' (unconfirmed)' if kind == 'ack' else ''}, expired "
                f"{sum(t['expiries'] for t in tables)}, insert failures {sum(t['insert_failures'] for t in tables)}"
                f", table sizes {[t['size'] for t in tables]} of {CAPACITY}; dropped {tot['dropped']}")
    print(summary, flush=True)

    if delivered != total or moved:
        failures.append(f"{label}: established traffic lost or moved ({delivered}/{total}, moved {moved})")
    if synacks != EST or tot["replies"] != EST or tot["stateless_replies"]:
        failures.append(f"{label}: {synacks} SYN-ACKs rewritten to the clients, replies {tot['replies']}, "
                        f"stateless replies {tot['stateless_replies']} (expected {EST}, {EST}, 0)")
    expected_misses = 0 if kind == "syn" else FLOOD
    if tot["non_syn_miss"] != expected_misses:
        failures.append(f"{label}: {tot['non_syn_miss']} non-SYN misses, expected {expected_misses}: "
                        f"established flows lost their state")
    if any(t["size"] > t["capacity"] for t in tables):
        failures.append(f"{label}: table over capacity")
    if not evicted:
        failures.append(f"{label}: the flood never filled the table")
    if tot["dropped"] or flood_out != FLOOD:
        failures.append(f"{label}: flood packets dropped (forwarded {flood_out}/{FLOOD}, drops {tot['drops']})")
    if kind == "syn":
        if not tot["stateless_forwarded"]:
            failures.append(f"{label}: nothing forwarded without state over the rate limit")
        offered = FLOOD / SECONDS / workers
        for w, r in enumerate(rates):
            if r > RATE * 1.1 or (offered > RATE * 1.5 and r < RATE * 0.9):
                failures.append(f"{label}: worker {w} admitted {r:.0f} new flows/s with state (limit {RATE})")
    return failures


def main():
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="sluice-flood.")
    backend, owned = learn_backends(work)
    failures = []
    for kind in ("syn", "ack"):
        client, server = build_inputs(kind, backend)
        sent_data = {}
        for _, f in client:
            if f[47] == PSH_ACK:
                sent_data[key_of(f)] = sent_data.get(key_of(f), 0) + 1
        paths = write_inputs(work, kind, {0: client, 1: server})
        del client, server
        for workers in (1, 2):
            st, out1, out0 = replay(work, kind, paths, workers, RATE if kind == "syn" else 0)
            failures += check_run(kind, workers, st, out1, out0, backend, owned[workers], sent_data)
    elapsed = time.monotonic() - started
    if failures:
        print(f"flood: FAIL ({elapsed:.1f} s; captures kept in {work})\n  " + "\n  ".join(failures))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"flood: PASS ({elapsed:.1f} s)")
    return 0


sys.exit(main())
