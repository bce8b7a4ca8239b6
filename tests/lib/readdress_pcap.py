#!/usr/bin/python3
"""readdress_pcap.py IN OUT MAC: copies a capture, its unicast frames addressed to MAC.

The golden captures are addressed to the replay harness's port MACs; the sluice binary on
DPDK's net_pcap has MACs of its own (02:70:63:61:70:0N for net_pcapN), and drops frames
for another MAC as foreign_mac. Broadcast and multicast frames keep their address.
"""
import sys

from scapy.all import PcapReader, PcapWriter

src, dst, mac = sys.argv[1:4]
with PcapReader(src) as r, PcapWriter(dst, sync=True) as w:
    for p in r:
        if not int(p.dst.split(":")[0], 16) & 1:
            p.dst = mac
        w.write(p)
