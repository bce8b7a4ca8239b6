#!/usr/bin/python3
"""Helpers of tests/e2e/vlan_lab.sh (plain AF_PACKET sockets, no scapy: light on 2 cores).

  vlan_lab.py get ADDR PORT PATH N NAME=FILE...
      N sequential HTTP/1.0 GETs of PATH on ADDR:PORT, each on a new TCP connection. A reply
      counts for NAME when its status is 200 and its body is byte-identical to FILE; anything
      else is a failure. Prints JSON: {"counts": {NAME: n}, "failed": n, "errors": [...]}.

  vlan_lab.py sniff IFACE LB_MAC OUTFILE
      Captures every frame on IFACE (both directions; the 802.1Q tag read inline or from
      PACKET_AUXDATA, where the kernel keeps a tag it took off) until SIGTERM/SIGINT, then
      writes OUTFILE: frame counts by class (client, backend, probe, arp-*, nd-*, other...),
      direction relative to LB_MAC (from_lb, to_lb, flood, other) and VLAN (0 = untagged), a
      few samples of each class/direction/VLAN, and the frames from LB_MAC that Sluice's kernel
      side (or its control core) sent, by kind and VLAN: probe (from a --self address),
      arp-request (kernel: 42 bytes; control core: padded to 60), ns, link-local (IPv6 from
      fe80::/10 or ::, e.g. MLD reports, router solicitations, DAD).

  vlan_lab.py switch TRUNK VID=IF[,IF...]...
      A user-space 802.1Q switch for kernels without 8021q: a frame arriving on TRUNK tagged
      VID goes untagged to every IF of VID; a frame arriving on an IF leaves TRUNK tagged VID
      (VID 0: untagged, the native VLAN). Frames of other VLANs are dropped. Runs until
      SIGTERM; prints its counts.

  vlan_lab.py send IFACE DST_MAC VID SRC DST SPORT DPORT [SRC_MAC]
      Sends one TCP SYN (IPv4 or IPv6, valid checksums) out of IFACE, tagged VID (0: untagged).

  vlan_lab.py claim IFACE ADDR MAC
      Claims ADDR is at MAC, as a host that took it over would: a gratuitous ARP reply
      (IPv4) or an unsolicited neighbour advertisement with the Override flag (IPv6), to
      broadcast / all-nodes, from IFACE.

  vlan_lab.py tags CAPFILE full|static [BACKEND_VID]
      Judges a capture written by sniff: client traffic (to and from VIPs, ARP/ND for them) on
      VLAN 100 only, backend traffic (nat flows, and in full mode health probes and the
      resolution of backends) on BACKEND_VID only (default 200; 0: untagged), both directions
      seen. Every frame from Sluice's MAC that is not client traffic (the kernel side's own:
      probes, ARP/NS for backends, MLD, RS...) on BACKEND_VID, and in full mode the kernel's
      probes, ARP requests and NS seen there; nothing from Sluice's MAC on a VLAN of no side
      (untagged, when BACKEND_VID is not 0). One line per check; exit 1 if any FAILs.

  vlan_lab.py arp IFACE SRC_IP TARGET_IP SECONDS
      Broadcasts "who has TARGET_IP" from IFACE; exit 0 (printing the MAC) if anyone answers
      within SECONDS, 1 if nobody does.
"""
import hashlib
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
PACKET_OUTGOING = 4
AUX = struct.Struct("IIIHHHH")  # struct tpacket_auxdata

CLIENTS4, CLIENTS6 = ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/64")
BACKENDS4, BACKENDS6 = ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:2::/64")
VIPS4, VIPS6 = ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8:3::/64")
SELF = {ipaddress.ip_address("198.51.100.1"), ipaddress.ip_address("2001:db8:2::1")}


# ---- HTTP client ----------------------------------------------------------------------------
def http_get(addr, port, path, timeout=3.0):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: vip\r\n\r\n".encode())
        buf = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep:
        raise OSError(f"no HTTP header end in {len(buf)} bytes")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    return status, body


def get(addr, port, path, n, expects):
    want = {}
    for e in expects:
        name, f = e.split("=", 1)
        with open(f, "rb") as fh:
            want[hashlib.sha256(fh.read()).hexdigest()] = name
    res = {"counts": {name: 0 for name in want.values()}, "failed": 0, "errors": []}
    in_a_row = 0
    for i in range(n):
        if in_a_row >= 8:
            res["failed"] += n - i  # nothing gets through: do not wait out every timeout
            res["errors"].append(f"gave up after {in_a_row} failures in a row; {n - i} not tried")
            break
        in_a_row += 1
        try:
            status, body = http_get(addr, port, path)
            h = hashlib.sha256(body).hexdigest()
            if " 200 " not in status + " ":
                raise OSError(f"status '{status}'")
            if h not in want:
                raise OSError(f"{len(body)} bytes matching no backend's file (sha256 {h[:16]}..)")
            res["counts"][want[h]] += 1
            in_a_row = 0
        except (OSError, ValueError) as e:
            res["failed"] += 1
            if len(res["errors"]) < 5:
                res["errors"].append(f"#{i}: {type(e).__name__}: {e}")
    print(json.dumps(res))
    return 0


# ---- frames ---------------------------------------------------------------------------------
def mac_bytes(s):
    return bytes.fromhex(s.replace(":", ""))


def mac_str(b):
    return ":".join(f"{x:02x}" for x in b)


def packet_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((iface, ETH_P_ALL))
    s.setblocking(False)
    return s


def recv_frame(s):
    """(frame with any tag removed, vid or None, outgoing) from a packet socket."""
    data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(AUX.size))
    vid = None
    for level, typ, cdata in anc:
        if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= AUX.size:
            status, _len, _snap, _mac, _net, tci, _tpid = AUX.unpack_from(cdata)
            if status & TP_STATUS_VLAN_VALID:
                vid = tci & 0x0FFF
    if vid is None and len(data) >= 18 and data[12:14] == b"\x81\x00":
        vid = struct.unpack_from("!H", data, 14)[0] & 0x0FFF
        data = data[:12] + data[16:]
    return data, vid, addr[2] == PACKET_OUTGOING


def tag(frame, vid):
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:] if vid else frame


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def syn_frame(dst_mac, src_mac, vid, src, dst, sport, dport):
    sa, da = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, 0x1000, 0, 5 << 4, 0x02, 64240, 0, 0))
    if sa.version == 4:
        pseudo = sa.packed + da.packed + struct.pack("!BBH", 0, 6, len(tcp))
        struct.pack_into("!H", tcp, 16, csum(pseudo + bytes(tcp)))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x1234, 0, 64, 6, 0, sa.packed, da.packed))
        struct.pack_into("!H", ip, 10, csum(bytes(ip)))
        et = 0x0800
    else:
        pseudo = sa.packed + da.packed + struct.pack("!I3xB", len(tcp), 6)
        struct.pack_into("!H", tcp, 16, csum(pseudo + bytes(tcp)))
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, sa.packed, da.packed)
        et = 0x86DD
    frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", et) + bytes(ip) + bytes(tcp)
    return tag(frame, vid)


def iface_mac(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def send(iface, dst_mac, vid, src, dst, sport, dport, src_mac=None):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.send(syn_frame(dst_mac, src_mac or iface_mac(iface), vid, src, dst, sport, dport))
    return 0


def arp(iface, src_ip, target, seconds):
    me = mac_bytes(iface_mac(iface))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((iface, 0x0806))
    req = (b"\xff" * 6 + me + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, 1) + me +
           socket.inet_aton(src_ip) + b"\0" * 6 + socket.inet_aton(target))
    s.send(req)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([s], [], [], left)
        if not r:
            break
        d = s.recv(2048)
        if len(d) >= 42 and struct.unpack_from("!H", d, 20)[0] == 2 and d[28:32] == socket.inet_aton(target):
            print(mac_str(d[22:28]))
            return 0
    return 1


def claim(iface, addr, mac):
    me, claimed = mac_bytes(iface_mac(iface)), mac_bytes(mac)
    a = ipaddress.ip_address(addr)
    if a.version == 4:
        frame = (b"\xff" * 6 + me + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, 2) + claimed + a.packed +
                 b"\xff" * 6 + a.packed)
    else:
        src, dst = a.packed, ipaddress.ip_address("ff02::1").packed
        na = bytearray(struct.pack("!BBHI16sBB6s", 136, 0, 0, 0x20000000, a.packed, 2, 1, claimed))  # O flag
        pseudo = src + dst + struct.pack("!I3xB", len(na), 58)
        struct.pack_into("!H", na, 2, csum(pseudo + bytes(na)))
        frame = (b"\x33\x33\x00\x00\x00\x01" + me + struct.pack("!H", 0x86DD) +
                 struct.pack("!IHBB16s16s", 6 << 28, len(na), 58, 255, src, dst) + bytes(na))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.send(frame)
    return 0


# ---- sniffer --------------------------------------------------------------------------------
def classify(f):
    """A short class and a description of an untagged frame."""
    if len(f) < 14:
        return "runt", "runt"
    et = struct.unpack_from("!H", f, 12)[0]
    if et == 0x0806 and len(f) >= 42:
        op = struct.unpack_from("!H", f, 20)[0]
        spa, tpa = ipaddress.ip_address(f[28:32]), ipaddress.ip_address(f[38:42])
        side = "backend" if tpa in BACKENDS4 else "client" if tpa in VIPS4 or tpa in CLIENTS4 else "other"
        return f"arp-{side}", f"arp {'request' if op == 1 else 'reply'} {spa} -> {tpa}"
    if et == 0x0800 and len(f) >= 34:
        ihl = (f[14] & 15) * 4
        proto, src, dst = f[23], ipaddress.ip_address(f[26:30]), ipaddress.ip_address(f[30:34])
        l4 = 14 + ihl
    elif et == 0x86DD and len(f) >= 54:
        proto, src, dst = f[20], ipaddress.ip_address(f[22:38]), ipaddress.ip_address(f[38:54])
        l4 = 54
        if proto == 58 and len(f) > l4:
            t = f[l4]
            if t in (135, 136) and len(f) >= l4 + 24:
                target = ipaddress.ip_address(f[l4 + 8:l4 + 24])
                side = "backend" if target in BACKENDS6 else "client" if target in VIPS6 or target in CLIENTS6 else "other"
                return f"nd-{side}", f"icmp6 {'NS' if t == 135 else 'NA'} {src} -> {dst} target {target}"
    else:
        return "other", f"ethertype 0x{et:04x}"
    ports = ""
    if proto in (6, 17) and len(f) >= l4 + 4:
        sp, dp = struct.unpack_from("!HH", f, l4)
        ports = f" {sp}->{dp}"
    desc = f"{ {6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmp6'}.get(proto, f'proto {proto}') } {src} -> {dst}{ports}"
    if proto in (1, 58) and len(f) > l4:
        desc += f" type {f[l4]}"
    vip = lambda a: a in VIPS4 or a in VIPS6
    be = lambda a: a in BACKENDS4 or a in BACKENDS6
    if vip(src) or vip(dst):
        return "client", desc
    if src in SELF or dst in SELF:
        return "probe", desc
    if be(src) or be(dst):
        return "backend", desc
    return "other", desc


def kernel_kind(f):
    """The kind of a frame from Sluice's MAC that its kernel side or control core sent, or None
    (the data path's: forwarded traffic, answers to ARP/ND and pings)."""
    if len(f) < 14:
        return None
    et = struct.unpack_from("!H", f, 12)[0]
    if et == 0x0806 and len(f) >= 42 and struct.unpack_from("!H", f, 20)[0] == 1:
        return "arp-request (kernel)" if len(f) < 60 else "arp-request (control core)"
    if et == 0x0800 and len(f) >= 34:
        return "probe" if ipaddress.ip_address(f[26:30]) in SELF else None
    if et == 0x86DD and len(f) >= 54:
        src = ipaddress.ip_address(f[22:38])
        if f[20] == 58 and len(f) > 54 and f[54] == 135:
            return "ns"
        if f[20] == 58 and len(f) > 54 and f[54] == 136:
            return None  # the data path's answers to solicitations of Sluice's addresses
        if src.is_link_local or src.is_unspecified:
            return "link-local"
        return "probe" if src in SELF else None
    return None


def sniff(iface, lb_mac, outfile):
    lb = mac_bytes(lb_mac)
    s = packet_socket(iface)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    counts, samples, kernel, total = {}, {}, {}, 0
    open(outfile + ".ready", "w").close()
    while not stop:
        try:
            r, _, _ = select.select([s], [], [], 0.2)
        except InterruptedError:
            continue
        if not r:
            continue
        for _ in range(256):
            try:
                f, vid, _out = recv_frame(s)
            except BlockingIOError:
                break
            total += 1
            cls, desc = classify(f)
            d = "from_lb" if f[6:12] == lb else "to_lb" if f[0:6] == lb else "flood" if f[0] & 1 else "other"
            v = str(vid or 0)
            c = counts.setdefault(cls, {}).setdefault(d, {})
            c[v] = c.get(v, 0) + 1
            sm = samples.setdefault(f"{cls} {d} vlan {v}", [])
            if len(sm) < 3:
                sm.append(f"{mac_str(f[6:12])} > {mac_str(f[0:6])} {desc}")
            if d == "from_lb" and (k := kernel_kind(f)):
                kc = kernel.setdefault(k, {})
                kc[v] = kc.get(v, 0) + 1
                sm = samples.setdefault(f"kernel {k} vlan {v}", [])
                if len(sm) < 3:
                    sm.append(f"{mac_str(f[6:12])} > {mac_str(f[0:6])} {desc}")
    with open(outfile + ".tmp", "w") as fh:
        json.dump({"total": total, "counts": counts, "kernel": kernel, "samples": samples}, fh, indent=1)
    os.replace(outfile + ".tmp", outfile)
    return 0


def tags(capfile, full, bvid="200"):
    """The capture's verdict: one PASS/FAIL/NOTE line per expectation; exit 1 on a FAIL."""
    with open(capfile) as fh:
        cap = json.load(fh)
    counts, samples = cap["counts"], cap["samples"]
    lines, bad = [], False
    # class -> (VLAN it must be on, must Sluice have sent some, must Sluice have received some)
    want = {"client": ("100", True, True), "backend": (bvid, True, True),
            "arp-client": ("100", True, False), "nd-client": ("100", False, False),
            "arp-backend": (bvid, True, False), "nd-backend": (bvid, False, False)}
    if full:
        want["probe"] = (bvid, True, True)
        want["nd-backend"] = (bvid, True, False)
    for cls, (vid, need_from, need_to) in want.items():
        c = counts.get(cls, {})
        frm, to = c.get("from_lb", {}), c.get("to_lb", {})
        why = []
        for d, seen, need in (("from Sluice", frm, need_from), ("to Sluice", to, need_to)):
            wrong = {v: n for v, n in seen.items() if v != vid}
            if wrong:
                key = f"{cls} {'from_lb' if d == 'from Sluice' else 'to_lb'} vlan {next(iter(wrong))}"
                why.append(f"{d} on VLAN(s) {wrong} (0 = untagged), e.g. {samples.get(key, ['?'])[0]}")
            if need and not seen.get(vid):
                why.append(f"no frame {d} on VLAN {vid}")
        desc = f"{cls:<11} from Sluice {frm or '{}'}, to Sluice {to or '{}'}"
        if why:
            bad = True
            lines.append(f"FAIL {desc}: {'; '.join(why)}")
        else:
            lines.append(f"PASS {desc}")
    # The kernel side's own frames (and its control core's): on the backend VLAN only; in full
    # mode its probes, its ARP requests and its solicitations for the backends must be there.
    kernel = cap.get("kernel", {})
    why = []
    for k, c in sorted(kernel.items()):
        wrong = {v: n for v, n in c.items() if v != bvid}
        if wrong:
            v = next(iter(wrong))
            why.append(f"{k} on VLAN(s) {wrong} (0 = untagged), e.g. {samples.get(f'kernel {k} vlan {v}', ['?'])[0]}")
    if full:
        for k in ("probe", "arp-request (kernel)", "ns"):
            if not kernel.get(k, {}).get(bvid):
                why.append(f"no {k} from Sluice's MAC on VLAN {bvid}")
    desc = f"kernel side's own frames (from Sluice's MAC) on VLAN {bvid}: " + \
        (", ".join(f"{k} {c}" for k, c in sorted(kernel.items())) or "none")
    if why:
        bad = True
        lines.append(f"FAIL {desc}: {'; '.join(why)}")
    else:
        lines.append(f"PASS {desc}")
    # Nothing from Sluice's MAC on a VLAN of no side; nothing but client traffic on the client's.
    client_side = ("client", "arp-client", "nd-client")
    by_vlan, why = {}, []
    for cls, c in sorted(counts.items()):
        for v, n in sorted(c.get("from_lb", {}).items()):
            by_vlan[v] = by_vlan.get(v, 0) + n
            if v not in ("100", bvid) or (cls not in client_side and v != bvid):
                eg = samples.get(f"{cls} from_lb vlan {v}", ["?"])[0]
                why.append(f"{n} {cls} frame(s) on VLAN {v} (0 = untagged), e.g. {eg}")
    desc = f"every frame from Sluice's MAC, by VLAN: {by_vlan or '{}'}" + \
        ("; none untagged" if bvid != "0" else "; only client traffic on VLAN 100")
    if why:
        bad = True
        lines.append(f"FAIL {desc.split(';')[0]}: {'; '.join(why)}")
    else:
        lines.append(f"PASS {desc}")
    lines.append(f"INFO {cap['total']} frames captured")
    print("\n".join(lines))
    return 1 if bad else 0


# ---- user-space switch ------------------------------------------------------------------------
def switch(trunk, specs):
    ports = {}  # ifname -> vid
    for spec in specs:
        vid, ifs = spec.split("=", 1)
        for i in ifs.split(","):
            ports[i] = int(vid)
    t = packet_socket(trunk)
    socks = {t.fileno(): (t, None)}
    for i, vid in ports.items():
        a = packet_socket(i)
        socks[a.fileno()] = (a, vid)
    out = {vid: [socks[k][0] for k in socks if socks[k][1] == vid] for vid in set(ports.values())}
    stats = {"trunk_in": 0, "dropped_vlan": {}, "access_in": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    p = select.poll()
    for k in socks:
        p.register(k, select.POLLIN)
    while not stop:
        try:
            ev = p.poll(200)
        except InterruptedError:
            continue
        for fd, _ in ev:
            s, vid = socks[fd]
            for _ in range(256):
                try:
                    f, fvid, outgoing = recv_frame(s)
                except BlockingIOError:
                    break
                if outgoing:
                    continue
                try:
                    if vid is None:  # from the trunk (0: untagged, the native VLAN)
                        if (fvid or 0) in out:
                            stats["trunk_in"] += 1
                            for a in out[fvid or 0]:
                                a.send(f)
                        else:
                            k = str(fvid or 0)
                            stats["dropped_vlan"][k] = stats["dropped_vlan"].get(k, 0) + 1
                    elif fvid is None:  # an access port takes untagged frames only
                        stats["access_in"] += 1
                        t.send(tag(f, vid))
                except OSError:
                    pass  # a full queue: a lost frame, as on a real switch
    print("switch: " + json.dumps(stats), flush=True)
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "get" and len(argv) >= 7:
        return get(argv[2], int(argv[3]), argv[4], int(argv[5]), argv[6:])
    if cmd == "sniff" and len(argv) == 5:
        return sniff(argv[2], argv[3], argv[4])
    if cmd == "switch" and len(argv) >= 4:
        return switch(argv[2], argv[3:])
    if cmd == "send" and len(argv) in (9, 10):
        return send(argv[2], argv[3], int(argv[4]), argv[5], argv[6], int(argv[7]), int(argv[8]), *argv[9:])
    if cmd == "tags" and len(argv) in (4, 5):
        return tags(argv[2], argv[3] == "full", *argv[4:])
    if cmd == "claim" and len(argv) == 5:
        return claim(argv[2], argv[3], argv[4])
    if cmd == "arp" and len(argv) == 6:
        return arp(argv[2], argv[3], argv[4], float(argv[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
