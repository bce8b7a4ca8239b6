#!/usr/bin/python3
"""The targeted-collision attack on the old unkeyed flow hash, replayed against the keyed one.

   collision.py SLUICE_REPLAY

Until the flow tables were keyed, a flow's bucket pair came from an unkeyed CRC32-C of its
forward key (the SSE4.2 instruction: Castagnoli polynomial, reflected, initial value 0x6B43A9B5,
no final xor, each 64-bit word fed little-endian):
  IPv4: c = crc(0x6B43A9B5, w0), w0 = client address (4 network-order bytes loaded
        little-endian) | client port (2 network-order bytes, little-endian) << 32 | VIP index << 48
  IPv6: c = crc(crc(crc(0x6B43A9B5, w0), w1), w2), w0/w1 = the client address's two halves loaded
        little-endian, w2 = client port (as above) | VIP index << 16
then spread = c * 0x9E3779B97F4A7C15 (mod 2^64): signature = low 32 bits, bucket = high 32 bits.
Keys with equal c share both cuckoo buckets (16 slots), so 16 spoofed SYNs with the victim's c
used to fill them and the victim's flow was refused. CRC is affine over GF(2): fixing everything
but 32 bits that the CRC maps bijectively (the client address for IPv4, bytes 8..11 of it for
IPv6), each choice of the other bits has exactly one solution of a 32x32 linear system.

This test crafts such keys with the old function, checks each of them with a small pure-Python
CRC32-C (itself checked bit by bit and against the standard check value), then replays them as
a SYN flood around the victim's handshake (SYN, the backend's SYN-ACK, the ACK acknowledging
it, 20 data packets) through today's sluice-replay with its default random hash key, with 1 and
2 workers. Checked: every victim packet reaches the backend (and its SYN-ACK the victim) through
a flow (the victim's ACK and data never miss the table, its SYN-ACK is no stateless reply), and
insert failures, refusals and stateless forwards stay at chance level (zero expected; a handful
allowed) where the old hash would have produced one per crafted SYN beyond the first 16.

Addresses. IPv6 crafted sources stay in 2001:db8:c0:2::/64 (the victim's /64: bytes 12..15 and
the port are chosen, bytes 8..11 solved). IPv4 crafted sources cannot stay in the documentation
ranges: within one /24 only the last octet and the port are free, 24 adjacent bits of the CRC's
input, and a CRC detects every burst of 32 bits or fewer, so the victim is the only key with its
CRC there. The IPv4 crafted sources are therefore arbitrary unicast addresses (0/8, 127/8,
224/3 and the VIP and backend /24s left out), which is acceptable here only because the capture
is fed to the replay harness inside this process and never reaches a network. With one VIP
there are only 65,535 of them (one per source port), so the IPv4 configuration has 17 decoy nat
VIPs besides the victim's (index 0, one backend): the VIP index is part of the key, and crafted
SYNs to VIPs 1..17 collide with the victim's flow in the worker's single table just the same.

Timing. The table holds 65,536 flows per worker and family, so that no flood of this size can
fill it by volume: 10^6 crafted SYNs arrive at 8,000 a second (virtual time, 125 s) and
half-open flows last 5 s, about 40,000 live at once. Any refusal or insert failure is then the
hash's doing, not the volume's. Evictions are reported, and should be zero.
Frames are built with struct; IPv4 header checksums are real, TCP checksums 0 (not verified)."""
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
SEED = 0x6B43A9B5
POLY = 0x82F63B78  # CRC32-C, reflected
GOLDEN = 0x9E3779B97F4A7C15
CAPACITY = 65536
V4_CRAFTED, V6_CRAFTED = 1_000_000, 250_000
CRAFTED_PER_S = 8000
DECOY_VIPS = 17
ALLOWED = 16  # refusals + insert failures (and stateless forwards) allowed per run, by chance

PORT0_MAC = bytes.fromhex("020000000001")
PORT1_MAC = bytes.fromhex("020000000002")
CLIENT_MAC = bytes.fromhex("02000000c101")
ATTACKER_MAC = bytes.fromhex("02000000a701")
BACKEND_PORT, VIP_PORT = 8080, 80
VICTIM_ISN, SERVER_ISN = 0x01020304, 0x0A0B0C0D
DATA = 20

# ---- CRC32-C as the SSE4.2 instruction computes it --------------------------------------------


def crc32c_bitwise(crc, data):
    """The reference: one bit at a time, no initial or final inversion."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY if crc & 1 else 0)
    return crc


# Slicing-by-8 tables: T[k][b] = the CRC state after b followed by k zero bytes, from 0.
T = [[crc32c_bitwise(0, bytes([b])) for b in range(256)]]
for _k in range(1, 8):
    T.append([(T[_k - 1][b] >> 8) ^ T[0][T[_k - 1][b] & 0xFF] for b in range(256)])
T0, T1, T2, T3, T4, T5, T6, T7 = T


def crc_u64(crc, w):
    """_mm_crc32_u64(crc, w): the 8 bytes of w, little-endian."""
    x = crc ^ (w & 0xFFFFFFFF)
    return (T7[x & 0xFF] ^ T6[(x >> 8) & 0xFF] ^ T5[(x >> 16) & 0xFF] ^ T4[x >> 24] ^
            T3[(w >> 32) & 0xFF] ^ T2[(w >> 40) & 0xFF] ^ T1[(w >> 48) & 0xFF] ^ T0[w >> 56])


def check_crc():
    """The fast CRC against the bitwise one, and both against CRC-32C's check value."""
    if crc32c_bitwise(0xFFFFFFFF, b"123456789") ^ 0xFFFFFFFF != 0xE3069283:
        sys.exit("collision: the reference CRC32-C is wrong")
    rnd = random.Random(1)
    for _ in range(2000):
        c, w = rnd.getrandbits(32), rnd.getrandbits(64)
        if crc_u64(c, w) != crc32c_bitwise(c, w.to_bytes(8, "little")):
            sys.exit(f"collision: crc_u64({c:#x}, {w:#x}) disagrees with the bitwise CRC")


def old_hash4(addr, port, vip):
    """The old IPv4 forward hash's CRC (addr: 4 bytes; port: host order)."""
    w0 = int.from_bytes(addr, "little") | int.from_bytes(port.to_bytes(2, "big"), "little") << 32 | vip << 48
    return crc_u64(SEED, w0)


def old_hash6(addr, port, vip):
    w0, w1 = int.from_bytes(addr[:8], "little"), int.from_bytes(addr[8:], "little")
    w2 = int.from_bytes(port.to_bytes(2, "big"), "little") | vip << 16
    return crc_u64(crc_u64(crc_u64(SEED, w0), w1), w2)


def spread(c):
    s = c * GOLDEN % (1 << 64)
    return s & 0xFFFFFFFF, s >> 32  # signature, bucket hash

# ---- linear algebra over GF(2) ------------------------------------------------------------------


def invert32(cols):
    """The inverse of the 32x32 matrix whose column j is cols[j] (ints), as columns; exits if singular."""
    rows = [(cols[j], 1 << j) for j in range(32)]  # (image, preimage) pairs; reduce images to unit vectors
    basis = {}
    for img, pre in rows:
        for bit in sorted(basis, reverse=True):
            if img >> bit & 1:
                img ^= basis[bit][0]
                pre ^= basis[bit][1]
        if not img:
            sys.exit("collision: the CRC's restriction is singular (it must be a bijection)")
        top = img.bit_length() - 1
        for bit in list(basis):
            if basis[bit][0] >> top & 1:
                basis[bit] = (basis[bit][0] ^ img, basis[bit][1] ^ pre)
        basis[top] = (img, pre)
    return [basis[j][1] for j in range(32)]  # preimage of unit vector j


def apply_tables(cols):
    """Byte tables for the linear map with the given 32 columns: f(x) = t0[x&255]^t1[..]^t2^t3."""
    tabs = []
    for byte in range(4):
        t = [0] * 256
        for v in range(256):
            acc = 0
            for bit in range(8):
                if v >> bit & 1:
                    acc ^= cols[byte * 8 + bit]
            t[v] = acc
        tabs.append(t)
    return tabs


def raw_port(p):
    """A port as the data path held it: network-order bytes loaded little-endian."""
    return (p >> 8) | (p & 0xFF) << 8

# ---- crafting -----------------------------------------------------------------------------------


def excluded4(a):
    b0, b1, b2 = a[0], a[1], a[2]
    return b0 == 0 or b0 == 127 or b0 >= 224 or (b0, b1, b2) in ((203, 0, 113), (198, 51, 100), (192, 0, 2))


def craft4(victim, vport, n):
    """Up to n (address, port, vip index) with the victim's old CRC (victim on VIP 0)."""
    # L(x) = crc(SEED, x) ^ crc(SEED, 0) is linear in the 64-bit word. A collision needs
    # L(address delta) = L(hi delta << 32), hi = port_raw | vip << 16; L on the address is a bijection.
    c0 = crc_u64(SEED, 0)
    lin = lambda w: crc_u64(SEED, w) ^ c0  # noqa: E731
    inv = invert32([lin(1 << j) for j in range(32)])
    inv_t = apply_tables(inv)

    def solve(x):  # the address delta whose image is x
        return inv_t[0][x & 0xFF] ^ inv_t[1][(x >> 8) & 0xFF] ^ inv_t[2][(x >> 16) & 0xFF] ^ inv_t[3][x >> 24]
    va = int.from_bytes(victim, "little")
    vraw = raw_port(vport)
    by_port = [solve(lin(d << 32)) for d in range(65536)]       # port delta (raw) -> address delta
    # The docstring's argument, checked: no other source port has its solution in 192.0.2.0/24.
    in_doc = sum(1 for port in range(65536) if port != vport and
                 (va ^ by_port[raw_port(port) ^ vraw]).to_bytes(4, "little")[:3] == victim[:3])
    out = []
    for vip in range(DECOY_VIPS + 1):
        base = va ^ solve(lin(vip << 48))
        for port in range(1, 65536):
            if vip == 0 and port == vport:
                continue
            a = (base ^ by_port[raw_port(port) ^ vraw]).to_bytes(4, "little")
            if excluded4(a):
                continue
            out.append((a, port, vip))
            if len(out) == n:
                return out, in_doc
    return out, in_doc


def craft6(victim, vport, n):
    """Up to n (address, port) in the victim's /64 with the victim's old CRC (VIP 0)."""
    # The delta of the final CRC is G(dw1, dw2) = crc(crc(0, dw1), dw2): linear, seed and w0 drop out.
    g = lambda d1, d2: crc_u64(crc_u64(0, d1), d2)  # noqa: E731
    inv_t = apply_tables(invert32([g(1 << j, 0) for j in range(32)]))

    def solve(x):
        return inv_t[0][x & 0xFF] ^ inv_t[1][(x >> 8) & 0xFF] ^ inv_t[2][(x >> 16) & 0xFF] ^ inv_t[3][x >> 24]
    vlo = int.from_bytes(victim[8:12], "little")
    vhi = int.from_bytes(victim[12:16], "little")
    vraw = raw_port(vport)
    by_port = [g(0, d) for d in range(65536)]
    out = []
    for suffix in range(1, 1 << 16):
        hi = 0x5A000000 | suffix                      # bytes 12..15 (little-endian), never the victim's
        gh = g((hi ^ vhi) << 32, 0)
        for port in range(1024, 65536):
            lo = vlo ^ solve(gh ^ by_port[raw_port(port) ^ vraw])
            out.append((victim[:8] + lo.to_bytes(4, "little") + hi.to_bytes(4, "little"), port))
            if len(out) == n:
                return out
    return out


def self_check(crafted4, v4, crafted6, v6):
    """Every crafted key has the victim's old CRC (hence signature and buckets); keys are distinct."""
    cv = old_hash4(v4[0], v4[1], 0)
    w_victim = int.from_bytes(v4[0], "little") | raw_port(v4[1]) << 32
    seen = set()
    for a, p, vip in crafted4:
        w = int.from_bytes(a, "little") | raw_port(p) << 32 | vip << 48
        if crc_u64(SEED, w) != cv or w == w_victim:
            sys.exit(f"collision: crafted IPv4 key {a.hex()}:{p} VIP {vip} does not collide (or is the victim)")
        seen.add(w)
    if len(seen) != len(crafted4):
        sys.exit("collision: duplicate crafted IPv4 keys")
    cv6 = old_hash6(v6[0], v6[1], 0)
    seen = set()
    for a, p in crafted6:
        if old_hash6(a, p, 0) != cv6 or (a, p) == v6 or a[:8] != v6[0][:8]:
            sys.exit(f"collision: crafted IPv6 key {a.hex()}:{p} does not collide (or is the victim)")
        seen.add((a, p))
    if len(seen) != len(crafted6):
        sys.exit("collision: duplicate crafted IPv6 keys")
    # Spot check with the bitwise reference too, and the bucket pair the old table derived.
    for a, p, vip in crafted4[:: max(1, len(crafted4) // 200)]:
        w = int.from_bytes(a, "little") | raw_port(p) << 32 | vip << 48
        if crc32c_bitwise(SEED, w.to_bytes(8, "little")) != cv or spread(crc_u64(SEED, w)) != spread(cv):
            sys.exit("collision: bitwise CRC disagrees on a crafted IPv4 key")
    for a, p in crafted6[:: max(1, len(crafted6) // 200)]:
        c = SEED
        for w in (a[:8], a[8:], (raw_port(p)).to_bytes(8, "little")):
            c = crc32c_bitwise(c, w)
        if c != cv6:
            sys.exit("collision: bitwise CRC disagrees on a crafted IPv6 key")
    return cv, cv6

# ---- frames -------------------------------------------------------------------------------------


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def tcp_hdr(sport, dport, flags, seq, ack):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)


def frame4(dst_mac, src_mac, src, dst, sport, dport, flags, seq, ack, payload=b""):
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst))
    struct.pack_into("!H", ip, 10, (~fold(sum(struct.unpack("!10H", ip)))) & 0xFFFF)
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + tcp_hdr(sport, dport, flags, seq, ack) + payload


def frame6(dst_mac, src_mac, src, dst, sport, dport, flags, seq, ack, payload=b""):
    ip = struct.pack("!IHBB16s16s", 6 << 28, 20 + len(payload), 6, 64, src, dst)
    return dst_mac + src_mac + b"\x86\xdd" + ip + tcp_hdr(sport, dport, flags, seq, ack) + payload


def syn_frames4(crafted, vips):
    """Crafted SYNs, fast: only the source, the port and the VIP vary."""
    head = PORT0_MAC + ATTACKER_MAC + b"\x08\x00" + struct.pack("!BBHHHBB", 0x45, 0, 40, 0, 0, 64, 6)
    const = fold(0x4500 + 40 + 0x4006)
    tail = struct.pack("!HIIBBHHH", VIP_PORT, 0x7A11C0DE, 0, 5 << 4, 0x02, 65535, 0, 0)
    vip_sum = [fold(const + (int.from_bytes(v, "big") >> 16) + (int.from_bytes(v, "big") & 0xFFFF)) for v in vips]
    pack = struct.Struct("!H4s4sH").pack
    out = []
    for a, p, vip in crafted:
        s = int.from_bytes(a, "big")
        csum = ~fold(vip_sum[vip] + (s >> 16) + (s & 0xFFFF)) & 0xFFFF
        out.append(head + pack(csum, a, vips[vip], p) + tail)
    return out


def syn_frames6(crafted, vip):
    head = PORT0_MAC + ATTACKER_MAC + b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, 20, 6, 64)
    tail = struct.pack("!HIIBBHHH", VIP_PORT, 0x7A11C0DE, 0, 5 << 4, 0x02, 65535, 0, 0)
    return [head + a + vip + struct.pack("!H", p) + tail for a, p in crafted]

# ---- a run --------------------------------------------------------------------------------------


class Case:
    """One family's configuration, victim and captures."""

    def __init__(self, name, v6, victim, vport, vips, backends, crafted_frames, work):
        self.name, self.v6, self.victim, self.vport = name, v6, victim, vport
        self.vips, self.backends = vips, backends  # vips: [(addr bytes, text)]; backends: [(addr, text, mac)]
        self.n_crafted = len(crafted_frames)
        fr = frame6 if v6 else frame4
        vip_addr, (be_addr, _, be_mac) = vips[0][0], backends[0]
        step = 1_000_000 // CRAFTED_PER_S
        t0 = 1_000_000
        # The victim's handshake 60% of the way through the flood.
        tv = t0 + (self.n_crafted * 6 // 10) * step + step // 2
        client = [(t0 + k * step, f) for k, f in enumerate(crafted_frames)]
        self.victim_frames = [(tv, fr(PORT0_MAC, CLIENT_MAC, victim, vip_addr, vport, VIP_PORT, 0x02, VICTIM_ISN, 0)),
                              (tv + 400, fr(PORT0_MAC, CLIENT_MAC, victim, vip_addr, vport, VIP_PORT, 0x10,
                                            VICTIM_ISN + 1, SERVER_ISN + 1))]
        for j in range(DATA):
            payload = b"GET /%02d HTTP/1.0\r\n\r\n" % j
            self.victim_frames.append((tv + 10_000 * (j + 1), fr(PORT0_MAC, CLIENT_MAC, victim, vip_addr, vport, VIP_PORT,
                                                                  0x18, VICTIM_ISN + 1 + 22 * j, SERVER_ISN + 1, payload)))
        client += self.victim_frames
        client.sort(key=lambda r: r[0])
        server = [(tv + 200, fr(PORT1_MAC, be_mac, be_addr, victim, BACKEND_PORT, vport, 0x12, SERVER_ISN,
                                VICTIM_ISN + 1))]
        self.inputs = {0: os.path.join(work, f"{name}-in0.pcap"), 1: os.path.join(work, f"{name}-in1.pcap")}
        write_pcap(self.inputs[0], client)
        write_pcap(self.inputs[1], server)
        self.work = work

    def run(self, workers):
        st_path = os.path.join(self.work, f"{self.name}-w{workers}-stats.json")
        out = {p: os.path.join(self.work, f"{self.name}-w{workers}-out{p}.pcap") for p in (0, 1)}
        cmd = [REPLAY, "--in", f"0={self.inputs[0]}", "--in", f"1={self.inputs[1]}", "--out", f"0={out[0]}",
               "--out", f"1={out[1]}", "--workers", str(workers), "--stats-json", st_path,
               "--control-socket", "none", "--flow-capacity", str(CAPACITY)]
        for i, (_, text) in enumerate(self.vips):
            cmd += ["--vip", f"v{i},{text}:{VIP_PORT}/tcp,nat", "--backend", f"v{i},{self.backends[i][1]}:{BACKEND_PORT}",
                    "--neighbor", f"{self.backends[i][1].strip('[]')},{self.backends[i][2].hex(':')}"]
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True)
        replay_s = time.monotonic() - t
        if r.returncode != 0:
            return [f"{self.name}, {workers} worker(s): sluice-replay failed:\n{r.stdout}\n{r.stderr}"]
        with open(st_path) as f:
            st = json.load(f)
        return self.check(workers, st, read_pcap(out[1]), read_pcap(out[0]), replay_s)

    def check(self, workers, st, out1, out0, replay_s):
        label = f"{self.name}, {workers} worker(s)"
        v6, victim, vport = self.v6, self.victim, self.vport
        alen = 16 if v6 else 4
        l3 = 14
        src_off, dst_off = (l3 + 8, l3 + 24) if v6 else (l3 + 12, l3 + 16)
        l4 = l3 + (40 if v6 else 20)
        be_addr, _, be_mac = self.backends[0]
        vip_addr = self.vips[0][0]
        # Victim packets at the backend: everything it sent, in order, rewritten to the backend.
        sent = [f for _, f in self.victim_frames]
        got, crafted_out = [], 0
        for _, f in out1:
            if f[src_off:src_off + alen] == victim and struct.unpack("!H", f[l4:l4 + 2])[0] == vport:
                got.append(f)
            else:
                crafted_out += 1
        wrong = [f for f in got if f[dst_off:dst_off + alen] != be_addr or f[0:6] != be_mac or
                 struct.unpack("!H", f[l4 + 2:l4 + 4])[0] != BACKEND_PORT]
        # Sequence numbers, flags, window and payload unchanged (the TCP checksum is patched).
        same = len(got) == len(sent) and all(g[l4 + 4:l4 + 16] == s[l4 + 4:l4 + 16] and g[l4 + 20:] == s[l4 + 20:]
                                             for g, s in zip(got, sent))
        synack = [f for _, f in out0 if f[dst_off:dst_off + alen] == victim and f[src_off:src_off + alen] == vip_addr
                  and struct.unpack("!HH", f[l4:l4 + 4]) == (VIP_PORT, vport) and f[l4 + 13] == 0x12
                  and f[0:6] == CLIENT_MAC]
        tot = st["total"]
        fam = "flows_v6" if v6 else "flows_v4"
        tables = [w[fam] for w in st["workers"]]
        sums = {k: sum(t.get(k, 0) for t in tables) for k in ("inserts", "insert_failures", "evictions", "expiries")}
        refusals = sum(t["refusals"] for t in tables) if all("refusals" in t for t in tables) else None
        print(f"collision: {label}: victim packets at the backend {len(got)}/{len(sent)}"
              f"{'' if same and not wrong else ' (WRONG)'}, SYN-ACK to the victim {len(synack)}/1, "
              f"non-SYN misses {tot['non_syn_miss']}, replies {tot['replies']} (stateless {tot['stateless_replies']}); "
              f"crafted SYNs forwarded {crafted_out}/{self.n_crafted}, stateful new flows {tot['maglev_picks']}, "
              f"stateless {tot['stateless_forwarded']}; inserts {sums['inserts']}, insert failures "
              f"{sums['insert_failures']}, refusals {'n/a (not in the stats JSON)' if refusals is None else refusals}, "
              f"evictions {sums['evictions']}, expiries {sums['expiries']}, table sizes {[t['size'] for t in tables]} "
              f"of {CAPACITY}; dropped {tot['dropped']}; replay {replay_s:.1f} s", flush=True)
        failures = []
        if len(got) != len(sent) or wrong or not same:
            failures.append(f"{label}: {len(got)} of the victim's {len(sent)} packets reached the backend "
                            f"({len(wrong)} rewritten wrongly, payloads {'intact' if same else 'differ'})")
        if len(synack) != 1:
            failures.append(f"{label}: the backend's SYN-ACK reached the victim {len(synack)} times")
        if tot["non_syn_miss"] or tot["stateless_replies"] or tot["replies"] != 1:
            failures.append(f"{label}: the victim's flow was not kept (non-SYN misses {tot['non_syn_miss']}, "
                            f"replies {tot['replies']}, stateless replies {tot['stateless_replies']})")
        bad = sums["insert_failures"] + (refusals or 0)
        if bad > ALLOWED or tot["stateless_forwarded"] > ALLOWED:
            failures.append(f"{label}: {sums['insert_failures']} insert failures, {refusals} refusals, "
                            f"{tot['stateless_forwarded']} stateless forwards: more than chance ({ALLOWED})")
        if crafted_out != self.n_crafted or tot["dropped"]:
            failures.append(f"{label}: crafted SYNs forwarded {crafted_out}/{self.n_crafted}, drops {tot['drops']}")
        if any(t["size"] > t["capacity"] for t in tables):
            failures.append(f"{label}: table over capacity")
        return failures


def main():
    started = time.monotonic()
    check_crc()
    v4 = (bytes([192, 0, 2, 77]), 40000)
    v6 = (bytes.fromhex("20010db800c00002" "0000000000000100"), 40000)
    crafted4, in_doc = craft4(v4[0], v4[1], V4_CRAFTED)
    crafted6 = craft6(v6[0], v6[1], V6_CRAFTED)
    if len(crafted4) < V4_CRAFTED or len(crafted6) < V6_CRAFTED:
        sys.exit(f"collision: only {len(crafted4)} IPv4 and {len(crafted6)} IPv6 colliding keys")
    cv4, cv6 = self_check(crafted4, v4, crafted6, v6)
    print(f"collision: {len(crafted4)} IPv4 keys ({DECOY_VIPS + 1} VIPs; {in_doc} of the VIP-0 solutions in "
          f"192.0.2.0/24) share the victim 192.0.2.77:40000's old CRC {cv4:#010x}, "
          f"{len(crafted6)} IPv6 keys in 2001:db8:c0:2::/64 share [2001:db8:c0:2::100]:40000's {cv6:#010x} "
          f"(checked; {time.monotonic() - started:.1f} s)", flush=True)

    work = tempfile.mkdtemp(prefix="sluice-collision.")
    vips4 = [(bytes([203, 0, 113, 10 + i]), f"203.0.113.{10 + i}") for i in range(DECOY_VIPS + 1)]
    backends4 = [(bytes([198, 51, 100, 11 + i]), f"198.51.100.{11 + i}", bytes([2, 0, 0, 0, 0xB1, 11 + i]))
                 for i in range(DECOY_VIPS + 1)]
    case4 = Case("ipv4", False, v4[0], v4[1], vips4, backends4,
                 syn_frames4(crafted4, [a for a, _ in vips4]), work)
    del crafted4
    vip6 = bytes.fromhex("20010db8000f00000000000000000010")
    be6 = bytes.fromhex("20010db800be00000000000000000011")
    case6 = Case("ipv6", True, v6[0], v6[1], [(vip6, "[2001:db8:f::10]")],
                 [(be6, "[2001:db8:be::11]", bytes.fromhex("02be00000611"))], syn_frames6(crafted6, vip6), work)
    del crafted6
    failures, replayed = [], 0
    for case in (case4, case6):
        for workers in (1, 2):
            failures += case.run(workers)
            replayed += case.n_crafted
    elapsed = time.monotonic() - started
    print(f"collision: {replayed} crafted SYNs replayed in all")
    if failures:
        print(f"collision: FAIL ({elapsed:.1f} s; captures kept in {work})\n  " + "\n  ".join(failures))
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"collision: PASS ({elapsed:.1f} s)")
    return 0


sys.exit(main())
