#!/usr/bin/env python3
"""Tunnel decapsulation in user space, for the lab's tunnel backends on kernels without the
ipip, sit, ip6_tunnel or fou modules.

    tunnel_decap.py TUN GUE_PORT STATS_FILE

Run inside a backend's namespace. It takes what the kernel would have handed its tunnel
devices: IPv4 and IPv6 packets inside IPv4 or IPv6 (IP protocols 4 and 41, through raw
sockets: with no protocol handler registered the kernel hands them to raw sockets only) and
GUE variant 1 (RFC 8086: the inner IP packet right after the UDP header) to GUE_PORT over
either family. Each inner packet, unchanged, is written to the TUN device TUN (created and
configured beforehand, e.g. `ip tuntap add dev TUN mode tun`), where the kernel receives it as
from any tunnel device and delivers it to the VIP on loopback. The backend's answers leave by
its routes, not back through here.

On SIGUSR1 it writes its counters to STATS_FILE, inner-in-outer per encapsulation
("4in4=N 6in4=N 4in6=N 6in6=N gue-4in4=N ... bad=N"); SIGTERM stops it.
"""
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
PROTO_IPIP, PROTO_IPV6 = 4, 41


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    tun_name, gue_port, stats_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", tun_name.encode(), IFF_TUN | IFF_NO_PI))

    # (socket, outer family, inner version or None for GUE): IPv4 raw sockets pass the outer
    # header up, IPv6 ones do not.
    socks = []
    for fam, proto in ((socket.AF_INET, PROTO_IPIP), (socket.AF_INET, PROTO_IPV6),
                       (socket.AF_INET6, PROTO_IPIP), (socket.AF_INET6, PROTO_IPV6)):
        socks.append((socket.socket(fam, socket.SOCK_RAW, proto), fam, 4 if proto == PROTO_IPIP else 6))
    gue = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    gue.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # GUE over IPv4 too
    gue.bind(("::", gue_port))
    socks.append((gue, socket.AF_INET6, None))
    for s, _, _ in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
    by_fd = {e[0].fileno(): e for e in socks}
    counts = {f"{pre}{i}in{o}": 0 for pre in ("", "gue-") for o in (4, 6) for i in (4, 6)}
    counts["bad"] = 0

    def dump(*_):
        with open(stats_file + ".tmp", "w") as f:
            f.write(" ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
        os.replace(stats_file + ".tmp", stats_file)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    while True:
        for fd, _ in poller.poll():
            s, fam, inner = by_fd[fd]
            for _ in range(64):  # a burst per wake-up, then the others get their turn
                try:
                    pkt, peer = s.recvfrom(65535)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    raise
                outer = 4 if fam == socket.AF_INET else 6
                if inner is None and peer[0].startswith("::ffff:"):
                    outer = 4  # GUE over IPv4, on the dual-stack socket
                if fam == socket.AF_INET:
                    pkt = pkt[(pkt[0] & 0x0F) * 4:]
                version = pkt[0] >> 4 if pkt else 0
                # The inner packet's version must match the protocol that carried it (GUE
                # variant 1 tells them apart by this nibble alone; variant 0 is not spoken here).
                if version not in (4, 6) or version != (inner or version):
                    counts["bad"] += 1
                    continue
                counts[f"{'gue-' if inner is None else ''}{version}in{outer}"] += 1
                try:
                    os.write(tun, pkt)
                except OSError:
                    counts["bad"] += 1


if __name__ == "__main__":
    sys.exit(main())
