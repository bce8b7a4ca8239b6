#!/usr/bin/env python3
"""What Sluice's tunnel packets look like on the wire: captures the outer packets leaving a
MAC on an interface for a while, then prints one line per encapsulation seen.

    tunnel_wire.py IFACE SRC_MAC SECONDS

Line format (the lab test checks it):
    KIND packets=N src=A,.. dst=A,.. df=all|some|none ttl=T,.. flows=F entropy=E stable=yes|no
        [sport_min=P dport=P,.. udp_csum=zero|set]
KIND is inner-in-outer (4in4, 6in6, 4in6, 6in4) with a gue- prefix for GUE. Entropy is the
IPv6 flow label (IP in IPv6) or the UDP source port (GUE), none for IP in IPv4; `flows`
counts inner 5-tuples, `entropy` the distinct values they got, `stable` whether every flow
kept one value.
"""
import ipaddress
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def inner_flow(pkt):
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 0x0F) * 4
        proto, src, dst = pkt[9], pkt[12:16], pkt[16:20]
        l4 = pkt[ihl:ihl + 4]
    elif v == 6:
        proto, src, dst = pkt[6], pkt[8:24], pkt[24:40]
        l4 = pkt[40:44]
    else:
        return None
    return (v, proto, bytes(src), bytes(dst), bytes(l4))


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    iface, mac, secs = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), float(sys.argv[3])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    kinds = {}
    end = time.monotonic() + secs
    while (left := end - time.monotonic()) > 0:
        if not select.select([s], [], [], left)[0]:
            continue
        frame, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING or frame[6:12] != mac:
            continue
        etype = struct.unpack("!H", frame[12:14])[0]
        o = frame[14:]
        udp = None
        if etype == 0x0800 and len(o) >= 20:
            ihl = (o[0] & 0x0F) * 4
            outer, proto, src, dst = 4, o[9], o[12:16], o[16:20]
            df, ttl, payload = bool(o[6] & 0x40), o[8], o[ihl:]
            label = None
        elif etype == 0x86DD and len(o) >= 40:
            outer, proto, src, dst = 6, o[6], o[8:24], o[24:40]
            df, ttl, payload = True, o[7], o[40:]
            label = struct.unpack("!I", o[0:4])[0] & 0xFFFFF
        else:
            continue
        if proto == 17 and len(payload) >= 8:
            udp = struct.unpack("!HHHH", payload[:8])
            payload = payload[8:]
            prefix = "gue-"
        elif proto in (4, 41):
            prefix = ""
        else:
            continue  # not a tunnel packet (health checks, ARP/ND)
        flow = inner_flow(payload)
        if flow is None:
            continue
        kind = f"{prefix}{flow[0]}in{outer}"
        k = kinds.setdefault(kind, {"n": 0, "src": set(), "dst": set(), "df": 0, "ttl": set(), "flows": {},
                                    "sport_min": 65535, "dport": set(), "csum": set()})
        k["n"] += 1
        k["src"].add(str(ipaddress.ip_address(bytes(src))))
        k["dst"].add(str(ipaddress.ip_address(bytes(dst))))
        k["df"] += df
        k["ttl"].add(ttl)
        entropy = udp[0] if udp else label
        k["flows"].setdefault(flow, set()).add(entropy)
        if udp:
            k["sport_min"] = min(k["sport_min"], udp[0])
            k["dport"].add(udp[1])
            k["csum"].add("zero" if udp[3] == 0 else "set")
    for kind, k in sorted(kinds.items()):
        values = set().union(*k["flows"].values())
        df = "all" if k["df"] == k["n"] else "none" if k["df"] == 0 else "some"
        line = (f"{kind} packets={k['n']} src={','.join(sorted(k['src']))} dst={','.join(sorted(k['dst']))} "
                f"df={df} ttl={','.join(map(str, sorted(k['ttl'])))} flows={len(k['flows'])} "
                f"entropy={len(values - {None}) or 'none'} stable={'yes' if all(len(v) == 1 for v in k['flows'].values()) else 'no'}")
        if k["dport"]:
            line += (f" sport_min={k['sport_min']} dport={','.join(map(str, sorted(k['dport'])))}"
                     f" udp_csum={'/'.join(sorted(k['csum']))}")
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
