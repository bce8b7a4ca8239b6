#!/usr/bin/python3
"""A SYN flood of 50 times the flow table's capacity against established flows, replayed.

   flood.py SLUICE_REPLAY

500 established TCP flows to a nat VIP (opened one a millisecond beforehand) send a data packet
every 20 ms of virtual time for 2 s
while 200,000 SYNs from distinct spoofed sources arrive (100,000 per second) at a 4096-flow
table with --new-flow-rate 20000. Checked, with 1 and 2 workers:
  - every packet of every established flow reaches the backend it started on (100%);
  - the table stays within its capacity, and the counters tell the story: new flows refused
    by the rate limit (new_flow_limit), SYN flows evicted when the table was full;
  - new flows admitted per worker per second stay within the configured rate.
Frames are built with struct (scapy is too slow for 300k packets); IPv4 header checksums are
real, TCP checksums are left 0 (Sluice patches them incrementally, it does not verify them)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pcapfile import read_pcap, write_pcap  # noqa: E402

REPLAY = sys.argv[1]
CAPACITY, RATE = 4096, int(os.environ.get("FLOOD_RATE", "20000"))
EST, FLOOD, SECONDS = 500, 200_000, 2.0
PORT0_MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("02000000c101")
VIP = bytes([203, 0, 113, 10])


def ip_csum(h):
    s = sum(struct.unpack("!10H", h))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(src, sport, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1000, 0, 5 << 4, flags, 65535, 0, 0)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, VIP))
    struct.pack_into("!H", ip, 10, ip_csum(bytes(ip)))
    return PORT0_MAC + CLIENT_MAC + b"\x08\x00" + bytes(ip) + tcp


def est_src(i):
    return bytes([192, 0, 2, 10 + i % 200])


def est_port(i):
    return 20000 + i


def build_inputs():
    pkts = []
    t0 = 1_000_000  # 1 s: every flow opens before the flood, one a millisecond (under the rate)
    for i in range(EST):
        pkts.append((t0 + i * 1000, frame(est_src(i), est_port(i), 0x02)))         # SYN
        pkts.append((t0 + i * 1000 + 500, frame(est_src(i), est_port(i), 0x10)))   # ACK: established
    start = t0 + EST * 1000 + 10_000
    step = int(SECONDS * 1e6 / FLOOD)
    for k in range(FLOOD):
        # Spoofed sources in 198.18.0.0/15 would leave the documentation ranges: vary the
        # client port and the last octet within 192.0.2.0/24 instead (distinct 4-tuples).
        src = bytes([192, 0, 2, 1 + (k % 250)])
        pkts.append((start + k * step, frame(src, 1024 + (k // 250) % 60000, 0x02)))
    period = 20_000
    for t in range(start, start + int(SECONDS * 1e6), period):
        for i in range(EST):
            pkts.append((t + i, frame(est_src(i), est_port(i), 0x18)))       # PSH+ACK data
    pkts.sort(key=lambda p: p[0])
    return pkts


def main():
    work = tempfile.mkdtemp(prefix="sluice-flood.")
    inp = os.path.join(work, "in.pcap")
    pkts = build_inputs()
    write_pcap(inp, pkts)
    sent_per_flow = {}
    for _, f in pkts:
        if f[47] == 0x18:
            key = (f[26:30], struct.unpack("!H", f[34:36])[0])
            sent_per_flow[key] = sent_per_flow.get(key, 0) + 1
    failures = []
    for workers in (1, 2):
        out, stats = os.path.join(work, f"out{workers}.pcap"), os.path.join(work, f"stats{workers}.json")
        cmd = [REPLAY, "--in", f"0={inp}", "--out", f"1={out}", "--workers", str(workers), "--stats-json", stats,
               "--vip", "web,203.0.113.10:80/tcp,nat", "--control-socket", "none",
               "--flow-capacity", str(CAPACITY), "--new-flow-rate", str(RATE)]
        for b in range(11, 15):
            cmd += ["--backend", f"web,198.51.100.{b}:8080", "--neighbor", f"198.51.100.{b},02:00:00:00:b1:{b}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"flood: sluice-replay failed:\n{r.stdout}\n{r.stderr}")
        with open(stats) as f:
            st = json.load(f)
        first, got, moved = {}, {}, 0
        for _, f in read_pcap(out):
            if len(f) < 54 or f[47] not in (0x02, 0x10, 0x18):
                continue
            key = (f[26:30], struct.unpack("!H", f[34:36])[0])
            if key not in sent_per_flow:
                continue  # a flood SYN
            backend = f[30:34]
            first.setdefault(key, backend)
            if backend != first[key]:
                moved += 1
            if f[47] == 0x18:
                got[key] = got.get(key, 0) + 1
        delivered = sum(got.values())
        total = sum(sent_per_flow.values())
        drops = st["total"]["drops"]
        tables = [w["flows_v4"] for w in st["workers"]]
        admitted = st["total"]["maglev_picks"] - EST
        per_worker_rate = admitted / workers / SECONDS
        print(f"flood: {workers} worker(s): established packets delivered {delivered}/{total} "
              f"({100.0 * delivered / total:.2f}%), moved {moved}; new flows admitted {admitted} "
              f"({per_worker_rate:.0f}/s per worker, limit {RATE}); refused {drops.get('new_flow_limit', 0)}, "
              f"evicted {sum(t['evictions'] for t in tables)}, table sizes {[t['size'] for t in tables]} "
              f"of {CAPACITY}")
        if delivered != total or moved:
            failures.append(f"{workers} worker(s): established traffic lost or moved")
        if any(t["size"] > t["capacity"] for t in tables) or not drops.get("new_flow_limit"):
            failures.append(f"{workers} worker(s): table over capacity or no rate limiting")
        if per_worker_rate > RATE * 1.1:
            failures.append(f"{workers} worker(s): admitted {per_worker_rate:.0f} new flows/s per worker")
        if not any(t["evictions"] for t in tables):
            failures.append(f"{workers} worker(s): the flood never filled the table")
    if failures:
        print("flood: FAIL\n  " + "\n  ".join(failures))
        return 1
    print("flood: PASS")
    return 0


sys.exit(main())
