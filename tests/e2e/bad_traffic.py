#!/usr/bin/python3
"""Sends malformed frames at a VIP, for the end-to-end lab.

   bad_traffic.py IFACE DST_MAC ROUNDS

Each round sends one frame of each kind below from IFACE to DST_MAC (Sluice's port); prints
the number of frames sent. Every kind must end up as a counted drop in Sluice, never at a
backend. Left out because the lab's plumbing cannot deliver them: runt frames (a veth does
not carry frames shorter than an Ethernet header) and IPv4 fragments (net_af_packet opens its
socket with PACKET_FANOUT_FLAG_DEFRAG, so the kernel holds a lone fragment for reassembly);
the golden replays cover both. Documentation addresses only."""
import sys

from scapy.all import IP, IPv6, TCP, UDP, Ether, Raw, conf, sendp

iface, dst_mac, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
conf.verb = 0
src_mac = "02:00:00:00:ee:01"
VIP4, VIP6 = "203.0.113.10", "2001:db8:3::10"
C4, C6 = "192.0.2.66", "2001:db8:1::66"


def eth(t=None):
    e = Ether(src=src_mac, dst=dst_mac)
    if t is not None:
        e.type = t
    return e


def good4():
    return IP(src=C4, dst=VIP4) / TCP(sport=5555, dport=80, flags="S")


kinds = [
    eth(0x0800) / bytes(good4())[:30],                                    # truncated TCP header
    eth() / IP(src=C4, dst=VIP4, ihl=4) / TCP(dport=80),                  # IHL < 5
    eth() / IP(src=C4, dst=VIP4, len=400) / TCP(dport=80),                # total length lies
    eth() / IP(src=C4, dst=VIP4, chksum=0x1234) / TCP(dport=80),          # bad header checksum
    eth() / IP(src=C4, dst=VIP4) / TCP(dport=80, dataofs=15),            # data offset past the end
    eth() / IP(src=C4, dst=VIP4, version=5) / TCP(dport=80),              # wrong IP version
    eth(0x88B5) / Raw(b"\x00" * 46),                                      # unknown EtherType
    eth() / IPv6(src=C6, dst=VIP6, plen=900) / TCP(dport=80),             # IPv6 payload beyond the frame
    eth() / IPv6(src=C6, dst=VIP6, nh=44) / Raw(b"\x06\x00\x00\x01" + b"\x00" * 20),  # IPv6 fragment
    eth() / IPv6(src=C6, dst=VIP6) / UDP(sport=1, dport=80, chksum=0),    # UDP6 without checksum
    eth(0x86DD) / bytes(IPv6(src=C6, dst=VIP6) / TCP(dport=80))[:50],     # truncated IPv6 TCP
]
frames = [bytes(k) for k in kinds]
for _ in range(rounds):
    sendp([Raw(f) for f in frames], iface=iface)
print(len(frames) * rounds)
