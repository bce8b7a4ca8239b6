#!/usr/bin/env python3
"""check_configs.py: runs `sluice --check-config` on the malformed and the valid configurations.

    check_configs.py SLUICE [EXTRA_GOOD.conf ...] [--jobs N] [--verbose]

Every tests/config/bad/*.conf starts with two comment lines (a UTF-8 byte-order mark before
the first is allowed, since one file is about exactly that):

    # expect: <case-sensitive substring of what sluice prints>
    # <one sentence: what is wrong with this file>

and must be refused: a non-zero exit, not by a signal, within the time limit, with the expected
substring in its stdout or stderr. Every tests/config/good/*.conf (and every extra file given
on the command line, e.g. scripts/systemd/sluice.conf.example) must be accepted: exit 0. For
both, no output line may be longer than 1,000 characters (a 100 KB value has to be cut in the
message, not echoed) and no sanitizer report may appear, so the same run works against an ASan
build. Files named pending-* hold rules that are still being added to Sluice: they run like
the others and fail until the rule lands; the summary counts them apart.

No committed file may be larger than 8 KB (generate.MAX_COMMITTED): the big ones (65,536
backends, 4,096 and 4,097 VIPs, 100 KB lines) are a table in generate.py, written on every run
into a temporary directory and checked and counted exactly like the committed ones, under the
same bad/ or good/ name.

Prints one line per failure and a summary; exits 1 if anything failed.
"""
import argparse
import concurrent.futures
import os
import pathlib
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True   # no __pycache__ in the source tree for generate.py
import generate  # noqa: E402  (the table of files written at test time, beside this script)

HERE = pathlib.Path(__file__).resolve().parent
TIME_LIMIT_S = 5.0
MAX_LINE = 1000
BOM = b"\xef\xbb\xbf"
EXPECT = b"# expect: "
SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer", b"UndefinedBehaviorSanitizer", b"runtime error:")


def shown(data, limit=160):
    """Bytes as a short printable string for a failure line."""
    text = data.decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data)} bytes)"


def read_header(path):
    """Returns (expect, error): the expected substring of a bad file, or what is wrong with its header."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if head.startswith(BOM):
        head = head[len(BOM):]
    lines = head.split(b"\n", 2)
    first = lines[0].rstrip(b"\r")
    if not first.startswith(EXPECT) or not first[len(EXPECT):].strip():
        return None, "first line is not `# expect: <substring>`"
    if len(lines) < 2 or not lines[1].startswith(b"#") or not lines[1][1:].strip():
        return None, "second line is not a comment saying what is wrong"
    expect = first[len(EXPECT):]
    # A substring that is part of the file's own name would match the `FILE:LINE:` prefix of
    # any message about the file.
    if expect in str(path).encode():
        return None, f"expected text '{shown(expect)}' is part of the file name; make it more specific"
    return expect, None


def run(sluice, path):
    """Runs the check; returns (returncode or None on timeout, combined output)."""
    # Its own process group, so that a timeout ends whatever it started too.
    p = subprocess.Popen([sluice, "--check-config", "--config", str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return None, out + err
    return p.returncode, out + err


def check(sluice, path, good, committed):
    """Returns None if the file behaves, else why not."""
    if committed and path.stat().st_size > generate.MAX_COMMITTED:
        return (f"{path.stat().st_size} bytes committed (at most {generate.MAX_COMMITTED}); "
                f"generate it in {HERE / 'generate.py'} instead")
    expect = None
    if not good:
        expect, err = read_header(path)
        if err:
            return err
    rc, out = run(sluice, path)
    if rc is None:
        return f"no answer within {TIME_LIMIT_S:g} s"
    if rc < 0:
        return f"killed by signal {-rc}: {shown(out)}"
    for mark in SANITIZER_MARKS:
        if mark in out:
            return f"sanitizer report ({mark.decode()}): {shown(out[out.find(mark):])}"
    longest = max(len(line) for line in out.split(b"\n"))
    if good and rc != 0:
        return f"refused (exit {rc}): {shown(out)}"
    if not good and rc == 0:
        return f"accepted: {shown(out)}"
    if not good and expect not in out:
        return f"message lacks '{shown(expect)}': {shown(out)}"
    if longest > MAX_LINE:
        return f"an output line of {longest} characters (at most {MAX_LINE}): {shown(out)}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sluice", help="the sluice binary")
    ap.add_argument("extra_good", nargs="*", type=pathlib.Path, help="more configurations that must pass")
    ap.add_argument("--jobs", type=int, default=2, help="checks run at a time (default 2)")
    ap.add_argument("--verbose", action="store_true", help="also print a line per passing file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sluice-config-") as tmp:
        return check_all(args, pathlib.Path(tmp).resolve())


def check_all(args, tmp):
    """Writes the generated files under tmp, then checks them with the committed ones."""
    generated = generate.write_all(tmp)
    committed = {d: sorted((HERE / d).glob("*.conf")) for d in ("bad", "good")}
    if not committed["bad"] or not committed["good"]:
        print(f"no configurations found under {HERE}", file=sys.stderr)
        return 1
    for d in ("bad", "good"):
        clash = {p.name for p in committed[d]} & {p.name for p in generated[d]}
        if clash:
            print(f"{d}/{min(clash)} is both committed and in generate.py", file=sys.stderr)
            return 1
    # In name order, as if the generated files were beside the committed ones.
    bad = sorted(committed["bad"] + generated["bad"], key=lambda p: p.name)
    good = sorted(committed["good"] + generated["good"], key=lambda p: p.name) + args.extra_good
    cases = [(p, False) for p in bad] + [(p, True) for p in good]
    is_committed = set(committed["bad"] + committed["good"])

    def label(path):
        for root in (HERE, tmp):
            try:
                return str(path.resolve().relative_to(root))
            except ValueError:
                pass
        return str(path)

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = pool.map(lambda c: check(args.sluice, c[0], c[1], c[0] in is_committed), cases)
        for (path, good_case), why in zip(cases, results):
            pending = path.name.startswith("pending-")
            if why is None:
                if args.verbose:
                    print(f"ok    {label(path)}")
                continue
            failed.append(pending)
            print(f"FAIL{' (pending)' if pending else ''} {label(path)}: {why}", flush=True)

    n_pending = sum(1 for p in bad if p.name.startswith("pending-"))
    n_failed_pending = sum(failed)
    print(f"config checks: {len(bad) - n_pending} bad, {n_pending} pending, {len(good)} good; "
          f"{len(cases) - len(failed)} passed, {len(failed)} failed"
          + (f" ({n_failed_pending} of them pending)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
