#!/usr/bin/env python3
"""scripts/systemd/sluice.service, checked and run the way systemd would run it.

PID 1 here is not systemd, so the test plays the service manager itself, from the unit file
(change the unit and this test follows it, or fails):
  1. `systemd-analyze verify` accepts the unit (with the binary path pointed at the build);
  2. the settings DPDK and operations depend on are there (Type=notify, EnvironmentFile,
     RuntimeDirectory, LimitMEMLOCK, Restart, ExecReload: --check-config on the file, then
     `sluicectl reload`, which waits for Sluice's answer);
  3. the example env file and configuration parse, and the example passes ExecStartPre;
  4. ExecStartPre and ExecStart run with a test env file (vdevs, no hugepages, documentation
     addresses only) and a $NOTIFY_SOCKET: READY=1 with a STATUS= arrives; ExecReload after
     a weight change gives RELOADING=1 (with MONOTONIC_USEC) then READY=1, and sluicectl shows
     the new weight; a broken file fails the reload (ExecReload exits non-zero, as `systemctl
     reload` would report) with one line of output, and Sluice never sees it; a file Sluice
     refuses (a restart-only setting changed) fails the reload too (sluicectl exits 1 with the
     reason), and gives RELOADING=1, READY=1 with "reload failed" in STATUS=, one log line, the old weight, and the periodic STATUS= keeps saying it; the
     stop signal gives STOPPING=1, exit 0 and the totals;
  5. once more with an abstract notify socket ('@name') and a single lcore (the worker runs
     the control core's turns): READY=1, then a clean stop.

  systemd_unit.py SLUICE SLUICECTL [UNIT]
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}", flush=True)


def parse_unit(path):
    """{section: [(key, value)]}, with systemd's comments and backslash continuations."""
    sections, current, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and line.lstrip().startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = (pending + line).strip(), ""
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                sections.setdefault(current, [])
                continue
            if current is None or "=" not in line:
                fail(f"{path}: cannot parse line {line!r}")
            key, value = line.split("=", 1)
            sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit, section, key):
    v = values(unit, section, key)
    if len(v) != 1:
        fail(f"[{section}] {key}= should appear once, found {v}")
    return v[0]


def parse_env_file(path):
    """systemd's EnvironmentFile= grammar: KEY=VALUE lines, # and ; comments, quotes."""
    env = {}
    with open(path) as f:
        text = f.read().replace("\\\n", "")
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if not m:
            fail(f"{path}:{n}: not KEY=VALUE: {line!r}")
        key, value = m.groups()
        words = shlex.split(value, comments=False, posix=True) if value else []
        env[key] = " ".join(words) if len(words) != 1 else words[0]
    return env


def expand(cmdline, env):
    """An Exec*= line as systemd turns it into argv: prefixes (-@:+!) dropped; a word that is
    exactly $VAR becomes the variable's whitespace-separated words, ${VAR} is substituted
    inside a word as one piece."""
    words = shlex.split(cmdline)
    words[0] = words[0].lstrip("-@:+!")
    argv = []
    for w in words:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", w)
        if m:
            argv.extend(env.get(m.group(1), "").split())
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda x: env.get(x.group(1), ""), w))
    return argv


def map_paths(argv, mapping):
    return [mapping.get(a, a) for a in argv]


class Notifications:
    """The service manager's end of $NOTIFY_SOCKET: datagrams of KEY=VALUE lines."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages = []

    def wait_for(self, key, timeout, proc=None, log=None):
        """The next message (after those already consumed) that sets `key`; the messages
        skipped on the way are returned too, so callers can check ordering."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"no {key} within {timeout} s; got {seen}" + (f"\n--- log:\n{read(log)}" if log else ""))
            if proc is not None and proc.poll() is not None:
                try:
                    self.sock.settimeout(0.2)
                    data = self.sock.recv(4096)
                except (socket.timeout, BlockingIOError):
                    fail(f"sluice exited ({proc.returncode}) before {key}; got {seen}\n--- log:\n{read(log)}")
            else:
                self.sock.settimeout(min(left, 0.5))
                try:
                    data = self.sock.recv(4096)
                except socket.timeout:
                    continue
            msg = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            seen.append(msg)
            if key in msg:
                return msg, seen

    def close(self):
        self.sock.close()


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def sluicectl_list(ctl, sock):
    r = subprocess.run([ctl, "--socket", sock, "list", "--kv"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        fail(f"sluicectl list: {r.returncode} {r.stdout} {r.stderr}")
    return r.stdout


def weight_of(listing, backend):
    m = re.search(r"backend " + re.escape(backend) + r" .*?weight=(\d+)", listing)
    if not m:
        fail(f"backend {backend} not in sluicectl list:\n{listing}")
    return int(m.group(1))


CONFIG = """# written by tests/smoke/systemd_unit.py: documentation addresses only
vip = web,203.0.113.10:80/tcp,nat
backend = web,198.51.100.11:8080,weight={w}
backend = web,198.51.100.12:8080
neighbor = 198.51.100.11,02:00:00:00:b1:01
neighbor = 198.51.100.12,02:00:00:00:b1:02
self = 198.51.100.1
flow-capacity = 4096
"""


def main():
    if len(sys.argv) < 3:
        fail("usage: systemd_unit.py SLUICE SLUICECTL [UNIT]")
    sluice, ctl = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unit_path = sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, "scripts", "systemd", "sluice.service")
    unit_dir = os.path.dirname(os.path.abspath(unit_path))
    unit_text = read(unit_path)
    unit = parse_unit(unit_path)
    work = tempfile.mkdtemp(prefix="sluice-sd.")
    prefixes = []
    procs = []
    try:
        # 1. systemd-analyze verify, on a copy whose binary is the build's (the installed
        #    path does not exist here and verify checks that commands are executable).
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            fail("systemd-analyze not found: scripts/install-deps installs it (package systemd)")
        bin_path = "/usr/local/bin/sluice"
        ctl_path = "/usr/local/bin/sluicectl"  # the copy below maps it to the build's too
        if bin_path not in unit_text:
            fail(f"the unit does not run {bin_path}")
        copy = os.path.join(work, "sluice.service")
        with open(copy, "w") as f:
            f.write(unit_text.replace(bin_path, sluice))
        r = subprocess.run([analyze, "verify", "--man=no", copy], capture_output=True, text=True, timeout=60)
        complaints = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
        if r.returncode != 0 or complaints:
            fail(f"systemd-analyze verify ({r.returncode}):\n" + "\n".join(complaints))
        ok("systemd-analyze verify: no complaints")

        # 2. What DPDK and the operator rely on.
        expect = {("Service", "Type"): "notify", ("Service", "Restart"): "on-failure",
                  ("Service", "LimitMEMLOCK"): "infinity", ("Service", "RuntimeDirectory"): "sluice",
                  ("Install", "WantedBy"): "multi-user.target"}
        for (sec, key), want in expect.items():
            if one(unit, sec, key) != want:
                fail(f"[{sec}] {key}={one(unit, sec, key)}, expected {want}")
        for forbidden in ("PrivateDevices", "ProtectKernelTunables", "MemoryDenyWriteExecute", "ProtectClock",
                          "DeviceAllow", "DynamicUser"):
            if values(unit, "Service", forbidden) and values(unit, "Service", forbidden) != ["no"]:
                fail(f"[Service] {forbidden}= would break DPDK (devices, sysfs, hugepages or the BPF JIT)")
        env_file = one(unit, "Service", "EnvironmentFile").lstrip("-")
        if env_file != "/etc/sluice/sluice.env":
            fail(f"EnvironmentFile={env_file}, expected /etc/sluice/sluice.env")
        start = one(unit, "Service", "ExecStart")
        reload_cmds = values(unit, "Service", "ExecReload")
        pre = values(unit, "Service", "ExecStartPre")
        kill_signal = getattr(signal, values(unit, "Service", "KillSignal")[0]) if values(unit, "Service", "KillSignal") \
            else signal.SIGTERM
        if "/etc/sluice/sluice.conf" not in start:
            fail("ExecStart does not read /etc/sluice/sluice.conf")
        # systemd runs ExecReload= lines in order and fails the reload at the first that fails:
        # the file is checked first, so a broken one fails `systemctl reload` and is never sent.
        argv_reloads = [expand(c, {"MAINPID": "1"}) for c in reload_cmds]
        # Then `sluicectl reload`, which waits for Sluice's answer: a file it refuses fails the
        # reload too (a SIGHUP would be answered by nobody).
        if len(argv_reloads) < 2 or argv_reloads[-1] != [ctl_path, "reload"]:
            fail(f"ExecReload={reload_cmds}: expected a check, then {ctl_path} reload last")
        if not (argv_reloads[0][0] == bin_path and "--check-config" in argv_reloads[0] and
                "/etc/sluice/sluice.conf" in argv_reloads[0] and reload_cmds[0].startswith("/")):
            fail(f"ExecReload={reload_cmds[0]}: expected {bin_path} --config /etc/sluice/sluice.conf ... --check-config "
                 "first, without '-' (its failure must fail the reload)")
        ok("unit: Type=notify, EnvironmentFile, RuntimeDirectory=sluice, LimitMEMLOCK=infinity, "
           "Restart=on-failure, ExecReload checks the file then asks sluicectl reload, no hardening that hides devices "
           "or sysfs")

        # 3. The examples shipped next to the unit.
        example_env = parse_env_file(os.path.join(unit_dir, "sluice.env"))
        for key in ("SLUICE_EAL", "SLUICE_OPTS"):
            if key not in example_env:
                fail(f"sluice.env defines no {key}")
        if "--file-prefix" not in example_env["SLUICE_EAL"]:
            fail("the example SLUICE_EAL has no --file-prefix")
        example_conf = os.path.join(unit_dir, "sluice.conf.example")
        mapping = {bin_path: sluice, "/etc/sluice/sluice.conf": example_conf}
        for cmd in pre:
            argv = map_paths(expand(cmd, example_env), mapping)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                fail(f"ExecStartPre with the example files: {argv}: {r.returncode}\n{r.stdout}{r.stderr}")
        r = subprocess.run([sluice, "--config", example_conf, "--check-config"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            fail(f"sluice.conf.example: {r.stdout}{r.stderr}")
        ok(f"examples: sluice.env sets SLUICE_EAL and SLUICE_OPTS; sluice.conf.example: {r.stdout.strip()}")

        # 4. The service's life, with a test env file.
        def run_service(tag, lcores, notify_address, reload_checks):
            prefix = f"sluice-sd-{os.getpid()}-{tag}"
            prefixes.append(prefix)
            conf = os.path.join(work, f"{tag}.conf")
            with open(conf, "w") as f:
                f.write(CONFIG.format(w=2))
            sock = os.path.join(work, f"{tag}.sock")
            env_path = os.path.join(work, f"{tag}.env")
            with open(env_path, "w") as f:
                f.write("# test environment: vdevs only, no hugepages, no PCI\n"
                        f'SLUICE_EAL="-l {lcores} --no-pci --no-huge -m 512 --vdev net_null0 --vdev net_null1 '
                        f'--file-prefix {prefix} --log-level=notice"\n'
                        f'SLUICE_OPTS="--control-socket {sock} --stats-period 1"\n')
            env_vars = parse_env_file(env_path)
            mapping = {bin_path: sluice, ctl_path: ctl, "/etc/sluice/sluice.conf": conf}
            proc_env = dict(os.environ)
            proc_env.update(env_vars)
            proc_env["NOTIFY_SOCKET"] = notify_address
            notes = Notifications(notify_address)
            log = os.path.join(work, f"{tag}.log")
            try:
                for cmd in pre:
                    argv = map_paths(expand(cmd, env_vars), mapping)
                    r = subprocess.run(argv, env=proc_env, capture_output=True, text=True, timeout=30)
                    if r.returncode != 0:
                        fail(f"{tag}: ExecStartPre {argv}: {r.returncode}\n{r.stdout}{r.stderr}")
                argv = map_paths(expand(start, env_vars), mapping)
                with open(log, "w") as out:
                    proc = subprocess.Popen(argv, env=proc_env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                procs.append(proc)
                t0 = time.monotonic()
                ready, _ = notes.wait_for("READY", 60, proc, log)
                if ready.get("READY") != "1" or not ready.get("STATUS", "").startswith("forwarding"):
                    fail(f"{tag}: first notification {ready}")
                ok(f"{tag}: READY=1 after {time.monotonic() - t0:.2f} s with STATUS={ready['STATUS']!r}")
                listing = None
                deadline = time.monotonic() + 10
                while listing is None:
                    r = subprocess.run([ctl, "--socket", sock, "list", "--kv"], capture_output=True, text=True, timeout=10)
                    if r.returncode == 0:
                        listing = r.stdout
                    elif time.monotonic() > deadline:
                        fail(f"{tag}: sluicectl list after READY=1: {r.returncode} {r.stderr}")
                    else:
                        time.sleep(0.1)
                if weight_of(listing, "198.51.100.11:8080") != 2:
                    fail(f"{tag}: weight before reload:\n{listing}")
                if reload_checks:
                    def reload():
                        """`systemctl reload`: each ExecReload= in turn, the first failure ends
                        it. Returns (exit status, output)."""
                        env = dict(env_vars, MAINPID=str(proc.pid))
                        run_env = dict(proc_env, SLUICE_SOCKET=sock)  # sluice.env's SLUICE_SOCKET
                        for cmd in reload_cmds:
                            argv = map_paths(expand(cmd, env), mapping)
                            r = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=30)
                            if r.returncode != 0:
                                return r.returncode, r.stdout + r.stderr
                        return 0, ""

                    # A good change: RELOADING=1, then READY=1, and the new weight is live.
                    with open(conf, "w") as f:
                        f.write(CONFIG.format(w=5))
                    rc, out = reload()
                    if rc != 0:
                        fail(f"{tag}: reload of a good file failed ({rc}): {out}")
                    msg, seen = notes.wait_for("READY", 30, proc, log)
                    reloading = [m for m in seen if "RELOADING" in m]
                    if not reloading or seen.index(reloading[0]) > seen.index(msg):
                        fail(f"{tag}: no RELOADING=1 before READY=1: {seen}")
                    if not re.fullmatch(r"\d+", reloading[0].get("MONOTONIC_USEC", "")):
                        fail(f"{tag}: RELOADING=1 without MONOTONIC_USEC: {reloading[0]}")
                    if "reloaded" not in msg.get("STATUS", ""):
                        fail(f"{tag}: READY=1 after reload has STATUS {msg.get('STATUS')!r}")
                    w = weight_of(sluicectl_list(ctl, sock), "198.51.100.11:8080")
                    if w != 5:
                        fail(f"{tag}: after reload weight is {w}, expected 5")
                    ok(f"{tag}: ExecReload: RELOADING=1 (MONOTONIC_USEC={reloading[0]['MONOTONIC_USEC']}), "
                       f"READY=1, weight 2 -> {w} in sluicectl list")
                    # A broken file: the reload fails before Sluice is signalled, with one line
                    # that names the problem, and the old configuration stays.
                    with open(conf, "w") as f:
                        f.write(CONFIG.format(w="lots"))
                    log_before = read(log)
                    rc, out = reload()
                    lines = [l for l in out.splitlines() if l.strip()]
                    if rc == 0:
                        fail(f"{tag}: reload of a broken file succeeded: systemctl reload would say nothing")
                    if len(lines) != 1 or "weight" not in lines[0]:
                        fail(f"{tag}: a broken file should give one line naming the problem, got {lines}")
                    notes.sock.settimeout(1.5)
                    try:
                        stray = notes.sock.recv(4096).decode()
                        if "RELOADING" in stray:
                            fail(f"{tag}: Sluice reloaded a file the check refused: {stray!r}")
                    except socket.timeout:
                        pass
                    w = weight_of(sluicectl_list(ctl, sock), "198.51.100.11:8080")
                    if w != 5 or read(log)[len(log_before):].count("reload") != 0:
                        fail(f"{tag}: a broken file reached Sluice (weight {w}):\n{read(log)[len(log_before):]}")
                    ok(f"{tag}: broken file: ExecReload exits {rc} with one line ({lines[0][:70]!r}...), "
                       "Sluice untouched")

                    # A file that parses but changes a restart-only setting: Sluice refuses it,
                    # says so once in its log and in STATUS=, and the periodic STATUS= (every
                    # second here) keeps saying it.
                    with open(conf, "w") as f:
                        f.write(CONFIG.format(w=7).replace("flow-capacity = 4096", "flow-capacity = 8192"))
                    log_before = read(log)
                    rc, out = reload()
                    if rc != 1 or "flow-capacity" not in out:
                        fail(f"{tag}: a refused reload should fail `systemctl reload` with Sluice's reason "
                             f"(sluicectl exits 1), got {rc}: {out}")
                    msg, seen = notes.wait_for("READY", 30, proc, log)
                    if not any("RELOADING" in m for m in seen) or "reload failed" not in msg.get("STATUS", ""):
                        fail(f"{tag}: refused reload notifications: {seen}")
                    w = weight_of(sluicectl_list(ctl, sock), "198.51.100.11:8080")
                    if w != 5:
                        fail(f"{tag}: a refused reload changed the weight to {w}")
                    later, _ = notes.wait_for("STATUS", 10, proc, log)
                    while "READY" in later or not later["STATUS"].startswith("forwarding: rx-pps"):
                        later, _ = notes.wait_for("STATUS", 10, proc, log)
                    if "reload failed" not in later["STATUS"]:
                        fail(f"{tag}: the periodic status forgot the refused reload: {later['STATUS']!r}")
                    said = [l for l in read(log)[len(log_before):].splitlines() if "reload" in l]
                    if len(said) != 1 or "reload rejected" not in said[0]:
                        fail(f"{tag}: a refused reload should be one log line, got {said}")
                    ok(f"{tag}: refused file: READY=1 with STATUS={msg['STATUS'][:70]!r}..., weight kept, "
                       f"one log line, later STATUS={later['STATUS'][:90]!r}...")
                # Stop as systemd does: KillSignal (SIGTERM) to the main process.
                os.kill(proc.pid, kill_signal)
                msg, _ = notes.wait_for("STOPPING", 20, proc, log)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    fail(f"{tag}: still running 30 s after {kill_signal.name}")
                if rc != 0:
                    fail(f"{tag}: exit status {rc} after {kill_signal.name}\n{read(log)}")
                text = read(log)
                if "Forward statistics" not in text or not re.search(r"elapsed [0-9.]+ s", text):
                    fail(f"{tag}: no totals on stop:\n{text}")
                ok(f"{tag}: {kill_signal.name}: STOPPING=1, exit 0, totals printed")
            finally:
                notes.close()

        run_service("two-lcores", "0,1", os.path.join(work, "notify.sock"), True)
        run_service("one-lcore", "0", f"@sluice-sd-{os.getpid()}", False)
    finally:
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
        for prefix in prefixes:
            shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)


if __name__ == "__main__":
    main()
