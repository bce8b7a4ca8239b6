#!/usr/bin/python3
"""gen_malformed.py: the malformed-packet corpus, one capture per kind of broken packet.

    gen_malformed.py OUTDIR [--workers N]

Writes into OUTDIR (created if needed):
  sluice.conf                  nat, fullnat, dsr and tunnel VIPs over IPv4 and IPv6, TCP and UDP,
                               two-arm (clients on port 0, backends on port 1), one backend each
  <kind>.in-port<P>.pcap       the kind's input on port P (0: client side, 1: backend side)
  <kind>.expected-port<P>.pcap what Sluice must send out of port P for it, byte for byte
  manifest.json                kind -> expected outcome, packet count, description, captures
  all.{in,expected}-port<P>.pcap  every kind but the known failures again, one virtual second
                               apart, in one replay (manifest "all": its counter totals)

Every kind is aimed at a VIP (or at a flow through one) and has one expected outcome:
  - a drop reason of lib/lb/counters.hpp (SLUICE_DROP_REASONS), counted once per packet;
  - "forwarded" (to the backend port) or "replied" (a backend's answer to the client port), with
    the exact output bytes: only MACs, addresses, ports, TTL / hop limit and checksums change,
    and a TCP/UDP checksum keeps exactly the error it came in with (Sluice patches checksums
    incrementally, RFC 1624, and must neither repair nor worsen a bad one);
  - "oversize": a frame above the harness's 9216-byte mbufs, counted as RX-oversize, not a drop.
Reply kinds and some others start with `setup` packets (valid first packets of the flow, always
forwarded) before the packets under test.

The expected outputs come from a model of the documented behaviour written here (including its
own Toeplitz, to predict fullnat's SNAT ports with several workers), never from running Sluice;
tests/corpus/check_corpus.py replays every kind and compares. Kinds whose correct outcome
Sluice does not deliver yet are listed in KNOWN_FAILURES with what goes wrong.
"""

import argparse
import ipaddress
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pcapfile import write_pcap  # noqa: E402

from scapy.all import (AH, ARP, ESP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6NDOptSrcLLAddr,
                       ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6PacketTooBig, IPOption_LSRR, IPOption_NOP,
                       IPOption_Router_Alert, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrSegmentRouting, PadN, Raw)
from scapy.layers.l2 import Dot1AD

# ---- the configuration under test -------------------------------------------------------------

PORT_MAC = {0: "02:00:00:00:00:01", 1: "02:00:00:00:00:02"}  # sluice-replay's defaults
CLIENT_MAC = "02:c1:00:00:00:10"
CLIENT4 = "192.0.2.10"
CLIENT6 = "2001:db8:1::10"
SNAT4 = "203.0.113.100"
SNAT6 = "2001:db8:3::100"
SELF4 = "203.0.113.1"
SELF6 = "2001:db8:3::1"
TUNSRC4 = "203.0.113.2"   # --tunnel-source: the outer source of the tunnel VIPs' packets
TUNSRC6 = "2001:db8:3::2"
SNAT_MIN, SNAT_MAX = 20000, 20999


class Vip:
    def __init__(self, name, mode, fam, proto, addr, port, baddr, bport, bmac):
        self.name, self.mode, self.fam, self.proto = name, mode, fam, proto
        self.addr, self.port, self.baddr, self.bport, self.bmac = addr, port, baddr, bport, bmac


def _vips():
    out = []
    for mode, n in (("nat", 1), ("fullnat", 2), ("dsr", 3), ("tunnel", 4)):
        for fam in (4, 6):
            addr = "203.0.113.%d0" % n if fam == 4 else "2001:db8:3::%d0" % n
            baddr = "198.51.100.%d1" % n if fam == 4 else "2001:db8:be::%d1" % n
            for proto, port, bport in (("tcp", 80, 8080), ("udp", 53, 5353)):
                if mode in ("dsr", "tunnel"):
                    bport = port  # dsr and tunnels leave the transport header alone
                out.append(Vip("%s%d%s" % (mode, fam, proto), mode, fam, proto, addr, port, baddr, bport,
                               "02:be:00:00:%02d:%d1" % (fam, n)))
    return out


def render_config():
    lines = ["# The malformed-corpus configuration: nat, fullnat, dsr and tunnel VIPs, IPv4 and IPv6, TCP and UDP,",
             "# two-arm. Written by tests/corpus/gen_malformed.py.", ""]
    seen = set()
    for v in VIPS:
        ep = "[%s]:%d" % (v.addr, v.port) if v.fam == 6 else "%s:%d" % (v.addr, v.port)
        bep = ("[%s]:%d" % (v.baddr, v.bport)) if v.fam == 6 else "%s:%d" % (v.baddr, v.bport)
        lines.append("vip = %s,%s/%s,%s" % (v.name, ep, v.proto, v.mode))
        lines.append("backend = %s,%s" % (v.name, bep))
        if v.baddr not in seen:
            seen.add(v.baddr)
            lines.append("neighbor = %s,%s" % (v.baddr, v.bmac))
    lines += ["snat = " + SNAT4, "snat = " + SNAT6, "self = " + SELF4, "self = " + SELF6,
              "tunnel-source = " + TUNSRC4, "tunnel-source = " + TUNSRC6,
              "snat-ports = %d-%d" % (SNAT_MIN, SNAT_MAX), "flow-capacity = 1024", "control-socket = none",
              "client-port = 0", "backend-port = 1", ""]
    return "\n".join(lines)


# ---- one's-complement arithmetic and a small parser for the packets the model forwards --------

def ones_sum(data, s=0):
    if len(data) % 2:
        data = bytes(data) + b"\0"
    for i in range(0, len(data), 2):
        s += data[i] << 8 | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def packed(addr):
    return ipaddress.ip_address(addr).packed


VIPS = _vips()
VIP = {v.name: v for v in VIPS}


def _visible(a, b):
    return ones_sum(packed(a)) % 0xFFFF != ones_sum(packed(b)) % 0xFFFF


# Every address rewrite must move the one's-complement sum, or a rewrite that forgot to patch
# the transport checksum for it would still produce a valid checksum and go unnoticed.
for _v in VIPS:
    _c = CLIENT4 if _v.fam == 4 else CLIENT6
    _s = SNAT4 if _v.fam == 4 else SNAT6
    assert _visible(_v.addr, _v.baddr) and _visible(_c, _s), _v.name


def dissect(fr):
    """Offsets and fields of a well-formed frame (what the model rewrites), else None."""
    off, et = 14, struct.unpack("!H", fr[12:14])[0]
    if et == 0x8100:
        off, et = 18, struct.unpack("!H", fr[16:18])[0]
    d = {"l3": off}
    if et == 0x0800:
        ihl = (fr[off] & 0x0F) * 4
        d.update(fam=4, ttl=off + 8, src=off + 12, dst=off + 16, alen=4, proto=fr[off + 9], l4=off + ihl,
                 end=off + struct.unpack("!H", fr[off + 2:off + 4])[0])
    elif et == 0x86DD:
        nh, pos = fr[off + 6], off + 40
        while nh in (0, 43, 44, 60):  # a fragment header (44) is always 8 bytes
            nh, pos = fr[pos], pos + (8 if nh == 44 else (fr[pos + 1] + 1) * 8)
        d.update(fam=6, ttl=off + 7, src=off + 8, dst=off + 24, alen=16, proto=nh, l4=pos,
                 end=off + 40 + struct.unpack("!H", fr[off + 4:off + 6])[0])
    else:
        return None
    if d["proto"] not in (6, 17):
        return None
    d["csum"] = d["l4"] + (16 if d["proto"] == 6 else 6)
    return d


def field(fr, d, name):
    return bytes(fr[d[name]:d[name] + d["alen"]])


def ports(fr, d):
    return struct.unpack("!HH", fr[d["l4"]:d["l4"] + 4])


def l4_sum(fr, d):
    """One's-complement sum of the pseudo-header (IP header addresses) and the transport segment,
    checksum field included: 0xFFFF when the checksum is right, otherwise off by its error."""
    seg = bytes(fr[d["l4"]:d["end"]])
    n = len(seg)
    ph = field(fr, d, "src") + field(fr, d, "dst")
    ph += struct.pack("!BBH", 0, d["proto"], n) if d["fam"] == 4 else struct.pack("!IxxxB", n, d["proto"])
    return ones_sum(ph + seg)


def rewrite(fr, out_mac, in_mac, src=None, sport=None, dst=None, dport=None, dec_ttl=True):
    """The expected output of a nat/fullnat/dsr rewrite: fields replaced, TTL / hop limit minus
    one, IPv4 header checksum recomputed (Sluice only forwards valid ones), and the transport
    checksum set so that it keeps the error it had (RFC 1624 eqn. 3 gives results in
    0..0xFFFE; a UDP result of 0 goes out as 0xFFFF, and IPv4 UDP without checksum stays 0).
    The corpus configuration serves no VLAN: an 802.1Q tag (only VID 0 gets this far) is removed."""
    b = bytearray(fr)
    d = dissect(b)
    before = l4_sum(b, d)
    no_csum = d["fam"] == 4 and d["proto"] == 17 and b[d["csum"]:d["csum"] + 2] == b"\0\0"
    if src is not None:
        b[d["src"]:d["src"] + d["alen"]] = packed(src)
        b[d["l4"]:d["l4"] + 2] = struct.pack("!H", sport)
    if dst is not None:
        b[d["dst"]:d["dst"] + d["alen"]] = packed(dst)
        b[d["l4"] + 2:d["l4"] + 4] = struct.pack("!H", dport)
    if dec_ttl:
        b[d["ttl"]] -= 1
    if d["fam"] == 4:
        l3, ihl = d["l3"], d["l4"] - d["l3"]
        b[l3 + 10:l3 + 12] = b"\0\0"
        b[l3 + 10:l3 + 12] = struct.pack("!H", 0xFFFF - ones_sum(bytes(b[l3:l3 + ihl])))
    if (src is not None or dst is not None) and not no_csum:
        b[d["csum"]:d["csum"] + 2] = b"\0\0"
        c = ones_sum(bytes([before >> 8, before & 0xFF]), 0xFFFF - l4_sum(b, d))  # before - rest
        if d["proto"] == 6 and c == 0xFFFF:
            c = 0
        if d["proto"] == 17 and c == 0:
            c = 0xFFFF
        b[d["csum"]:d["csum"] + 2] = struct.pack("!H", c)
    b[0:6] = bytes.fromhex(out_mac.replace(":", ""))
    b[6:12] = bytes.fromhex(in_mac.replace(":", ""))
    if b[12:14] == b"\x81\x00":  # both sides untagged here: a (priority) tag comes off
        del b[12:16]
    return bytes(b)


# ---- RSS and SNAT port choice (lib/net/toeplitz.cpp, lib/lb/dataplane.cpp pick_snat) --------

RSS_KEY = bytes([
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
])
_KEY_INT, _KEY_BITS = int.from_bytes(RSS_KEY, "big"), len(RSS_KEY) * 8


def toeplitz(data):
    h = 0
    for i, byte in enumerate(data):
        for bit in range(8):
            if byte & (0x80 >> bit):
                h ^= (_KEY_INT >> (_KEY_BITS - 32 - (i * 8 + bit))) & 0xFFFFFFFF
    return h


# Microsoft's RSS verification suite, first IPv4 vector: the port above is the NIC's function.
assert toeplitz(bytes([66, 9, 149, 187, 161, 142, 100, 80]) + struct.pack("!HH", 2794, 1766)) == 0x51CCC178


def rss_queue(workers, data):
    return (toeplitz(data) % 128) % workers  # round-robin redirection table of 128 entries


class Model:
    """What Sluice does with the valid packets of one replay (a fresh process per kind)."""

    def __init__(self, workers):
        self.workers = workers
        self.cursor = {}  # (worker, family) -> next SNAT port to try
        self.flows = {}   # (vip name, client, client port) -> (client MAC, SNAT port)
        self.replies = {}  # (vip name, backend side tuple) -> flow key

    def queue(self, fr, d):
        if self.workers == 1:
            return 0
        return rss_queue(self.workers, field(fr, d, "src") + field(fr, d, "dst") + fr[d["l4"]:d["l4"] + 4])

    def snat_port(self, worker, v):
        saddr = packed(SNAT4 if v.fam == 4 else SNAT6)
        cand = self.cursor.get((worker, v.fam), SNAT_MIN)
        while self.workers > 1 and rss_queue(self.workers, packed(v.baddr) + saddr +
                                             struct.pack("!HH", v.bport, cand)) != worker:
            cand = SNAT_MIN if cand >= SNAT_MAX else cand + 1
        self.cursor[(worker, v.fam)] = SNAT_MIN if cand >= SNAT_MAX else cand + 1
        return cand

    def forward(self, fr):
        d = dissect(fr)
        sport, dport = ports(fr, d)
        dst = str(ipaddress.ip_address(field(fr, d, "dst")))
        proto = {6: "tcp", 17: "udp"}[d["proto"]]
        v = next(x for x in VIPS if x.addr == dst and x.port == dport and x.proto == proto)
        client = str(ipaddress.ip_address(field(fr, d, "src")))
        key = (v.name, client, sport)
        if key not in self.flows:
            snat = self.snat_port(self.queue(fr, d), v) if v.mode == "fullnat" else None
            self.flows[key] = (":".join("%02x" % x for x in fr[6:12]), snat)
        snat = self.flows[key][1]
        if v.mode == "dsr":
            return 1, rewrite(fr, v.bmac, PORT_MAC[1], dec_ttl=False)
        if v.mode == "nat":
            return 1, rewrite(fr, v.bmac, PORT_MAC[1], dst=v.baddr, dport=v.bport)
        return 1, rewrite(fr, v.bmac, PORT_MAC[1], src=SNAT4 if v.fam == 4 else SNAT6, sport=snat,
                          dst=v.baddr, dport=v.bport)

    def reply_to(self, vip, client, cport):
        """(dst address, dst port) a backend's reply to this flow carries."""
        v = VIP[vip]
        snat = self.flows[(vip, client, cport)][1]
        if v.mode == "nat":
            return client, cport
        return (SNAT4 if v.fam == 4 else SNAT6), snat

    def reply(self, fr, vip, client, cport):
        v = VIP[vip]
        cmac = self.flows[(vip, client, cport)][0]
        if v.mode == "nat":
            return 0, rewrite(fr, cmac, PORT_MAC[0], src=v.addr, sport=v.port)
        return 0, rewrite(fr, cmac, PORT_MAC[0], src=v.addr, sport=v.port, dst=client, dport=cport)


# ---- packet building ---------------------------------------------------------------------------

def client_pkt(vip, cport, flags="S", payload=b"", ttl=64, vlan=None, ext=None, dport=None, dst=None):
    """A client's packet to a VIP (scapy), optionally with a VLAN tag, IPv6 extension headers
    between the IPv6 header and the transport, or another destination address or port."""
    v = VIP[vip]
    eth = Ether(src=CLIENT_MAC, dst=PORT_MAC[0])
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    ip = (IP(src=CLIENT4, dst=dst or v.addr, ttl=ttl) if v.fam == 4 else
          IPv6(src=CLIENT6, dst=dst or v.addr, hlim=ttl))
    if ext is not None:
        ip = ip / ext
    l4 = (TCP(sport=cport, dport=dport or v.port, flags=flags, seq=7000 + cport, window=8192) if v.proto == "tcp"
          else UDP(sport=cport, dport=dport or v.port))
    return eth / ip / l4 / Raw(payload) if payload else eth / ip / l4


def backend_pkt(model, vip, cport, flags="SA", payload=b"", ttl=64):
    """A backend's reply to the flow (vip, client, cport), as the backend sends it."""
    v = VIP[vip]
    client = CLIENT4 if v.fam == 4 else CLIENT6
    dst, dport = model.reply_to(vip, client, cport)
    ip = IP(src=v.baddr, dst=dst, ttl=ttl) if v.fam == 4 else IPv6(src=v.baddr, dst=dst, hlim=ttl)
    l4 = (TCP(sport=v.bport, dport=dport, flags=flags, seq=9000, ack=7001 + cport, window=8192) if v.proto == "tcp"
          else UDP(sport=v.bport, dport=dport))
    p = Ether(src=v.bmac, dst=PORT_MAC[1]) / ip / l4
    return p / Raw(payload) if payload else p


def fix4(b, l3=14):
    """Recomputes an IPv4 header checksum over the header IHL says there is (at least 20 bytes)."""
    b = bytearray(b)
    hl = max((b[l3] & 0x0F) * 4, 20)
    b[l3 + 10:l3 + 12] = b"\0\0"
    b[l3 + 10:l3 + 12] = struct.pack("!H", 0xFFFF - ones_sum(bytes(b[l3:l3 + hl])))
    return bytes(b)


def poke(b, off, data, fix=None):
    """b with data written at off; fix=L3 offset recomputes that IPv4 header's checksum."""
    b = bytearray(bytes(b))
    if isinstance(data, int):
        data = bytes([data])
    b[off:off + len(data)] = data
    return fix4(b, fix) if fix is not None else bytes(b)


def set16(b, off, v, fix=None):
    return poke(b, off, struct.pack("!H", v), fix)


def l4_bad_csum(b, delta=0x1111):
    """Adds delta to the transport checksum (one's complement): off by exactly delta."""
    d = dissect(bytes(b))
    c = struct.unpack("!H", bytes(b)[d["csum"]:d["csum"] + 2])[0]
    return set16(b, d["csum"], ones_sum(struct.pack("!HH", c, delta)))


def eth_hdr(ethertype, src=CLIENT_MAC, dst=PORT_MAC[0]):
    return bytes(Ether(src=src, dst=dst, type=ethertype))


# ---- the kinds ---------------------------------------------------------------------------------

class Kind:
    """name, expected outcome, description; build(i, model) makes the i-th packet under test (sent
    on `port`), setup(i, model) the valid first packet of its flow when the kind needs one; `vip`
    names the flow's VIP for replies."""

    def __init__(self, name, expect, about, build, setup=None, n=2, port=0, vip=None):
        self.name, self.expect, self.about, self.build = name, expect, about, build
        self.setup, self.n, self.port, self.vip = setup, n, port, vip


# Kinds whose correct outcome (their `expect`) Sluice does not deliver yet: kind -> what happens
# instead. check_corpus.py reports them as KNOWN-FAIL while they still fail, and fails the test
# as soon as one passes (so the entry gets removed with the fix).
KNOWN_FAILURES = {}

T = 12  # where the data-offset byte sits in a TCP header


def kinds():
    """Every kind. build(i, model) returns the i-th packet under test (bytes, port)."""
    K = []

    def add(name, expect, about, build, **kw):
        K.append(Kind(name, expect, about, build, **kw))

    def c4(i, **kw):  # a nat IPv4 TCP SYN, the raw material of most IPv4 kinds
        return bytes(client_pkt(kw.pop("vip", "nat4tcp"), 41000 + i, **kw))

    def c6(i, **kw):
        return bytes(client_pkt(kw.pop("vip", "nat6tcp"), 41000 + i, **kw))

    # -- Ethernet, runts, VLAN ---------------------------------------------------------------
    add("runt_1_byte", "runt", "a single byte", lambda i, m: c4(i)[:1])
    add("runt_13_bytes", "runt", "an Ethernet header one byte short", lambda i, m: c4(i)[:13])
    add("eth_only_ipv4", "truncated_l3", "Ethernet header with EtherType IPv4 and nothing after",
        lambda i, m: c4(i)[:14])
    add("eth_only_ipv6", "truncated_l3", "Ethernet header with EtherType IPv6 and nothing after",
        lambda i, m: c6(i)[:14])
    add("eth_only_arp", "truncated_arp", "Ethernet header with EtherType ARP and nothing after",
        lambda i, m: eth_hdr(0x0806))
    add("vlan_tag_missing", "bad_vlan", "EtherType 802.1Q and no tag", lambda i, m: eth_hdr(0x8100))
    add("vlan_tag_cut", "bad_vlan", "802.1Q tag cut after 2 of its 4 bytes",
        lambda i, m: c4(i, vlan=0)[:16])
    add("vlan_then_nothing", "truncated_l3", "802.1Q tag saying IPv4, nothing after it",
        lambda i, m: c4(i, vlan=0)[:18])
    add("vlan_ipv4_cut_19", "truncated_l3", "802.1Q tag, then 19 bytes of an IPv4 header",
        lambda i, m: c4(i, vlan=0)[:18 + 19])
    add("vlan_ipv6_cut_39", "truncated_l3", "802.1Q tag, then 39 bytes of an IPv6 header",
        lambda i, m: c6(i, vlan=0)[:18 + 39])
    add("double_vlan_8100", "bad_vlan", "two stacked 802.1Q tags (QinQ with 0x8100 outside)",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / Dot1Q(vlan=0) / Dot1Q(vlan=200) /
                           client_pkt("nat4tcp", 41000 + i)[IP]))
    add("vlan_then_8021ad", "bad_vlan", "an 802.1Q tag whose inner EtherType is 802.1ad",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / Dot1Q(vlan=0, type=0x88A8) /
                           Dot1Q(vlan=200) / client_pkt("nat4tcp", 41000 + i)[IP]))
    add("outer_8021ad", "unknown_ethertype", "802.1ad S-tag outside (only 802.1Q is understood)",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / Dot1AD(vlan=0) / Dot1Q(vlan=200) /
                           client_pkt("nat4tcp", 41000 + i)[IP]))
    add("ethertype_lldp", "unknown_ethertype", "EtherType 0x88cc with 46 bytes",
        lambda i, m: eth_hdr(0x88CC) + bytes(46))
    add("ethertype_mpls", "unknown_ethertype", "MPLS label stack over an IPv4 TCP SYN to a VIP",
        lambda i, m: eth_hdr(0x8847) + bytes.fromhex("000641ff") + c4(i)[14:])
    add("ethertype_8023_length", "unknown_ethertype", "802.3 length field (0x002e) with LLC",
        lambda i, m: eth_hdr(0x002E) + bytes.fromhex("424203") + bytes(43))
    add("vlan_unknown_inner", "unknown_ethertype", "802.1Q tag with inner EtherType 0x88b5",
        lambda i, m: c4(i, vlan=0)[:16] + b"\x88\xb5" + bytes(46))
    add("vlan_tcp_nat4", "foreign_vlan", "802.1Q-tagged SYN to a nat VIP, on a VLAN Sluice does not serve",
        lambda i, m: c4(i, vlan=100))
    add("vlan_priority_tcp_nat4", "forwarded", "priority-tagged (VID 0) SYN to a nat VIP: untagged side, tag removed",
        lambda i, m: c4(i, vlan=0))
    add("own_source_snat4", "own_source", "SYN to a nat VIP from Sluice's own SNAT address (spoofed)",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=SNAT4, dst=VIP["nat4tcp"].addr) /
                           TCP(sport=41000 + i, dport=VIP["nat4tcp"].port, flags="S")))
    add("own_source_vip6", "own_source", "SYN to a fullnat VIP from a VIP address (spoofed)",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src=VIP["nat6tcp"].addr, dst=VIP["fullnat6tcp"].addr) /
                           TCP(sport=41000 + i, dport=VIP["fullnat6tcp"].port, flags="S")))
    add("foreign_unicast_mac", "foreign_mac", "SYN to a nat VIP addressed to another host's MAC",
        lambda i, m: b"\x02\x00\x00\x00\x77\x77" + c4(i)[6:])
    add("other_port_mac", "foreign_mac", "SYN to a nat VIP on the client port, to the backend port's MAC",
        lambda i, m: bytes.fromhex(PORT_MAC[1].replace(":", "")) + c4(i)[6:])
    add("broadcast_to_vip", "foreign_mac", "UDP to a nat VIP sent to the Ethernet broadcast address",
        lambda i, m: b"\xff" * 6 + bytes(client_pkt("nat4udp", 41000 + i))[6:])
    add("multicast6_to_vip", "foreign_mac", "UDP to an IPv6 nat VIP sent to an IPv6 multicast MAC",
        lambda i, m: b"\x33\x33\x00\x00\x00\x10" + bytes(client_pkt("nat6udp", 41000 + i))[6:])

    # -- ARP ---------------------------------------------------------------------------------
    arp = bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") /
                ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT4, pdst=VIP["nat4tcp"].addr))
    add("arp_cut_27", "truncated_arp", "ARP request for a VIP, 27 of its 28 bytes", lambda i, m: arp[:14 + 27])
    add("arp_vlan_cut_20", "truncated_arp", "802.1Q-tagged ARP request, 20 bytes of ARP",
        lambda i, m: arp[:12] + b"\x81\x00\x00\x00" + arp[12:14 + 20])
    add("arp_hlen_8", "arp_ignored", "ARP request for a VIP claiming 8-byte hardware addresses",
        lambda i, m: poke(arp, 14 + 4, 8))

    # -- IPv4 header ---------------------------------------------------------------------------
    add("ipv4_cut_19", "truncated_l3", "19 bytes of an IPv4 header", lambda i, m: c4(i)[:14 + 19])
    add("ipv4_version_6", "bad_ip_version", "EtherType IPv4, version 6 in the header",
        lambda i, m: poke(c4(i), 14, 0x65, fix=14))
    add("ipv4_version_0", "bad_ip_version", "EtherType IPv4, version 0 in the header",
        lambda i, m: poke(c4(i), 14, 0x05, fix=14))
    add("ipv6_version_4", "bad_ip_version", "EtherType IPv6, version 4 in the header",
        lambda i, m: poke(c6(i), 14, 0x40 | (c6(i)[14] & 0x0F)))
    add("ipv6_ethertype_ipv4_packet", "bad_ip_version", "a whole IPv4 TCP SYN under EtherType IPv6",
        lambda i, m: eth_hdr(0x86DD) + c4(i)[14:])
    add("ipv4_ihl_0", "bad_ihl", "IHL 0", lambda i, m: poke(c4(i), 14, 0x40, fix=14))
    add("ipv4_ihl_4", "bad_ihl", "IHL 4 (16 bytes)", lambda i, m: poke(c4(i), 14, 0x44, fix=14))
    add("ipv4_ihl_beyond_frame", "bad_ihl", "IHL 15 (60 bytes) in a frame with 40 bytes of IP",
        lambda i, m: poke(c4(i), 14, 0x4F, fix=14))
    add("ipv4_ihl_beyond_total", "bad_ip_length", "IHL 15 in a long frame whose total length is 40",
        lambda i, m: set16(poke(c4(i, payload=bytes(40)), 14, 0x4F), 16, 40, fix=14))
    add("ipv4_total_above_frame", "bad_ip_length", "total length 20 bytes more than the frame holds",
        lambda i, m: set16(c4(i), 16, 60, fix=14))
    add("ipv4_total_below_ihl", "bad_ip_length", "total length 19, below the 20-byte header",
        lambda i, m: set16(c4(i), 16, 19, fix=14))
    add("ipv4_total_cuts_tcp", "truncated_l4", "total length leaves 12 bytes of a TCP header",
        lambda i, m: set16(c4(i), 16, 32, fix=14))
    add("ipv4_total_cuts_tcp_options", "bad_l4_length",
        "TCP data offset 8 (32 bytes) but total length leaves 24 bytes of segment",
        lambda i, m: set16(poke(c4(i), 14 + 20 + T, 0x80) + bytes(12), 16, 44, fix=14))
    add("ipv4_padding_nat4", "forwarded", "SYN with 6 bytes of Ethernet padding after the IP packet",
        lambda i, m: c4(i) + bytes.fromhex("a5a5a5a5a5a5"))
    add("ipv4_bad_header_checksum", "bad_ip_checksum", "IPv4 header checksum off by 0x0101",
        lambda i, m: set16(c4(i), 24, struct.unpack("!H", c4(i)[24:26])[0] ^ 0x0101))
    add("ipv4_options_bad_checksum", "bad_ip_checksum", "IPv4 with a Router Alert option and a bad checksum",
        lambda i, m: set16(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                                 IP(src=CLIENT4, dst=VIP["nat4tcp"].addr, options=[IPOption_Router_Alert()]) /
                                 TCP(sport=41000 + i, dport=80, flags="S")), 24, 0x1234))

    def opts4(vip, options, i):
        v = VIP[vip]
        return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=CLIENT4, dst=v.addr, options=options) /
                     (TCP(sport=41000 + i, dport=v.port, flags="S") if v.proto == "tcp" else
                      UDP(sport=41000 + i, dport=v.port) / Raw(b"query")))

    add("ipv4_option_router_alert_nat4", "forwarded", "IPv4 Router Alert option (IHL 6), nat TCP",
        lambda i, m: opts4("nat4tcp", [IPOption_Router_Alert()], i))
    add("ipv4_option_nops_fullnat4", "forwarded", "IPv4 options: 4 NOPs (IHL 6), fullnat UDP",
        lambda i, m: opts4("fullnat4udp", [IPOption_NOP()] * 4, i))
    add("ipv4_options_max_dsr4", "forwarded", "IPv4 with 40 bytes of NOP options (IHL 15), dsr TCP",
        lambda i, m: opts4("dsr4tcp", [IPOption_NOP()] * 40, i))
    add("ipv4_option_lsrr_nat4", "source_route",
        "loose source route through the VIP to 192.0.2.200: not a connection to the VIP (and its TCP "
        "checksum covers the final destination, not the address Sluice rewrites)",
        lambda i, m: opts4("nat4tcp", [IPOption_LSRR(routers=["192.0.2.200"])], i))
    add("ipv4_fragment_first", "forwarded", "IPv4 first fragment (MF set, offset 0): balanced like any packet",
        lambda i, m: set16(c4(i, payload=bytes(64)), 20, 0x2000, fix=14))
    add("ipv4_fragment_last", "fragment", "IPv4 last fragment (offset 64 bytes, MF clear), its first one never seen",
        lambda i, m: set16(set16(c4(i, payload=bytes(64)), 18, 0x7000 + i), 20, 0x0008, fix=14))
    add("ipv4_fragment_df_mf", "forwarded", "IPv4 with DF and MF both set: a first fragment",
        lambda i, m: set16(c4(i), 20, 0x6000, fix=14))
    add("ipv4_fragment_tiny_first", "bad_fragment", "IPv4 first fragment with 12 bytes of TCP (RFC 1858)",
        lambda i, m: set16(set16(c4(i)[:14 + 20 + 12], 16, 32), 20, 0x2000, fix=14))
    add("ipv4_fragment_tcp_offset_8", "bad_fragment", "IPv4 TCP fragment at offset 8: overwrites the flags (RFC 1858)",
        lambda i, m: set16(c4(i), 20, 0x0001, fix=14))
    add("ipv4_df_nat4", "forwarded", "DF set (not a fragment), nat TCP",
        lambda i, m: set16(c4(i), 20, 0x4000, fix=14))
    add("ipv4_reserved_flag_fullnat4", "forwarded", "the reserved flag bit set (not a fragment), fullnat TCP",
        lambda i, m: set16(c4(i, vip="fullnat4tcp"), 20, 0x8000, fix=14))
    add("ipv4_ttl_1_nat4", "ttl_expired", "TTL 1 to a nat VIP", lambda i, m: c4(i, ttl=1))
    add("ipv4_ttl_0_nat4", "ttl_expired", "TTL 0 to a nat VIP", lambda i, m: c4(i, ttl=0))
    add("ipv4_ttl_1_fullnat4", "ttl_expired", "TTL 1 to a fullnat VIP",
        lambda i, m: c4(i, vip="fullnat4udp", ttl=1, payload=b"q"))
    add("ipv4_ttl_1_dsr4", "forwarded", "TTL 1 to a dsr VIP: dsr does not route, TTL unchanged",
        lambda i, m: c4(i, vip="dsr4tcp", ttl=1))

    # -- TCP / UDP / ICMP over IPv4 --------------------------------------------------------------
    add("tcp4_header_absent", "truncated_l4", "IPv4 protocol TCP, total length 20: no TCP header",
        lambda i, m: set16(c4(i)[:34], 16, 20, fix=14))
    add("tcp4_cut_19", "truncated_l4", "19 bytes of TCP header, lengths consistent",
        lambda i, m: set16(c4(i)[:34 + 19], 16, 39, fix=14))
    add("tcp4_data_offset_0", "bad_l4_length", "TCP data offset 0", lambda i, m: poke(c4(i), 34 + T, 0x00))
    add("tcp4_data_offset_4", "bad_l4_length", "TCP data offset 4 (16 bytes)", lambda i, m: poke(c4(i), 34 + T, 0x40))
    add("tcp4_data_offset_past_end", "bad_l4_length", "TCP data offset 15 (60 bytes) on a 30-byte segment",
        lambda i, m: poke(c4(i, payload=b"0123456789"), 34 + T, 0xF0))
    add("tcp4_bad_checksum_nat4", "forwarded", "TCP checksum off by 0x1111, nat: stays off by 0x1111",
        lambda i, m: l4_bad_csum(c4(i, payload=b"hello")))
    add("tcp4_bad_checksum_fullnat4", "forwarded", "TCP checksum off by 0x0f0f, fullnat",
        lambda i, m: l4_bad_csum(c4(i, vip="fullnat4tcp", payload=b"hello"), 0x0F0F))
    add("tcp4_bad_checksum_dsr4", "forwarded", "TCP checksum off by 0x1111, dsr: untouched",
        lambda i, m: l4_bad_csum(c4(i, vip="dsr4tcp")))
    add("udp4_header_absent", "truncated_l4", "IPv4 protocol UDP, total length 20",
        lambda i, m: set16(c4(i, vip="nat4udp")[:34], 16, 20, fix=14))
    add("udp4_cut_7", "truncated_l4", "7 bytes of UDP header, lengths consistent",
        lambda i, m: set16(c4(i, vip="nat4udp")[:41], 16, 27, fix=14))
    add("udp4_length_above_ip", "bad_l4_length", "UDP length 4 more than the IP payload",
        lambda i, m: set16(c4(i, vip="nat4udp", payload=b"query"), 38, 17))
    add("udp4_length_below_ip", "bad_l4_length", "UDP length 4 less than the IP payload",
        lambda i, m: set16(c4(i, vip="nat4udp", payload=b"query"), 38, 9))
    add("udp4_length_below_8", "bad_l4_length", "UDP length 4", lambda i, m: set16(c4(i, vip="nat4udp", payload=b"q"), 38, 4))
    add("udp4_bad_checksum_nat4", "forwarded", "UDP checksum off by 0x1111, nat",
        lambda i, m: l4_bad_csum(c4(i, vip="nat4udp", payload=b"query")))
    add("udp4_zero_checksum_nat4", "forwarded", "IPv4 UDP without checksum (0), nat: stays 0",
        lambda i, m: set16(c4(i, vip="nat4udp", payload=b"query"), 40, 0))
    add("udp4_zero_checksum_fullnat4", "forwarded", "IPv4 UDP without checksum (0), fullnat: stays 0",
        lambda i, m: set16(c4(i, vip="fullnat4udp", payload=b"query"), 40, 0))
    add("icmp4_cut_4", "truncated_l4", "4 bytes of ICMP to a VIP address",
        lambda i, m: set16(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=CLIENT4, dst=VIP["nat4tcp"].addr) /
                                 ICMP(type=8, id=i))[:38], 16, 24, fix=14))
    add("icmp4_unreach_quoting_cut_ip", "icmp_bad_quote",
        "ICMP fragmentation-needed to a VIP address quoting 10 bytes of an IPv4 header",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src="192.0.2.1", dst=VIP["nat4tcp"].addr) /
                           ICMP(type=3, code=4, nexthopmtu=1400) / Raw(c4(i)[14:24])))
    add("icmp4_unreach_quoting_ihl_4", "icmp_bad_quote",
        "ICMP port unreachable to a fullnat VIP address quoting a header with IHL 4 and no ports",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src="192.0.2.1", dst=VIP["fullnat4tcp"].addr) /
                           ICMP(type=3, code=3) / Raw(poke(c4(i), 14, 0x44)[14:34])))
    add("icmp4_unreach_no_flow", "icmp_no_flow",
        "ICMP fragmentation-needed to a VIP address quoting a reply of a flow that does not exist",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src="192.0.2.1", dst=VIP["nat4tcp"].addr) /
                           ICMP(type=3, code=4, nexthopmtu=1400) /
                           Raw(bytes(IP(src=VIP["nat4tcp"].addr, dst=CLIENT4) /
                                     TCP(sport=VIP["nat4tcp"].port, dport=50000 + i, flags="A"))[:28])))
    add("icmp4_echo_fragment", "fragment", "first fragment of an ICMP echo request to a VIP (only TCP/UDP are followed)",
        lambda i, m: set16(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=CLIENT4, dst=VIP["nat4tcp"].addr) /
                                 ICMP(type=8, id=i) / Raw(bytes(32))), 20, 0x2000, fix=14))
    add("tcp4_vip_address_other_port", "no_vip", "TCP SYN to a nat VIP's address on port 81",
        lambda i, m: c4(i, dport=81))
    add("udp4_vip_address_tcp_port", "no_vip", "UDP to a TCP-only VIP port (dsr VIP address, port 80)",
        lambda i, m: c4(i, vip="dsr4udp", dport=80, payload=b"q"))
    add("gre4_to_vip_address", "unsupported_l4", "GRE (protocol 47) to a VIP address",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=CLIENT4, dst=VIP["nat4tcp"].addr, proto=47) /
                           Raw(bytes(4) + c4(i)[14:])))

    # -- IPv6 header and extension headers -------------------------------------------------------
    def plen(b, n):
        return set16(b, 18, n)

    add("ipv6_cut_39", "truncated_l3", "39 bytes of an IPv6 header", lambda i, m: c6(i)[:14 + 39])
    add("ipv6_payload_beyond_frame", "bad_ip_length", "IPv6 payload length 8 more than the frame holds",
        lambda i, m: plen(c6(i), 28))
    add("ipv6_payload_0_tcp", "truncated_l4", "IPv6 payload length 0, next header TCP", lambda i, m: plen(c6(i), 0))
    add("ipv6_padding_nat6", "forwarded", "IPv6 SYN with 6 bytes of Ethernet padding",
        lambda i, m: c6(i) + bytes.fromhex("5a5a5a5a5a5a"))
    add("ipv6_hop_limit_1_nat6", "ttl_expired", "hop limit 1 to a nat VIP", lambda i, m: c6(i, ttl=1))
    add("ipv6_hop_limit_1_fullnat6", "ttl_expired", "hop limit 1 to a fullnat VIP",
        lambda i, m: c6(i, vip="fullnat6tcp", ttl=1))
    add("ipv6_hop_limit_1_dsr6", "forwarded", "hop limit 1 to a dsr VIP: unchanged",
        lambda i, m: c6(i, vip="dsr6tcp", ttl=1))

    def ext6(i, ext, vip="nat6tcp", **kw):
        return bytes(client_pkt(vip, 41000 + i, ext=ext, **kw))

    def v6raw(i, nh, tail, vip="nat6tcp"):  # IPv6 to a VIP address, next header nh, then raw bytes
        v = VIP[vip]
        return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src=CLIENT6, dst=v.addr, nh=nh) / Raw(tail))

    def tcp6(i):  # a TCP header to put behind raw extension headers (its checksum is moot there)
        return bytes(client_pkt("nat6tcp", 41000 + i)[TCP])

    add("ipv6_hbh_cut", "bad_ext_header", "hop-by-hop header of 4 bytes (payload length 4)",
        lambda i, m: v6raw(i, 0, bytes([6, 0, 1, 0])))
    add("ipv6_hbh_overlong", "bad_ext_header", "hop-by-hop header claiming 48 bytes in a 28-byte payload",
        lambda i, m: v6raw(i, 0, bytes([6, 5]) + bytes(6) + tcp6(i)))
    add("ipv6_hbh_zero_length_nat6", "forwarded", "minimal hop-by-hop header (length 0: 8 bytes of PadN), nat",
        lambda i, m: ext6(i, IPv6ExtHdrHopByHop(options=[PadN(optdata=bytes(4))])))
    add("ipv6_hbh_not_first", "bad_ext_header", "hop-by-hop header after a destination-options header",
        lambda i, m: ext6(i, IPv6ExtHdrDestOpt(nh=0) / IPv6ExtHdrHopByHop()))
    add("ipv6_routing_cut", "bad_ext_header", "routing header of 6 bytes",
        lambda i, m: v6raw(i, 43, bytes([6, 0, 4, 0, 0, 0])))
    add("ipv6_routing_overlong", "bad_ext_header", "routing header claiming 24 bytes before a 20-byte TCP header",
        lambda i, m: v6raw(i, 43, bytes([6, 2, 4, 0]) + bytes(4) + tcp6(i)[:12]))
    add("ipv6_routing_segleft_0_nat6", "forwarded", "segment routing header, segments left 0, nat",
        lambda i, m: ext6(i, IPv6ExtHdrSegmentRouting(addresses=[VIP["nat6tcp"].addr, "2001:db8:9::1"],
                                                      segleft=0, lastentry=1)))
    add("ipv6_routing_segleft_1_nat6", "bad_ext_header",
        "segment routing header with the VIP as a waypoint (segments left 1, final destination elsewhere): "
        "not a connection to the VIP",
        lambda i, m: ext6(i, IPv6ExtHdrSegmentRouting(addresses=["2001:db8:9::1", VIP["nat6tcp"].addr],
                                                      segleft=1, lastentry=1)))
    add("ipv6_dstopts_cut", "bad_ext_header", "destination-options header of 5 bytes",
        lambda i, m: v6raw(i, 60, bytes([6, 0, 1, 1, 0])))
    add("ipv6_dstopts_overlong", "bad_ext_header", "destination-options header claiming 2048 bytes",
        lambda i, m: v6raw(i, 60, bytes([6, 255]) + bytes(6) + tcp6(i)))
    add("ipv6_dstopts_zero_length_fullnat6", "forwarded", "minimal destination-options header, fullnat",
        lambda i, m: ext6(i, IPv6ExtHdrDestOpt(), vip="fullnat6tcp"))
    add("ipv6_7_ext_headers_nat6", "forwarded", "hop-by-hop then 6 destination-options headers, nat",
        lambda i, m: ext6(i, IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() /
                          IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()))
    add("ipv6_8_ext_headers", "bad_ext_header", "8 extension headers before TCP (more than Sluice walks)",
        lambda i, m: ext6(i, IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() /
                          IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()))
    add("ipv6_ext_then_nothing", "truncated_l4", "hop-by-hop header ending the payload, next header TCP",
        lambda i, m: v6raw(i, 0, bytes([6, 0, 1, 4]) + bytes(4)))
    add("ipv6_fragment_first", "forwarded", "IPv6 fragment header, M set, offset 0: balanced like any packet",
        lambda i, m: ext6(i, IPv6ExtHdrFragment(m=1, id=0x1000 + i)))
    add("ipv6_fragment_last", "fragment", "IPv6 fragment header, offset 64 bytes, M clear, first one never seen",
        lambda i, m: ext6(i, IPv6ExtHdrFragment(m=0, offset=8, id=0x7000 + i)))
    add("ipv6_fragment_atomic", "forwarded", "atomic fragment (offset 0, M clear: RFC 6946), a plain packet",
        lambda i, m: ext6(i, IPv6ExtHdrFragment(m=0, offset=0, id=0x1000 + i)))
    add("ipv6_fragment_cut", "bad_ext_header", "fragment header cut after 4 bytes",
        lambda i, m: v6raw(i, 44, bytes([6, 0, 0, 1])))
    add("ipv6_ah", "bad_ext_header", "authentication header before TCP",
        lambda i, m: ext6(i, AH(nh=6, spi=0x100 + i, icv=bytes(12))))
    add("ipv6_esp", "bad_ext_header", "ESP to a VIP address",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src=CLIENT6, dst=VIP["nat6tcp"].addr) /
                           ESP(spi=0x100 + i, seq=1, data=bytes(24))))
    add("ipv6_no_next_header", "bad_ext_header", "next header 59 (none) to a VIP address",
        lambda i, m: v6raw(i, 59, bytes(8)))

    # -- TCP / UDP / ICMPv6 over IPv6 ------------------------------------------------------------
    add("tcp6_cut_19", "truncated_l4", "19 bytes of TCP over IPv6, lengths consistent",
        lambda i, m: plen(c6(i)[:54 + 19], 19))
    add("tcp6_data_offset_4", "bad_l4_length", "TCP data offset 4 over IPv6", lambda i, m: poke(c6(i), 54 + T, 0x40))
    add("tcp6_data_offset_past_end", "bad_l4_length", "TCP data offset 15 on a 24-byte IPv6 segment",
        lambda i, m: poke(c6(i, payload=b"abcd"), 54 + T, 0xF0))
    add("tcp6_bad_checksum_nat6", "forwarded", "TCP checksum off by 0x1111 over IPv6, nat",
        lambda i, m: l4_bad_csum(c6(i, payload=b"hello")))
    add("tcp6_bad_checksum_fullnat6", "forwarded", "TCP checksum off by 0x8001 over IPv6, fullnat",
        lambda i, m: l4_bad_csum(c6(i, vip="fullnat6tcp", payload=b"hello"), 0x8001))
    add("udp6_cut_7", "truncated_l4", "7 bytes of UDP over IPv6",
        lambda i, m: plen(c6(i, vip="nat6udp")[:54 + 7], 7))
    add("udp6_length_wrong", "bad_l4_length", "UDP length 2 more than the IPv6 payload",
        lambda i, m: set16(c6(i, vip="nat6udp", payload=b"query"), 58, 15))
    add("udp6_bad_checksum_fullnat6", "forwarded", "UDP checksum off by 0x1111 over IPv6, fullnat",
        lambda i, m: l4_bad_csum(c6(i, vip="fullnat6udp", payload=b"query")))
    add("udp6_zero_checksum_nat6", "udp6_zero_checksum", "IPv6 UDP with checksum 0 to a nat VIP",
        lambda i, m: set16(c6(i, vip="nat6udp", payload=b"query"), 60, 0))
    add("udp6_zero_checksum_dsr6", "udp6_zero_checksum", "IPv6 UDP with checksum 0 to a dsr VIP",
        lambda i, m: set16(c6(i, vip="dsr6udp", payload=b"query"), 60, 0))
    add("icmp6_cut_4", "truncated_l4", "4 bytes of ICMPv6 to a VIP address",
        lambda i, m: plen(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                                IPv6(src=CLIENT6, dst=VIP["nat6tcp"].addr) / ICMPv6EchoRequest(id=i))[:58], 4))
    add("icmp6_too_big_quoting_cut_ip", "icmp_bad_quote",
        "ICMPv6 packet-too-big to a VIP address quoting 20 bytes of an IPv6 header",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src="2001:db8:1::1", dst=VIP["nat6tcp"].addr) /
                           ICMPv6PacketTooBig(mtu=1280) / Raw(c6(i)[14:34])))
    add("icmp6_ns_cut", "nd_ignored", "neighbour solicitation for a VIP with 16 of its 24 bytes",
        lambda i, m: plen(bytes(Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:10") /
                                IPv6(src=CLIENT6, dst="ff02::1:ff00:10", hlim=255) /
                                ICMPv6ND_NS(tgt=VIP["nat6tcp"].addr))[:54 + 16], 16))
    add("icmp6_ns_hop_limit_64", "nd_ignored", "neighbour solicitation for a VIP with hop limit 64",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:10") /
                           IPv6(src=CLIENT6, dst="ff02::1:ff00:10", hlim=64) /
                           ICMPv6ND_NS(tgt=VIP["nat6tcp"].addr) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)))
    add("udp6_vip_address_other_port", "no_vip", "UDP to a nat VIP's IPv6 address on port 54",
        lambda i, m: c6(i, vip="nat6udp", dport=54, payload=b"q"))
    add("tcp6_dsr_vip_other_port", "no_vip", "TCP SYN to a dsr VIP's IPv6 address on port 443",
        lambda i, m: c6(i, vip="dsr6tcp", dport=443))
    add("sctp6_to_vip_address", "unsupported_l4", "SCTP (132) to a fullnat VIP's IPv6 address",
        lambda i, m: v6raw(i, 132, struct.pack("!HHI", 41000 + i, 80, 1) + bytes(8), vip="fullnat6tcp"))

    # -- sizes -----------------------------------------------------------------------------------
    add("giant_9217", "oversize", "a 9217-byte frame (TCP to a nat VIP)",
        lambda i, m: c4(i, payload=bytes(9217 - 54)), n=1)
    add("giant_16000", "oversize", "a 16000-byte IPv6 frame", lambda i, m: c6(i, payload=bytes(16000 - 74)), n=1)
    add("jumbo_9216_nat4", "forwarded", "a 9216-byte frame (largest the harness takes), nat TCP",
        lambda i, m: c4(i, flags="S", payload=bytes(range(256)) * 35 + bytes(9216 - 54 - 256 * 35)), n=1)

    # -- replies (backend side), after a valid first packet of the flow ------------------------------
    def reply_kind(name, expect, about, vip, mutate, setup_payload=b"", flags="SA", ttl=64, payload=b""):
        v = VIP[vip]

        def setup(i, m):
            return c4(i, vip=vip, payload=setup_payload) if v.fam == 4 else c6(i, vip=vip, payload=setup_payload)

        def build(i, m):
            return mutate(bytes(backend_pkt(m, vip, 41000 + i, flags=flags, ttl=ttl, payload=payload)))

        add(name, expect, about, build, setup=setup, port=1, vip=vip)

    reply_kind("reply_tcp_bad_checksum_nat4", "replied", "backend SYN-ACK with TCP checksum off by 0x1111, nat",
               "nat4tcp", l4_bad_csum)
    reply_kind("reply_tcp_bad_checksum_fullnat4", "replied",
               "backend SYN-ACK with TCP checksum off by 0x2222, fullnat", "fullnat4tcp",
               lambda b: l4_bad_csum(b, 0x2222))
    reply_kind("reply_udp_bad_checksum_fullnat6", "replied", "backend UDP answer with checksum off by 0x1111, fullnat",
               "fullnat6udp", l4_bad_csum, setup_payload=b"query", payload=b"answer")
    reply_kind("reply_udp_zero_checksum_nat4", "replied", "backend IPv4 UDP answer without checksum, nat: stays 0",
               "nat4udp", lambda b: set16(b, 40, 0), setup_payload=b"query", payload=b"answer")
    reply_kind("reply_udp6_zero_checksum_nat6", "udp6_zero_checksum", "backend IPv6 UDP answer with checksum 0",
               "nat6udp", lambda b: set16(b, 60, 0), setup_payload=b"query", payload=b"answer")
    reply_kind("reply_ttl_1_fullnat4", "ttl_expired", "backend SYN-ACK with TTL 1, fullnat", "fullnat4tcp",
               lambda b: b, ttl=1)
    reply_kind("reply_tcp_cut_nat6", "truncated_l4", "backend SYN-ACK cut to 12 bytes of TCP, nat",
               "nat6tcp", lambda b: plen(b[:54 + 12], 12))
    add("reply_without_flow_nat4", "no_flow", "a backend's SYN-ACK to a client no flow knows",
        lambda i, m: bytes(Ether(src=VIP["nat4tcp"].bmac, dst=PORT_MAC[1]) /
                           IP(src=VIP["nat4tcp"].baddr, dst="192.0.2.99") /
                           TCP(sport=8080, dport=41000 + i, flags="SA")), port=1)
    # -- TCP that no connection sends, and TCP that cannot open a flow -----------------------------
    for fl, what in (("", "NULL scan: no flag at all"), ("FPU", "XMAS scan: FIN, PSH, URG without ACK"),
                     ("SF", "SYN+FIN"), ("SR", "SYN+RST"), ("F", "FIN without ACK"), ("SRAFPU", "every flag")):
        for fam in (4, 6):
            add("tcp_flags_%s_v%d" % (fl.lower() or "null", fam), "bad_tcp_flags",
                "%s, to a nat IPv%d VIP with no flow" % (what, fam),
                lambda i, m, fl=fl, fam=fam: c4(i, flags=fl) if fam == 4 else c6(i, flags=fl))
    add("tcp_client_synack_no_flow", "tcp_no_flow", "a SYN-ACK from the client side that matches no flow, nat",
        lambda i, m: c4(i, flags="SA"))
    add("tcp_rst_no_flow_fullnat", "tcp_no_flow",
        "an RST that matches no flow, fullnat (no translation to send it with)",
        lambda i, m: c4(i, vip="fullnat4tcp", flags="R"))

    # -- tunnel VIPs: broken packets are refused before the mode matters ---------------------------
    def t4(i, **kw):
        return c4(i, vip=kw.pop("vip", "tunnel4tcp"), **kw)

    def t6(i, **kw):
        return c6(i, vip=kw.pop("vip", "tunnel6tcp"), **kw)

    add("ipv4_bad_header_checksum_tunnel4", "bad_ip_checksum", "IPv4 header checksum off by 0x0101, to a tunnel VIP",
        lambda i, m: set16(t4(i), 24, struct.unpack("!H", t4(i)[24:26])[0] ^ 0x0101))
    add("ipv4_total_above_frame_tunnel4", "bad_ip_length",
        "total length 20 bytes more than the frame holds, to a tunnel VIP (nothing to wrap past the frame)",
        lambda i, m: set16(t4(i), 16, 60, fix=14))
    add("ipv4_ihl_4_tunnel4", "bad_ihl", "IHL 4, to a tunnel VIP", lambda i, m: poke(t4(i), 14, 0x44, fix=14))
    add("tcp4_data_offset_4_tunnel4", "bad_l4_length", "TCP data offset 4, to a tunnel VIP",
        lambda i, m: poke(t4(i), 34 + T, 0x40))
    add("udp4_length_above_ip_tunnel4", "bad_l4_length", "UDP length 4 more than the IP payload, to a tunnel VIP",
        lambda i, m: set16(t4(i, vip="tunnel4udp", payload=b"query"), 38, 17))
    add("ipv4_fragment_tiny_first_tunnel4", "bad_fragment",
        "IPv4 first fragment with 12 bytes of TCP (RFC 1858), to a tunnel VIP",
        lambda i, m: set16(set16(t4(i)[:14 + 20 + 12], 16, 32), 20, 0x2000, fix=14))
    add("ipv4_fragment_last_tunnel4", "fragment", "IPv4 last fragment to a tunnel VIP, its first one never seen",
        lambda i, m: set16(set16(t4(i, payload=bytes(64)), 18, 0x7100 + i), 20, 0x0008, fix=14))
    add("tcp_flags_sf_tunnel4", "bad_tcp_flags", "SYN+FIN to a tunnel VIP with no flow", lambda i, m: t4(i, flags="SF"))
    add("tcp_client_synack_tunnel6", "tcp_no_flow", "a client's SYN-ACK of no flow, to an IPv6 tunnel VIP",
        lambda i, m: t6(i, flags="SA"))
    add("own_source_tunnel_source4", "own_source",
        "SYN to a tunnel VIP from Sluice's own tunnel source address (spoofed)",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src=TUNSRC4, dst=VIP["tunnel4tcp"].addr) /
                           TCP(sport=41000 + i, dport=VIP["tunnel4tcp"].port, flags="S")))
    add("tcp4_tunnel_vip_other_port", "no_vip", "TCP SYN to a tunnel VIP's address on port 81",
        lambda i, m: t4(i, dport=81))
    add("udp6_zero_checksum_tunnel6", "udp6_zero_checksum", "IPv6 UDP with checksum 0 to a tunnel VIP",
        lambda i, m: set16(t6(i, vip="tunnel6udp", payload=b"query"), 60, 0))
    add("ipv6_hbh_overlong_tunnel6", "bad_ext_header",
        "hop-by-hop header claiming 48 bytes in a 28-byte payload, to a tunnel VIP",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src=CLIENT6, dst=VIP["tunnel6tcp"].addr, nh=0) /
                           Raw(bytes([6, 5]) + bytes(6) + tcp6(i))))
    add("tcp6_cut_19_tunnel6", "truncated_l4", "19 bytes of TCP over IPv6, lengths consistent, to a tunnel VIP",
        lambda i, m: plen(t6(i)[:54 + 19], 19))

    # -- tunnel headers sent TO Sluice: it encapsulates, it never decapsulates ---------------------
    add("ipip4_to_tunnel_vip", "unsupported_l4",
        "IPv4 in IPv4 (protocol 4) to a tunnel VIP's address, carrying a SYN to that VIP",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                           IP(src=CLIENT4, dst=VIP["tunnel4tcp"].addr, proto=4) / Raw(t4(i)[14:])))
    add("ipv6in4_to_vip", "unsupported_l4", "IPv6 in IPv4 (protocol 41) to a nat VIP's address",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                           IP(src=CLIENT4, dst=VIP["nat4tcp"].addr, proto=41) / Raw(t6(i)[14:])))
    add("ipv6in6_to_tunnel_vip", "unsupported_l4",
        "IPv6 in IPv6 (next header 41) to a tunnel VIP's address, carrying a SYN to that VIP",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                           IPv6(src=CLIENT6, dst=VIP["tunnel6tcp"].addr, nh=41) / Raw(t6(i)[14:])))
    add("ipip4in6_to_tunnel_vip", "unsupported_l4",
        "IPv4 in IPv6 (next header 4) to a tunnel VIP's IPv6 address",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) /
                           IPv6(src=CLIENT6, dst=VIP["tunnel6tcp"].addr, nh=4) / Raw(t4(i)[14:])))
    add("gue4_to_tunnel_source", "no_flow",
        "GUE (UDP to port 6080, an IPv4 SYN inside) to the tunnel source address: UDP to an address of "
        "Sluice's that no flow answers to",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IP(src="198.51.100.41", dst=TUNSRC4) /
                           UDP(sport=49152 + i, dport=6080) / Raw(t4(i)[14:])))
    add("gue6_to_tunnel_source", "no_flow",
        "GUE over IPv6 (UDP to port 6080, an IPv6 SYN inside) to the tunnel source address",
        lambda i, m: bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC[0]) / IPv6(src="2001:db8:be::41", dst=TUNSRC6) /
                           UDP(sport=49152 + i, dport=6080) / Raw(t6(i)[14:])))
    return K


# ---- output ------------------------------------------------------------------------------------

T0 = 1_000_000  # microseconds: the first packet at 1 s of virtual time
GAP = 1000      # 1 ms apart


def play(k, m, first, t0):
    """Inputs and expected outputs per port of kind k: [(ts_us, bytes)] each, with model m."""
    ins, outs = {0: [], 1: []}, {0: [], 1: []}
    ts = t0
    if k.setup:
        for i in range(first, first + k.n):
            fr = k.setup(i, m)
            ins[0].append((ts, fr))
            p, out = m.forward(fr)
            outs[p].append((ts, out))
            ts += GAP
    for i in range(first, first + k.n):
        fr = k.build(i, m)
        ins[k.port].append((ts, fr))
        if k.expect == "forwarded":
            p, out = m.forward(fr)
            outs[p].append((ts, out))
        elif k.expect == "replied":
            v = VIP[k.vip]
            p, out = m.reply(fr, v.name, CLIENT4 if v.fam == 4 else CLIENT6, 41000 + i)
            outs[p].append((ts, out))
        ts += GAP
    return ins, outs


def generate(outdir, workers):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "sluice.conf"), "w") as f:
        f.write(render_config())
    manifest = {"workers": workers, "config": "sluice.conf", "kinds": []}
    # Every kind but the known failures once more, one virtual second apart, in one replay
    # (with one model, so fullnat's SNAT ports carry on from kind to kind).
    together = {"in": {0: [], 1: []}, "expected": {0: [], 1: []}, "drops": {}, "forwarded": 0, "replies": 0,
                "oversize": 0, "kinds": 0}
    shared = Model(workers)
    names = set()
    for k_idx, k in enumerate(kinds()):
        assert k.name not in names, k.name
        names.add(k.name)
        # Packet i is built with client port 41000 + i: no two kinds share a flow.
        first = 4 * k_idx
        assert k.n <= 4
        ins, outs = play(k, Model(workers), first, T0)
        setup_n = k.n if k.setup else 0
        entry = {"name": k.name, "expect": k.expect, "about": k.about, "packets": k.n, "setup": setup_n,
                 "in": {}, "expected": {}}
        for p in (0, 1):
            entry["in"][str(p)] = "%s.in-port%d.pcap" % (k.name, p)
            entry["expected"][str(p)] = "%s.expected-port%d.pcap" % (k.name, p)
            write_pcap(os.path.join(outdir, entry["in"][str(p)]), ins[p])
            write_pcap(os.path.join(outdir, entry["expected"][str(p)]), outs[p])
        if k.name in KNOWN_FAILURES:
            entry["known_failure"] = KNOWN_FAILURES[k.name]
        else:
            ins, outs = play(k, shared, first, T0 + k_idx * 1_000_000)
            for p in (0, 1):
                together["in"][p] += ins[p]
                together["expected"][p] += outs[p]
            together["kinds"] += 1
            together["forwarded"] += setup_n + (k.n if k.expect == "forwarded" else 0)
            together["replies"] += k.n if k.expect == "replied" else 0
            together["oversize"] += k.n if k.expect == "oversize" else 0
            if k.expect not in ("forwarded", "replied", "oversize"):
                together["drops"][k.expect] = together["drops"].get(k.expect, 0) + k.n
        manifest["kinds"].append(entry)
    unknown = set(KNOWN_FAILURES) - names
    assert not unknown, "KNOWN_FAILURES names no kind: %s" % sorted(unknown)
    for what in ("in", "expected"):
        for p in (0, 1):
            path = "all.%s-port%d.pcap" % (what, p)
            write_pcap(os.path.join(outdir, path), together[what][p])
            together[what][p] = path
    manifest["all"] = together
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--workers", type=int, default=1, help="worker count the SNAT ports are predicted for")
    a = ap.parse_args()
    man = generate(a.outdir, a.workers)
    print("gen_malformed: %d kinds in %s" % (len(man["kinds"]), a.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
