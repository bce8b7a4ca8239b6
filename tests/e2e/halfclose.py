#!/usr/bin/python3
"""Both ends of tests/e2e/halfclose.sh: a server that streams chunks after its client's FIN,
and the client that sends a request, shuts down its sending side and reads to the end.

  halfclose.py serve PORT OUTDIR
      Listens on [::]:PORT (IPv4 too). A connection sends "PING\\n": it gets "PONG\\n" and is
      closed. A connection sends "HALFCLOSE ID CHUNKS SIZE GAP\\n" and then its FIN: once the
      server has read that EOF it sends CHUNKS random chunks of SIZE bytes, GAP seconds apart,
      closes, and writes OUTDIR/server-ID.json (peer, eof, bytes sent, their SHA-256). Anything
      else (a probe, a port scan) is closed.

  halfclose.py ping ADDR PORT
      One PING through to PONG (exit 0), within 2 s.

  halfclose.py run ADDR PORT LOCAL_PORT ID CHUNKS SIZE GAP OUTFILE
      Connects from LOCAL_PORT, sends the request, shutdown(SHUT_WR), reads until the server's
      EOF (giving up after GAP + 25 s without data), writes OUTFILE (bytes, SHA-256, when each
      burst of data arrived, seconds after the FIN). Exit 0 when the server closed normally.
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def peer_addr(sa):
    a = sa[0]
    return a[7:] if a.startswith("::ffff:") else a


def handle(conn, peer, outdir):
    conn.settimeout(15)
    buf = b""
    try:
        while True:
            d = conn.recv(4096)
            if not d:
                break  # the client's FIN
            buf += d
            if buf == b"PING\n":
                conn.sendall(b"PONG\n")
                conn.close()
                return
            if len(buf) > 1024:
                conn.close()
                return
    except OSError:
        conn.close()
        return
    words = buf.decode(errors="replace").split()
    if len(words) != 5 or words[0] != "HALFCLOSE":
        conn.close()
        return
    ident, chunks, size, gap = words[1], int(words[2]), int(words[3]), float(words[4])
    res = {"id": ident, "peer": peer_addr(peer), "eof": True, "sent": 0, "sha256": "", "error": ""}
    h = hashlib.sha256()
    t0 = time.monotonic()
    res["chunk_times"] = []
    conn.settimeout(gap + 30)
    try:
        for i in range(chunks):
            if i:
                time.sleep(gap)
            chunk = os.urandom(size)
            res["chunk_times"].append(round(time.monotonic() - t0, 1))
            conn.sendall(chunk)
            h.update(chunk)
            res["sent"] += len(chunk)
        # The client's side stays shut: nothing more may arrive (recv returns EOF at once).
        conn.settimeout(5)
        res["eof_after"] = conn.recv(1) == b""
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        res["error"] = f"{type(e).__name__}: {e}"
    finally:
        res["sha256"] = h.hexdigest()
        conn.close()
        write_json(os.path.join(outdir, f"server-{ident}.json"), res)


def serve(port, outdir):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(64)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=handle, args=(conn, peer, outdir), daemon=True).start()


def connect(addr, port, local_port=0, timeout=2.0):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if local_port:
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", local_port))
    s.settimeout(timeout)
    s.connect((addr, port))
    return s


def ping(addr, port):
    try:
        s = connect(addr, port)
        s.sendall(b"PING\n")
        got = b""
        while len(got) < 5:
            d = s.recv(16)
            if not d:
                break
            got += d
        s.close()
        return 0 if got == b"PONG\n" else 1
    except OSError:
        return 1


def run(addr, port, local_port, ident, chunks, size, gap, outfile):
    res = {"id": ident, "bytes": 0, "sha256": "", "bursts": [], "eof": False, "error": ""}
    h = hashlib.sha256()
    try:
        s = connect(addr, port, local_port, timeout=5)
        s.sendall(f"HALFCLOSE {ident} {chunks} {size} {gap}\n".encode())
        s.shutdown(socket.SHUT_WR)  # our FIN: from here on the connection is half-closed
        t_fin = time.monotonic()
        last = None
        s.settimeout(gap + 25)
        while True:
            d = s.recv(65536)
            now = time.monotonic()
            if not d:
                res["eof"] = True
                break
            if last is None or now - last > 2:
                res["bursts"].append(round(now - t_fin, 1))
            last = now
            h.update(d)
            res["bytes"] += len(d)
        s.close()
    except socket.timeout:
        res["error"] = f"no data for {gap + 25:.0f} s"
    except OSError as e:
        res["error"] = f"{type(e).__name__}: {e}"
    res["sha256"] = h.hexdigest()
    write_json(outfile, res)
    return 0 if res["eof"] and not res["error"] else 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "serve":
        serve(int(argv[2]), argv[3])
    elif len(argv) == 4 and argv[1] == "ping":
        return ping(argv[2], int(argv[3]))
    elif len(argv) == 10 and argv[1] == "run":
        return run(argv[2], int(argv[3]), int(argv[4]), argv[5], int(argv[6]), int(argv[7]), float(argv[8]), argv[9])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
