#!/usr/bin/python3
"""measure_rate.py: runs a forwarding process and measures its rate from a running total.

    measure_rate.py --total REGEX --warmup S --measure S --load-limit S --log FILE -- CMD...

CMD (dpdk-testpmd or sluice with a stats period) prints a cumulative counter now and then
(testpmd "RX-packets: N", sluice "rx N" or "maglev-picks N"); REGEX picks it out of a line (its
first group). Every line is stamped with the monotonic time it arrived (both programs flush
after each statistics block) and written to FILE with that stamp. The run goes:

  loading   until the first line whose total is nonzero: EAL start-up, mempools, the capture
            read into mbufs (a 1M-packet capture without hugepages can take a long while);
            this is detected, never assumed, and may last up to --load-limit seconds;
  warm-up   --warmup seconds from then (partial periods, the flow table filling);
  measure   from the first total at or after the end of the warm-up (t0, n0) to the first at
            or after t0 + --measure seconds (t1, n1); the rate is (n1 - n0) / (t1 - t0).

Then CMD gets SIGINT (SIGKILL 20 s later). Prints "RATE LOAD_SECONDS MEASURED_SECONDS" on
standard output; on failure (CMD exited, never started forwarding, or stopped printing totals)
prints "0 - -" and the reason on standard error, and exits 1.
"""

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", required=True)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--measure", type=float, required=True)
    ap.add_argument("--load-limit", type=float, default=120.0)
    ap.add_argument("--log", required=True)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    total = re.compile(a.total)

    log = open(a.log, "w")
    start = time.monotonic()
    proc = subprocess.Popen(a.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stop_requested = False

    def stop(signum, frame):  # interrupted: take CMD down too
        nonlocal stop_requested
        stop_requested = True
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    first = None      # time of the first nonzero total
    t0 = n0 = None    # start of the measured interval
    result = None     # (rate, measured seconds)
    reason = None
    buf = b""
    fd = proc.stdout.fileno()
    while result is None and reason is None:
        now = time.monotonic()
        if stop_requested:
            reason = "interrupted"
            break
        if first is None and now - start > a.load_limit:
            reason = "no nonzero total within %.0f s (still loading?)" % a.load_limit
            break
        if first is not None and now - first > a.warmup + a.measure + 20:
            reason = "the totals stopped coming"
            break
        try:
            ready, _, _ = select.select([fd], [], [], 0.5)
        except InterruptedError:
            continue
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        stamp = time.monotonic()
        if not chunk:
            reason = "exited (status %s) before the measurement was done" % proc.wait()
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            log.write("%10.3f %s\n" % (stamp - start, line))
            m = total.search(line)
            if not m or result is not None:
                continue
            n = int(m.group(1))
            if first is None:
                if n == 0:
                    continue
                first = stamp
            if t0 is None:
                if stamp - first >= a.warmup:
                    t0, n0 = stamp, n
            elif stamp - t0 >= a.measure:
                result = ((n - n0) / (stamp - t0), stamp - t0)
    log.flush()

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    for line in chunk.decode("utf-8", "replace").splitlines():
                        log.write("%10.3f %s\n" % (time.monotonic() - start, line))
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            log.write("measure_rate: killed after 20 s of SIGINT\n")
    if result is None:
        log.write("measure_rate: no rate: %s\n" % reason)
        log.close()
        print("0 - -")
        print("no rate: %s" % reason, file=sys.stderr)
        return 1
    log.write("measure_rate: rate %.0f/s over %.3f s (%.3f s after start, forwarding from %.3f s)\n"
              % (result[0], result[1], t0 - start, first - start))
    log.close()
    print("%.0f %.1f %.2f" % (result[0], first - start, result[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
