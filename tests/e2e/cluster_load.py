#!/usr/bin/env python3
"""Client traffic for the cluster lab (tests/e2e/lab_cluster.sh), run in its client namespace.

Every connection has its own source (address and port), so that the router's layer-4 ECMP hash
spreads them over the instances; the router is asked (`ip route get ... sport ... dport ...`,
the same hash as forwarding) which instance each flow takes.

  short  --vip ADDR --count N [--concurrency C]
         N connections of one request each (`Connection: close`); prints one line per backend
         ("be2 57"), then "failed N" and "elapsed_ms N".
  long   --vip ADDR --count N --bytes B --rate BYTES_PER_S --file FILE [--spread K] [--timeout S]
         N paced downloads of the first B bytes of FILE (a Range request for /big.bin), each
         checked against FILE's bytes by SHA-256. The client reads at RATE with a small receive
         buffer, so the server sends at that pace too. With --spread K the source ports are
         chosen so that the flows fall evenly on the router's K nexthops. Prints a line
         "plan src=ADDR sport=P via=NEXTHOP" per transfer, then "started" once every transfer
         has its headers, then at the end one line per transfer:
           xfer src=ADDR sport=P via=NEXTHOP result=ok|FAILURE bytes=N ms=N stall_ms=N
         (stall_ms: the longest wait for data).
  sticky --vip ADDR --port P --count N
         one connection from each of N client addresses (the first N of the 50) to VIP:P; prints
         "SRC BACKEND" per client (BACKEND "-": the connection failed), for persistence checks.
  stream --vip ADDR --rate PER_S --seconds S
         short connections at a steady rate, each given 5 s; prints "stream total=N ok=N
         failed=N slow=N max_ms=N slow_from_ms=T slow_to_ms=T failed_at_ms=T1,T2,..." (slow:
         over 500 ms, a lost SYN or SYN-ACK; times from the start).

Only the Python standard library; bounded in count and time.
"""
import argparse
import hashlib
import ipaddress
import json
import random
import socket
import subprocess
import sys
import threading
import time

ROUTER_NS = "sll-router"
SOURCES = range(10, 60)  # the client's addresses: 192.0.2.10-59, 2001:db8:1::10-59


def source(vip, i):
    if ipaddress.ip_address(vip).version == 4:
        return f"192.0.2.{SOURCES[i % len(SOURCES)]}"
    return f"2001:db8:1::{SOURCES[i % len(SOURCES)]}"


def family(vip):
    return socket.AF_INET if ipaddress.ip_address(vip).version == 4 else socket.AF_INET6


def nexthop(vip, src, sport):
    """The router's nexthop for this flow (its layer-4 hash), or "none"."""
    out = subprocess.run(
        ["ip", "-n", ROUTER_NS, "-j", "route", "get", vip, "from", src, "iif", "r0",
         "ipproto", "tcp", "sport", str(sport), "dport", "80"],
        capture_output=True, text=True, check=False)
    try:
        return json.loads(out.stdout)[0].get("gateway", "none")
    except (ValueError, IndexError):
        return "none"


def one_request(vip, i, timeout=3.0, port=80):
    """One connection, one request: the backend's name, or None."""
    s = socket.socket(family(vip), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source(vip, i), 0))
        s.connect((vip, port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return None
        words = body.split()
        return words[-1].decode() if words and words[-1].startswith(b"be") else None
    except OSError:
        return None
    finally:
        s.close()


def cmd_short(a):
    counts, failed, lock = {}, [0], threading.Lock()
    todo = iter(range(a.count))

    def work():
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            be = one_request(a.vip, i)
            with lock:
                if be is None:
                    failed[0] += 1
                else:
                    counts[be] = counts.get(be, 0) + 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for be in sorted(counts):
        print(be, counts[be])
    print("failed", failed[0])
    print("elapsed_ms", int((time.monotonic() - t0) * 1000))


def cmd_sticky(a):
    for i in range(a.count):
        print(source(a.vip, i), one_request(a.vip, i, port=a.port) or "-")


class Transfer:
    def __init__(self, vip, src, sport, via):
        self.vip, self.src, self.sport, self.via = vip, src, sport, via
        self.result, self.got, self.ms, self.stall_ms = "pending", 0, 0, 0
        self.headers = threading.Event()


def run_transfer(x, want, nbytes, rate, timeout):
    t0 = time.monotonic()
    deadline = t0 + timeout
    s = socket.socket(family(x.vip), socket.SOCK_STREAM)
    h = hashlib.sha256()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A small window: the server can only send as fast as this client reads.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(30)
        s.bind((x.src, x.sport))
        s.connect((x.vip, 80))
        s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: vip\r\nRange: bytes=0-{nbytes - 1}\r\n"
                  "Connection: close\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise EOFError("closed before the headers")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 206"):
            raise EOFError("status " + head.split(b"\r\n")[0].decode(errors="replace"))
        x.headers.set()
        h.update(body)
        x.got = len(body)
        start, last = time.monotonic(), time.monotonic()
        while x.got < nbytes:
            ahead = x.got - rate * (time.monotonic() - start)
            if ahead > 0:
                time.sleep(min(ahead / rate, 0.2))
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError("over the time bound")
            chunk = s.recv(min(16384, nbytes - x.got))
            now = time.monotonic()
            x.stall_ms = max(x.stall_ms, int((now - last) * 1000))
            last = now
            if not chunk:
                raise EOFError("closed early")
            h.update(chunk)
            x.got += len(chunk)
        x.result = "ok" if h.hexdigest() == want else "corrupt"
    except socket.timeout:
        x.result = "timeout"
    except (OSError, EOFError, TimeoutError) as e:
        x.result = type(e).__name__ if not str(e) else str(e).replace(" ", "_")[:40]
    finally:
        x.headers.set()
        x.ms = int((time.monotonic() - t0) * 1000)
        s.close()


def cmd_long(a):
    with open(a.file, "rb") as f:
        want = hashlib.sha256(f.read(a.bytes)).hexdigest()
    rnd = random.Random(a.seed)
    transfers, used, seen = [], set(), []
    for i in range(a.count):
        src = source(a.vip, i)
        for _ in range(200):
            sport = rnd.randrange(40000, 60000)
            if (src, sport) in used:
                continue
            via = nexthop(a.vip, src, sport)
            if a.spread <= 1:
                break
            # Transfer i takes the (i mod K)-th nexthop met.
            k = i % a.spread
            if (k < len(seen) and via == seen[k]) or (k >= len(seen) and via not in seen):
                break
        if via not in seen:
            seen.append(via)
        used.add((src, sport))
        transfers.append(Transfer(a.vip, src, sport, via))
    hops = {}
    for x in transfers:
        hops[x.via] = hops.get(x.via, 0) + 1
    for x in transfers:
        print(f"plan src={x.src} sport={x.sport} via={x.via}")
    sys.stdout.flush()
    threads = [threading.Thread(target=run_transfer, args=(x, want, a.bytes, a.rate, a.timeout))
               for x in transfers]
    for t in threads:
        t.start()
    for x in transfers:
        x.headers.wait(a.timeout)
    print("started", " ".join(f"{v}={n}" for v, n in sorted(hops.items())), flush=True)
    for t in threads:
        t.join()
    for x in transfers:
        print(f"xfer src={x.src} sport={x.sport} via={x.via} result={x.result} bytes={x.got} "
              f"ms={x.ms} stall_ms={x.stall_ms}")


def cmd_stream(a):
    lock = threading.Lock()
    res = {"ok": 0, "failed": 0, "max": 0, "at": [], "slow": []}
    t0 = time.monotonic()
    threads = []

    def one(i, at):
        t = time.monotonic()
        be = one_request(a.vip, i, timeout=5.0)
        took = int((time.monotonic() - t) * 1000)
        with lock:
            res["max"] = max(res["max"], took)
            if took > 500 or be is None:
                res["slow"].append(at)
            if be is None:
                res["failed"] += 1
                res["at"].append(str(at))
            else:
                res["ok"] += 1

    n = int(a.rate * a.seconds)
    for i in range(n):
        at = t0 + i / a.rate
        time.sleep(max(0.0, at - time.monotonic()))
        th = threading.Thread(target=one, args=(i, int((at - t0) * 1000)))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    slow = sorted(res["slow"])
    span = f"slow_from_ms={slow[0]} slow_to_ms={slow[-1]}" if slow else "slow_from_ms=- slow_to_ms=-"
    print(f"stream total={n} ok={res['ok']} failed={res['failed']} slow={len(slow)} max_ms={res['max']} "
          f"{span} failed_at_ms={','.join(res['at']) or 'none'}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("short")
    s.add_argument("--vip", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=8)
    lg = sub.add_parser("long")
    lg.add_argument("--vip", required=True)
    lg.add_argument("--count", type=int, required=True)
    lg.add_argument("--bytes", type=int, required=True)
    lg.add_argument("--rate", type=float, required=True)
    lg.add_argument("--file", required=True)
    lg.add_argument("--spread", type=int, default=0)
    lg.add_argument("--timeout", type=float, default=60)
    lg.add_argument("--seed", type=int, default=1)
    sk = sub.add_parser("sticky")
    sk.add_argument("--vip", required=True)
    sk.add_argument("--port", type=int, required=True)
    sk.add_argument("--count", type=int, required=True)
    st = sub.add_parser("stream")
    st.add_argument("--vip", required=True)
    st.add_argument("--rate", type=float, required=True)
    st.add_argument("--seconds", type=float, required=True)
    a = p.parse_args()
    if a.cmd == "short":
        assert 1 <= a.count <= 100000 and 1 <= a.concurrency <= 64
        cmd_short(a)
    elif a.cmd == "sticky":
        assert 1 <= a.count <= len(SOURCES) and 1 <= a.port <= 65535
        cmd_sticky(a)
    elif a.cmd == "long":
        assert 1 <= a.count <= 200 and a.bytes <= 64 << 20 and a.timeout <= 300
        cmd_long(a)
    else:
        assert 0 < a.rate <= 1000 and 0 < a.seconds <= 120
        cmd_stream(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
