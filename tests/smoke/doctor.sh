#!/usr/bin/env bash
# `sluice doctor` on vdevs: it must find the ports with their drivers, report --no-huge with its
# fix and exit 0 for one worker; two workers on single-queue net_pcap ports are fatal (exit 1,
# with the fix sentence), and a normal start with the same arguments must refuse to forward
# with the same sentence; -m 64 is refused (a start would fail to allocate the pool) and an EAL
# error is the only FATAL.
#   doctor.sh SLUICE
set -euo pipefail
sluice=$1
work=$(mktemp -d /tmp/sluice-doctor.XXXXXX)
trap 'rm -rf "$work" /var/run/dpdk/sluice-doctor-$$-*' EXIT  # EAL leaves its runtime directories
fail() { echo "FAIL: $*" >&2; exit 1; }
eal=(--no-pci --no-huge -m 512 --log-level=error)
opts=(--vip web,203.0.113.10:80/tcp,nat --backend web,198.51.100.11:8080
  --neighbor 198.51.100.11,02:00:00:00:b1:01 --flow-capacity 4096 --control-socket none)

# run NAME ARGS...: output in $out, exit code in $rc (captured, not fatal under set -e); a
# forwarding Sluice gets SIGINT after $secs seconds.
secs=20
run() {
  local name=$1; shift
  rc=0
  out=$(timeout -s INT "$secs" "$sluice" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" >"$work/$name.log"
}
has() { grep -qF -- "$1" <<<"$out" || { cat "$work/$name.log" >&2; fail "$name: no '$1'"; }; }
name=""

# One worker (main lcore + one worker lcore) on two net_null ports: nothing fatal.
name=null
run $name doctor --lcores 0@0,1@1 "${eal[@]}" --file-prefix "sluice-doctor-$$-null" \
  --vdev net_null0 --vdev net_null1 -- "${opts[@]}"
[ "$rc" -eq 0 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want 0"; }
has "sluice doctor: 2 ports, 1 worker (lcore 1), main lcore 0"
has "port 0  net_null0 (net_null, vdev,"
has "port 1  net_null1 (net_null, vdev,"
has "client side"
has "backend side"
has "EAL runs with --no-huge"
has "fix: reserve hugepages and drop --no-huge: dpdk-hugepages.py -p 2M --setup 1G"
has "result: 0 fatal"
echo "ok: doctor on two net_null ports, one worker: exit 0, drivers and the --no-huge finding reported"

# Memory: with -m 64 the default pool (16384 mbufs, a 4 KiB page each without hugepages) does
# not fit, and a start fails to allocate it: doctor must say so. What doctor accepts must start.
name=mem64
run $name doctor -l 0 --no-pci --no-huge -m 64 --log-level=error --file-prefix "sluice-doctor-$$-mem64" \
  --vdev net_null0 --vdev net_null1 -- "${opts[@]}"
[ "$rc" -eq 1 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want 1"; }
has "FATAL  host"
has "(16384 mbufs in 4 KiB pages) but EAL has 64 MiB of its --no-huge memory left"
has "fix: give EAL more memory: -m 256"
name=mem96 secs=3
run $name doctor -l 0 --no-pci --no-huge -m 96 --log-level=error --file-prefix "sluice-doctor-$$-mem96" \
  --vdev net_null0 --vdev net_null1 -- "${opts[@]}"
[ "$rc" -eq 0 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want 0"; }
name=start96
run $name -l 0 --no-pci --no-huge -m 96 --log-level=error --file-prefix "sluice-doctor-$$-start96" \
  --vdev net_null0 --vdev net_null1 -- "${opts[@]}"
has "forwarding"
has "Forward statistics"
secs=20
echo "ok: doctor refuses -m 64 (the pool needs a page per mbuf); -m 96 passes and starts"

# An EAL error is the one fatal finding: nothing judged on what EAL did not say.
name=ealerr
run $name doctor -l 0 --no-pci --no-huge -m 512 --no-such-eal-option --file-prefix "sluice-doctor-$$-ealerr" -- \
  "${opts[@]}"
[ "$rc" -eq 1 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want 1"; }
has "sluice doctor: EAL did not start"
has "FATAL  eal"
has "memory not judged: EAL did not start"
[ "$(grep -c '^FATAL' <<<"$out")" = 1 ] || { cat "$work/$name.log"; fail "$name: more than one FATAL after an EAL error"; }
has "result: 1 fatal"
echo "ok: an EAL error gives one FATAL (EAL's), memory not judged"

# The option form, and EAL arguments only (no `--`: the report needs no VIPs).
name=flag
run $name -l 0 "${eal[@]}" --file-prefix "sluice-doctor-$$-flag" --vdev net_null0 -- --doctor "${opts[@]}"
[ "$rc" -eq 0 ] || { cat "$work/$name.log"; fail "$name: exit $rc"; }
has "sluice doctor: 1 port, 1 worker (run by the main lcore), main lcore 0"
has "one-arm: client port 0, backend port 0"
name=bare
run $name doctor -l 0 "${eal[@]}" --file-prefix "sluice-doctor-$$-bare" --vdev net_null0
[ "$rc" -eq 0 ] || { cat "$work/$name.log"; fail "$name: exit $rc"; }
has "port 0  net_null0 (net_null, vdev,"
echo "ok: --doctor and 'sluice doctor' without '--' work the same"

# Two workers on net_pcap ports with one RX queue each: fatal, with the fix.
/usr/bin/python3 -c "
import sys
sys.path.insert(0, sys.argv[2])
from pcapfile import write_pcap
write_pcap(sys.argv[1], [])
" "$work/empty.pcap" "$(dirname "$0")/.."
pcap=(--vdev "net_pcap0,rx_pcap=$work/empty.pcap,tx_pcap=$work/out0.pcap"
  --vdev "net_pcap1,rx_pcap=$work/empty.pcap,tx_pcap=$work/out1.pcap")
want_fix="fix: give Sluice at most 1 worker: -l 0,1"
name=pcap2
run $name doctor --lcores 0@0,1@1,2@1 "${eal[@]}" --file-prefix "sluice-doctor-$$-pcap2" "${pcap[@]}" -- "${opts[@]}"
[ "$rc" -eq 1 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want 1"; }
has "port 0  net_pcap0 (net_pcap, vdev,"
has "FATAL  port 0  2 workers need one RX and one TX queue each, port 0 (net_pcap) has 1 RX / 1 TX"
has "$want_fix"
has "result: 2 fatal"
echo "ok: doctor refuses two workers on single-queue net_pcap ports (exit 1, with the fix)"

name=start
run $name --lcores 0@0,1@1,2@1 "${eal[@]}" --file-prefix "sluice-doctor-$$-start" "${pcap[@]}" -- "${opts[@]}"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$work/$name.log"; fail "$name: exit $rc, want a refusal"; }
has "$want_fix"
has "refusing to start"
! grep -q "forwarding" <<<"$out" || fail "$name: started forwarding"
echo "ok: a normal start refuses the same configuration with the same sentence"

# Start-up goes on with warnings only (--no-huge), and stops cleanly.
name=warn secs=3
run $name --lcores 0@0 "${eal[@]}" --file-prefix "sluice-doctor-$$-warn" --vdev net_null0,size=64 -- "${opts[@]}" \
  --mbcache 32
has "EAL runs with --no-huge"
has "forwarding"
has "Forward statistics"
echo "ok: warnings are printed and Sluice starts (--mbcache 32)"
