#!/usr/bin/env python3
"""The control plane under stress and bad input: a running Sluice on vdevs (net_null, no
hugepages, no PCI), driven through sluicectl and its Unix socket. Plain python3, root.

  control_stress.py SLUICE SLUICECTL

Each check prints one PASS/FAIL line per verdict, with the numbers it measured:
  1. 4,096 nat VIPs (2,048 IPv4: 8 addresses x 256 ports in 203.0.113.0/24; 2,048 IPv6:
     8 addresses x 256 ports in 2001:db8:3::/64), 2 backends each (static neighbor MACs, no
     kernel side), default Maglev table (65537). Twenty `sluicectl set-weight` calls, timed
     one by one (wall clock), once with `-l 0` (one lcore) and once with `-l 0-1`; VmRSS and
     VmHWM of sluice before and after. Target: median <= 50 ms per change, and the peak
     memory (VmHWM) grows by at most about one VIP's tables (allowed: 16 MiB). A run stops
     early (and says so) after 25 s of calls or 4 GiB of growth, so a slow build cannot
     take the machine or the test's time.
  2. Slow clients: 40 connections that send nothing and 20 that send half a line and stall,
     held open (what the server closes is opened again 100 ms later) while 50 `sluicectl
     stats` calls are made over ~5 s as root. Run twice: the flood from one root process (a
     stuck or leaking agent of the same uid), then from 20 processes of `nobody` (a member of
     the socket's group; an unprivileged user can fork, so a per-process cap alone must not
     be what saves root). Target: all 50 calls succeed each time.
  3. Roles: as `nobody` (a member of the socket's group, so the socket lets it in), `list`,
     `stats` and `explain` work; set-weight, drain, set-state, add-backend, remove-backend
     and reload are refused with an error containing "read-only" or "not allowed" and change
     nothing; as root, set-weight and reload work.
  4. The root set-weight of check 3 is logged by sluice with who made it: a log line naming
     the backend and the weight, with uid=0 and pid=<the sluicectl process>.
  5. Allocation failure: (a) start under `prlimit --as=1.5 GiB` with --flow-capacity
     67108864 (12 GiB of flow tables): a non-zero exit, not by a signal, no "terminate
     called", and a message about memory; (b) start under the smallest of 1, 1.25, 1.5, 2 GiB
     that fits, then rewrite the file with 4,096 VIPs of table=655373 (5 GiB of Maglev
     tables) and reload, once with `sluicectl reload` and once with SIGHUP: sluice stays up,
     keeps the old VIPs, and reports the error (sluicectl gets an error; sluice's log says
     the reload was rejected).
  6. Empty reload: a comment-only file (`sluicectl reload`) and an empty file (SIGHUP) are
     refused with "no VIP configured"; the old VIPs stay.

Exit 0 if every verdict passed, 1 if any failed, 77 when not root.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOGROUP_GID = 65534
MIB = 1024 * 1024
GIB = 1024 * MIB
READ_ONLY_WORDS = ("read-only", "not allowed")

RESULTS = []


def verdict(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    RESULTS.append((name, ok))


def info(msg):
    print(f"     {msg}", flush=True)


# ---- the slow-client flood (runs in a child process, possibly as nobody) -----------------------

def flood_main(sock_path, n_idle, n_half, max_seconds, n_procs):
    """Holds n_idle silent and n_half half-line connections open on sock_path from n_procs
    forked processes (so a per-process cap does not simply stop it), opening a new one 100 ms
    after the server closes one, until SIGTERM (or max_seconds). Prints one JSON line when
    the first round is open, then one JSON line of the summed counts on exit."""
    kinds = ["idle"] * n_idle + ["half"] * n_half
    children = []
    for k in range(n_procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                flood_worker(sock_path, kinds[k::n_procs], max_seconds, w)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(w)
        children.append((pid, os.fdopen(r)))
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    opened = 0
    for _, f in children:
        line = f.readline()
        opened += json.loads(line)["open"] if line.strip() else 0
    print(json.dumps({"ready": True, "open": opened, "processes": n_procs}), flush=True)
    deadline = time.monotonic() + max_seconds
    while not stop[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    total = {"uid": os.getuid(), "processes": n_procs}
    counters = {"connect_failed": Counter(), "server_said": Counter()}
    for pid, f in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid, f in children:
        line = f.readline()
        os.waitpid(pid, 0)
        if not line.strip():
            continue
        st = json.loads(line)
        for key, v in st.items():
            if isinstance(v, dict):
                counters[key].update(v)
            else:
                total[key] = total.get(key, 0) + v
    total.update({k: dict(v) for k, v in counters.items()})
    print(json.dumps(total), flush=True)


def flood_worker(sock_path, kinds, max_seconds, wfd):
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    conns, pending = {}, []  # pending: (when, kind) to open (again)
    st = {"opened": 0, "reopened": 0, "closed_by_server": 0, "connect_failed": Counter(), "server_said": Counter()}

    def open_one(kind, again):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(sock_path)
            if kind == "half":
                s.send(b"stat")  # half a line: no newline, then nothing more
        except OSError as e:
            s.close()
            st["connect_failed"][os.strerror(e.errno) if e.errno else str(e)] += 1
            pending.append((time.monotonic() + 0.1, kind))
            return
        conns[s] = kind
        st["opened"] += 1
        st["reopened"] += 1 if again else 0

    for kind in kinds:
        open_one(kind, False)
    os.write(wfd, (json.dumps({"open": len(conns)}) + "\n").encode())
    deadline = time.monotonic() + max_seconds
    while not stop[0] and time.monotonic() < deadline:
        try:
            readable, _, _ = select.select(list(conns), [], [], 0.05)
        except InterruptedError:
            continue
        now = time.monotonic()
        for s in readable:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                said = data.decode(errors="replace").splitlines()[0][:100]
                st["server_said"][re.sub(r"\d+", "N", said)] += 1
                continue  # read on until the server closes
            kind = conns.pop(s)
            s.close()
            st["closed_by_server"] += 1
            pending.append((now + 0.1, kind))
        due = [p for p in pending if p[0] <= now]
        pending[:] = [p for p in pending if p[0] > now]
        for _, kind in due:
            open_one(kind, True)
    for s in conns:
        s.close()
    st["open_at_end"] = len(conns)
    st["connect_failed"] = dict(st["connect_failed"])
    st["server_said"] = dict(st["server_said"])
    os.write(wfd, (json.dumps(st) + "\n").encode())


# ---- Sluice processes ---------------------------------------------------------------------------

class Sluice:
    def __init__(self, test, tag, conf, lcores="0", extra=(), as_limit=None):
        self.test = test
        self.prefix = f"sluice-cs-{os.getpid()}-{tag}"
        self.sock = os.path.join(test.work, f"{tag}.sock")
        self.log = os.path.join(test.work, f"{tag}.log")
        self.conf = conf
        argv = [test.sluice, "-l", lcores, "--no-pci", "--no-huge", "-m", "512", "--file-prefix", self.prefix,
                "--vdev", "net_null0", "--", "--config", conf, "--control-socket", self.sock, *extra]
        if as_limit:
            argv = ["prlimit", f"--as={as_limit}", *argv]  # prlimit execs: the pid is sluice's
        test.prefixes.append(self.prefix)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        test.procs.append(self.proc)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        """Seconds until `sluicectl list` answered; None if sluice exited or timed out."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                return None
            r = self.ctl("list", "--kv", timeout=30)
            if r.rc == 0:
                return time.monotonic() - t0
            time.sleep(0.2)
        return None

    def ctl(self, *args, user=None, timeout=15):
        return self.test.ctl(self.sock, *args, user=user, timeout=timeout)

    def mem(self):
        d = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "VmHWM", "VmSize", "VmPeak"):
                        d[k] = int(v.split()[0]) * 1024
        except OSError:
            pass
        return d

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def log_size(self):
        return os.path.getsize(self.log)

    def log_since(self, offset):
        with open(self.log, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def stop(self, grace=15):
        """SIGINT, then SIGKILL after `grace` s. Returns a description of how it ended."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                return f"still running {grace} s after SIGINT: killed"
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        return describe_rc(self.proc.returncode)


def describe_rc(rc):
    if rc is None:
        return "running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


class CtlResult:
    def __init__(self, rc, out, err, ms, pid):
        self.rc, self.out, self.err, self.ms, self.pid = rc, out, err, ms, pid

    def first_err(self):
        return (self.err.strip().splitlines() or [""])[0][:160]


# ---- configurations -----------------------------------------------------------------------------

def backends_of(i):
    """The two backends of VIP v<i>, as sluicectl takes them (and `list` prints them)."""
    k = i // 2
    if i % 2 == 0:
        return [f"198.51.100.{10 + k % 100}:8080", f"198.51.100.{110 + k % 100}:8080"]
    return [f"[2001:db8:2::{0x10 + k % 100:x}]:8080", f"[2001:db8:2::{0x80 + k % 100:x}]:8080"]


def config_text(n, table=None, weights=None):
    """n nat VIPs v0..v<n-1>, even ones IPv4, odd ones IPv6, 256 ports per address."""
    lines = [f"# written by tests/smoke/control_stress.py: {n} VIPs, documentation addresses only"]
    neighbors = set()
    t = f",table={table}" if table else ""
    for i in range(n):
        k = i // 2
        if i % 2 == 0:
            lines.append(f"vip = v{i},203.0.113.{1 + k // 256}:{1000 + k % 256}/tcp,nat{t}")
        else:
            lines.append(f"vip = v{i},[2001:db8:3::{1 + k // 256:x}]:{1000 + k % 256}/tcp,nat{t}")
        for j, b in enumerate(backends_of(i)):
            w = (weights or {}).get((i, j), 1)
            lines.append(f"backend = v{i},{b},weight={w}")
            neighbors.add(b.rsplit(":", 1)[0].strip("[]"))
    for j, a in enumerate(sorted(neighbors)):
        lines.append(f"neighbor = {a},02:00:00:00:{j // 256:02x}:{j % 256:02x}")
    lines += ["self = 198.51.100.1", "self = 2001:db8:2::1", ""]
    return "\n".join(lines)


def parse_list(text):
    """{(vip, backend): weight} and the set of VIP names from `sluicectl list`."""
    weights, vips, vip = {}, set(), None
    for line in text.splitlines():
        m = re.match(r"vip (\S+) ", line)
        if m:
            vip = m.group(1)
            vips.add(vip)
            continue
        m = re.match(r"\s+backend (\S+) .*?\bweight=(\d+)", line)
        if m and vip:
            weights[(vip, m.group(1))] = int(m.group(2))
    return weights, vips


def fmt_mib(b):
    return f"{b / MIB:.1f} MiB"


# ---- the test -----------------------------------------------------------------------------------

class Test:
    def __init__(self, sluice, sluicectl):
        self.sluice, self.sluicectl = sluice, sluicectl
        self.work = tempfile.mkdtemp(prefix="sluice-cs.")
        os.chmod(self.work, 0o755)  # nobody reaches the sockets in it (checks 2 and 3)
        self.prefixes, self.procs = [], []

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        for prefix in self.prefixes:
            shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def ctl(self, sock, *args, user=None, timeout=15):
        argv = [self.sluicectl, "--socket", sock, *args]
        if user == "nobody":
            argv = NOBODY + argv
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            return CtlResult(-1, out, f"sluicectl still waiting after {timeout} s", (time.monotonic() - t0) * 1000,
                             p.pid)
        return CtlResult(p.returncode, out, err, (time.monotonic() - t0) * 1000, p.pid)

    def open_socket_to_group(self, s):
        """The socket's group becomes nogroup, so `nobody` (gid nogroup) gets in through the group
        bits, as an operator in the socket's group would. Returns the mode as created."""
        st = os.stat(s.sock)
        os.chown(s.sock, -1, NOGROUP_GID)
        return f"{st.st_mode & 0o777:04o} uid {st.st_uid} gid {st.st_gid}"

    # ---- 1 ----------------------------------------------------------------------------------
    def check_many_vips(self):
        n, table = 4096, 65537
        conf = self.write("vips4096.conf", config_text(n))
        info(f"config: {n} nat VIPs (2048 IPv4 + 2048 IPv6), 2 backends each, table={table} "
             f"(one VIP's Maglev table: {table} x 2 B = {table * 2 // 1024} KiB)")
        for lcores in ("0", "0-1"):
            name = f"1 4096-VIPs set-weight -l {lcores}"
            s = Sluice(self, f"vips-l{lcores}", conf, lcores, ["--flow-capacity", "4096"])
            try:
                ready = s.wait_ready(90)
                if ready is None:
                    verdict(name, False, f"sluice not answering `list` ({s.stop()}):\n{s.log_text()[-2000:]}")
                    continue
                m0 = s.mem()
                info(f"-l {lcores}: up, `list` answered after {ready:.1f} s; VmRSS {fmt_mib(m0['VmRSS'])}, "
                     f"VmHWM {fmt_mib(m0['VmHWM'])}")
                times, errors, wanted = [], Counter(), {}
                stopped_early, t_start = "", time.monotonic()
                for k in range(20):
                    if time.monotonic() - t_start > 25:
                        stopped_early = f"stopped after {k} calls: 25 s budget spent"
                        break
                    grown = s.mem().get("VmRSS", 0) - m0["VmRSS"]
                    if grown > 4 * GIB:
                        stopped_early = f"stopped after {k} calls: VmRSS grew by {fmt_mib(grown)}"
                        break
                    i = (k * 211 + 5) % n
                    b = backends_of(i)[k % 2]
                    w = 2 + k
                    r = s.ctl("set-weight", f"v{i}", b, str(w), timeout=30)
                    times.append(r.ms)
                    if r.rc != 0:
                        errors[f"rc {r.rc}: {r.first_err()}"] += 1
                    wanted[(f"v{i}", b)] = w
                m1 = s.mem()
                listing = s.ctl("list", "--kv", timeout=60)
                applied = 0
                if listing.rc == 0:
                    got, _ = parse_list(listing.out)
                    applied = sum(1 for key, w in wanted.items() if got.get(key) == w)
                alive = s.alive()
                how = s.stop()
                if not times:
                    verdict(name, False, f"no call made ({stopped_early})")
                    continue
                med, mx = statistics.median(times), max(times)
                over = sum(1 for t in times if t > 50)
                hwm_growth = m1.get("VmHWM", 0) - m0["VmHWM"]
                rss_growth = m1.get("VmRSS", 0) - m0["VmRSS"]
                info(f"-l {lcores}: per call (ms): {' '.join(str(round(t)) for t in times)}")
                if errors:
                    info(f"-l {lcores}: failed calls: {dict(errors)}")
                if stopped_early:
                    info(f"-l {lcores}: {stopped_early}")
                info(f"-l {lcores}: VmRSS {fmt_mib(m0['VmRSS'])} -> {fmt_mib(m1.get('VmRSS', 0))} "
                     f"({'+' if rss_growth >= 0 else ''}{fmt_mib(rss_growth)}), VmHWM {fmt_mib(m0['VmHWM'])} -> "
                     f"{fmt_mib(m1.get('VmHWM', 0))} (+{fmt_mib(hwm_growth)}); sluice {how}")
                verdict(name + " latency", med <= 50 and not errors and applied == len(wanted) and alive,
                        f"{len(times)} calls, median {med:.0f} ms, max {mx:.0f} ms, {over} above 50 ms, "
                        f"{len(times) - sum(errors.values())} ok, {applied}/{len(wanted)} weights visible in "
                        f"`list` afterwards{'' if alive else ', sluice died'} (target: median <= 50 ms)")
                verdict(name + " memory", hwm_growth <= 16 * MIB,
                        f"peak (VmHWM) grew by {fmt_mib(hwm_growth)} over {len(times)} changes "
                        f"(target: about one VIP's tables, <= 16 MiB; one table is {table * 2 // 1024} KiB)")
            finally:
                s.stop()

    # ---- 2 ----------------------------------------------------------------------------------
    def check_slow_clients(self):
        conf = self.write("slow.conf", config_text(4))
        s = Sluice(self, "slow", conf, "0")
        try:
            if s.wait_ready(30) is None:
                verdict("2 slow clients", False, f"sluice did not start ({s.stop()}):\n{s.log_text()[-2000:]}")
                return
            mode = self.open_socket_to_group(s)
            info(f"socket as created: mode {mode}; group set to nogroup for the non-root flood")
            for who in ("root", "nobody"):
                name = f"2 slow clients ({who} flood, root stats)"
                procs = "1" if who == "root" else "20"
                argv = [sys.executable, os.path.abspath(__file__), "--flood", s.sock, "40", "20", "30", procs]
                if who == "nobody":
                    # nobody may not reach this file or this interpreter (e.g. under /root): a copy
                    # of the script in the work directory, and the system's python3 if there is one
                    copy = os.path.join(self.work, "flood.py")
                    shutil.copyfile(os.path.abspath(__file__), copy)
                    os.chmod(copy, 0o644)
                    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
                    argv = NOBODY + [python, copy] + argv[2:]
                flood = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True)
                self.procs.append(flood)
                ready_line = ""
                if select.select([flood.stdout], [], [], 10)[0]:
                    ready_line = flood.stdout.readline()
                if '"ready"' not in ready_line:
                    flood.kill()
                    _, ferr = flood.communicate()
                    verdict(name, False, f"the flood did not start: {ready_line!r} {ferr[-500:]}")
                    continue
                time.sleep(0.5)  # the server sees the flood before the first call
                ok, times, errs = 0, [], Counter()
                t0 = time.monotonic()
                for k in range(50):
                    delay = t0 + k * 0.1 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    r = s.ctl("stats", "--kv", timeout=10)
                    times.append(r.ms)
                    if r.rc == 0:
                        ok += 1
                    else:
                        errs[f"rc {r.rc}: {r.first_err()}"] += 1
                spread = time.monotonic() - t0
                flood.send_signal(signal.SIGTERM)
                try:
                    fout, ferr = flood.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    flood.kill()
                    fout, ferr = flood.communicate()
                try:
                    fst = json.loads(fout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    fst = {"error": (fout + ferr)[-300:]}
                nproc = fst.get("processes")
                info(f"{who} flood (uid {fst.get('uid')}, {nproc} process{'' if nproc == 1 else 'es'}): "
                     f"{json.loads(ready_line)['open']}/60 open at first, {fst.get('opened')} opened in all, "
                     f"{fst.get('closed_by_server')} closed by the server, connect failures "
                     f"{fst.get('connect_failed')}, server said {fst.get('server_said')}")
                if errs:
                    info(f"{who} flood: failed stats calls: {dict(errs)}")
                verdict(name, ok == 50 and s.alive(),
                        f"{ok}/50 `sluicectl stats` calls succeeded over {spread:.1f} s, median "
                        f"{statistics.median(times):.0f} ms, max {max(times):.0f} ms"
                        f"{'' if s.alive() else ', sluice died'} (target: 50/50)")
                time.sleep(1.2)  # the server drops what the flood left before the next run
        finally:
            s.stop()

    # ---- 3 and 4 ----------------------------------------------------------------------------
    def check_roles_and_audit(self):
        conf = self.write("roles.conf", config_text(4))
        s = Sluice(self, "roles", conf, "0")
        try:
            if s.wait_ready(30) is None:
                verdict("3 read-only role", False, f"sluice did not start ({s.stop()}):\n{s.log_text()[-2000:]}")
                verdict("4 change logged with uid/pid", False, "sluice did not start")
                return
            mode = self.open_socket_to_group(s)
            info(f"socket as created: mode {mode}; group set to nogroup so nobody can connect")
            b0, b1 = backends_of(0)
            before, _ = parse_list(s.ctl("list", "--kv").out)
            problems = []
            for args in (["list"], ["stats"], ["explain", "tcp", "192.0.2.10:40001", "203.0.113.1:1000"]):
                r = s.ctl(*args, user="nobody")
                info(f"nobody: sluicectl {' '.join(args)}: rc {r.rc}{'' if r.rc == 0 else ': ' + r.first_err()}")
                if r.rc != 0:
                    problems.append(f"'{args[0]}' failed for nobody (rc {r.rc}: {r.first_err()})")
            mutating = [["set-weight", "v0", b0, "7"], ["drain", "v0", b1], ["set-state", "v0", b1, "disabled"],
                        ["add-backend", "v0", "198.51.100.250:8080"], ["remove-backend", "v2", backends_of(2)[1]],
                        ["reload"]]
            for args in mutating:
                r = s.ctl(*args, user="nobody")
                said = r.first_err() or r.out.strip()[:100]
                refused = r.rc != 0 and any(wd in r.err.lower() for wd in READ_ONLY_WORDS)
                info(f"nobody: sluicectl {' '.join(args)}: rc {r.rc}: {said!r} -> "
                     f"{'refused as read-only' if refused else 'NOT refused as read-only'}")
                if not refused:
                    problems.append(f"'{args[0]}' by nobody: rc {r.rc} {said!r}")
            r = s.ctl("clear-counters", user="nobody")
            info(f"nobody: sluicectl clear-counters (not judged): rc {r.rc}: {(r.first_err() or r.out.strip())!r}")
            after, vips_after = parse_list(s.ctl("list", "--kv").out)
            if after != before:
                changed = sorted(set(after.items()) ^ set(before.items()))
                problems.append(f"nobody's commands changed the backends: {changed[:6]}")
            # Root: a change and a reload, both must work; the change is the one check 4 looks for.
            log_mark = s.log_size()
            r = s.ctl("set-weight", "v0", b0, "9")
            root_pid = r.pid
            weights, _ = parse_list(s.ctl("list", "--kv").out)
            if r.rc != 0 or weights.get(("v0", b0)) != 9:
                problems.append(f"root set-weight: rc {r.rc} {r.first_err()!r}, weight now {weights.get(('v0', b0))}")
            info(f"root: sluicectl set-weight v0 {b0} 9: rc {r.rc}, weight in list {weights.get(('v0', b0))}")
            r = s.ctl("reload")
            weights, _ = parse_list(s.ctl("list", "--kv").out)
            if r.rc != 0 or weights.get(("v0", b0)) != 1:
                problems.append(f"root reload: rc {r.rc} {r.first_err()!r}, weight now {weights.get(('v0', b0))}")
            info(f"root: sluicectl reload: rc {r.rc}, weight back to {weights.get(('v0', b0))} from the file")
            verdict("3 read-only role", not problems,
                    "nobody reads, cannot change; root changes" if not problems else "; ".join(problems))

            # 4: the set-weight line in sluice's log, with the peer's uid and pid.
            time.sleep(0.3)
            text = s.log_since(log_mark)
            addr = b0.rsplit(":", 1)[0]
            lines = [l for l in text.splitlines() if addr in l and "weight" in l]
            if not lines:
                verdict("4 change logged with uid/pid", False,
                        f"no log line names {b0} and its weight after the root set-weight; log since then:\n"
                        + "\n".join(text.splitlines()[-10:]))
            else:
                line = lines[0].strip()
                has_uid = re.search(r"\buid=0\b", line) is not None
                has_pid = re.search(rf"\bpid={root_pid}\b", line) is not None
                missing = [w for w, ok in ((f"uid=0", has_uid), (f"pid={root_pid} (the sluicectl process)", has_pid))
                           if not ok]
                verdict("4 change logged with uid/pid", not missing,
                        f"{line!r}" + (f": missing {', '.join(missing)}" if missing else ""))
        finally:
            s.stop()

    # ---- 5 ----------------------------------------------------------------------------------
    def check_allocation_failure(self):
        # (a) a start whose flow tables cannot be allocated.
        conf = self.write("alloc.conf", config_text(16))
        limit, cap = int(1.5 * GIB), 67108864
        s = Sluice(self, "alloc-start", conf, "0", ["--flow-capacity", str(cap)], as_limit=limit)
        try:
            s.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if s.alive():
            how = s.stop()
            verdict("5a allocation failure at start", False,
                    f"--flow-capacity {cap} under --as={limit} still running after 60 s ({how}): "
                    "the test's limit is not small enough")
        else:
            rc, text = s.proc.returncode, s.log_text()
            s.stop()
            tail = [l for l in text.splitlines() if l.strip() and not l.startswith(("EAL:", "TELEMETRY:"))][-4:]
            raw = [w for w in ("terminate called", "Aborted", "core dumped") if w in text]
            clear = [l for l in text.splitlines() if re.search(r"memory|allocat", l, re.I)
                     and "terminate called" not in l and "what()" not in l]
            ok = rc is not None and rc > 0 and not raw and bool(clear)
            why = []
            if rc is None or rc == 0:
                why.append("exit 0 (not a failure)")
            if raw:
                why.append(f"output has {raw}")
            if not clear:
                why.append("no message about memory")
            verdict("5a allocation failure at start", ok,
                    f"--flow-capacity {cap} (12 GiB of tables) under prlimit --as={limit / GIB:.2f} GiB: "
                    f"{describe_rc(rc)}; {'; '.join(why) + '; ' if why else ''}last lines: {' | '.join(tail)!r}")

        # (b) a reload that needs far more memory than the limit leaves.
        conf = self.write("pressure.conf", config_text(16))
        old_vips = {f"v{i}" for i in range(16)}
        s = None
        for lim in (GIB, int(1.25 * GIB), int(1.5 * GIB), 2 * GIB):
            cand = Sluice(self, f"pressure-{lim // MIB}", conf, "0", ["--flow-capacity", "1048576"], as_limit=lim)
            if cand.wait_ready(30) is not None:
                s, limit = cand, lim
                break
            info(f"does not start under --as={lim / GIB:.2f} GiB ({cand.stop()}); trying more")
        if s is None:
            verdict("5b reload under memory pressure", False, "sluice did not start under 2 GiB of address space")
            return
        try:
            m = s.mem()
            info(f"started under prlimit --as={limit / GIB:.2f} GiB: VmSize {fmt_mib(m.get('VmSize', 0))} "
                 f"(headroom {fmt_mib(limit - m.get('VmSize', 0))}), VmRSS {fmt_mib(m.get('VmRSS', 0))}")
            self.write("pressure.conf", config_text(4096, table=655373))
            info("config rewritten: 4096 VIPs with table=655373 (4096 x 1.25 MiB = 5 GiB of Maglev tables)")
            for how in ("sluicectl reload", "SIGHUP"):
                name = f"5b reload under memory pressure ({how})"
                mark = s.log_size()
                if how == "sluicectl reload":
                    r = s.ctl("reload", timeout=60)
                    reply = f"rc {r.rc} in {r.ms:.0f} ms: {(r.first_err() or r.out.strip())[:140]!r}"
                else:
                    os.kill(s.pid, signal.SIGHUP)
                    reply, r = "(none: a signal)", None
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 20 and s.alive():
                        time.sleep(0.3)
                        if "reload" in s.log_since(mark):
                            break
                time.sleep(0.5)
                alive = s.alive()
                listing = s.ctl("list", "--kv", timeout=30) if alive else None
                vips = parse_list(listing.out)[1] if listing and listing.rc == 0 else set()
                kept = vips == old_vips
                logged = [l.strip() for l in s.log_since(mark).splitlines() if l.strip()]
                log_says = [l for l in logged if re.search(r"reload", l, re.I)]
                why = []
                if not alive:
                    why.append(f"sluice died ({describe_rc(s.proc.returncode)})")
                elif not kept:
                    why.append(f"VIPs now {len(vips)} (was 16)")
                if r is not None and r.rc != 1:
                    why.append("sluicectl did not get an error")
                if alive and not log_says:
                    why.append("sluice's log does not mention the rejected reload")
                verdict(name, not why,
                        f"{'alive' if alive else 'DEAD'}, {len(vips)} VIPs listed ({'old config kept' if kept else 'not the old config'}); "
                        f"reply {reply}; log: {(log_says or logged[-3:] or ['nothing'])!r}"
                        + (f" -> {'; '.join(why)}" if why else ""))
                if not alive:
                    break
        finally:
            s.stop()

    # ---- 6 ----------------------------------------------------------------------------------
    def check_empty_reload(self):
        conf = self.write("empty.conf", config_text(4))
        s = Sluice(self, "empty", conf, "0")
        try:
            if s.wait_ready(30) is None:
                verdict("6 empty reload", False, f"sluice did not start ({s.stop()}):\n{s.log_text()[-2000:]}")
                return
            old = parse_list(s.ctl("list", "--kv").out)[1]
            for how, text in (("comment-only file, sluicectl reload", "# nothing here\n# (all commented out)\n"),
                              ("empty file, SIGHUP", "")):
                mark = s.log_size()
                with open(conf, "w") as f:
                    f.write(text)
                if how.endswith("sluicectl reload"):
                    r = s.ctl("reload")
                    said = r.first_err() or r.out.strip()
                    refused = r.rc == 1 and "no vip" in said.lower()
                else:
                    os.kill(s.pid, signal.SIGHUP)
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 5 and "reload" not in s.log_since(mark):
                        time.sleep(0.1)
                    said = " | ".join(l.strip() for l in s.log_since(mark).splitlines() if "reload" in l)
                    refused = "no vip" in said.lower()
                vips = parse_list(s.ctl("list", "--kv").out)[1] if s.alive() else set()
                ok = refused and vips == old and s.alive()
                verdict(f"6 empty reload ({how})", ok,
                        f"{'refused' if refused else 'NOT refused with no VIP configured'}: {said[:160]!r}; "
                        f"{len(vips)}/{len(old)} old VIPs listed{'' if s.alive() else ', sluice died'}")
        finally:
            s.stop()


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--flood":
        flood_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
        return 0
    if len(sys.argv) != 3:
        print("usage: control_stress.py SLUICE SLUICECTL", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("SKIP: needs root (DPDK, setpriv to nobody, prlimit)")
        return 77
    for tool in ("setpriv", "prlimit"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not found (util-linux)")
            return 77
    test = Test(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))  # meson's timeout: clean up on the way out
    t_all = time.monotonic()
    try:
        for n, check in (("1", test.check_many_vips), ("2", test.check_slow_clients),
                         ("3+4", test.check_roles_and_audit), ("5", test.check_allocation_failure),
                         ("6", test.check_empty_reload)):
            t0 = time.monotonic()
            print(f"== check {n}", flush=True)
            check()
            print(f"   (check {n}: {time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        test.cleanup()
    failed = [name for name, ok in RESULTS if not ok]
    print(f"== {len(RESULTS) - len(failed)}/{len(RESULTS)} passed in {time.monotonic() - t_all:.1f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
