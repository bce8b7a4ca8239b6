#!/usr/bin/env python3
"""UDP echo for the lab: large datagrams that the kernels on both ends fragment.

  udp_echo.py serve PORT                  echo every datagram back to its sender (IPv4 and IPv6)
  udp_echo.py ask ADDR PORT SIZE COUNT    send COUNT datagrams of SIZE random bytes, one at a
                                          time; print how many came back intact; exit 1 unless all
"""
import os
import socket
import sys


def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def ask(addr, port, size, count):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    s.connect((addr, port))
    good = 0
    for _ in range(count):
        msg = os.urandom(size)
        s.send(msg)
        try:
            good += s.recv(65535) == msg
        except socket.timeout:
            pass
    print("%d of %d datagrams of %d bytes echoed intact" % (good, count, size))
    return 0 if good == count else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 6 and sys.argv[1] == "ask":
        sys.exit(ask(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(__doc__)
