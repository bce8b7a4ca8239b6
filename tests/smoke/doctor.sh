#!/usr/bin/env bash
# `sluice doctor` on vdevs: it must find the ports with their drivers, report --no-huge with its
# fix and exit 0 for one worker; two workers on single-queue net_pcap ports are fatal (exit 1,
# with the fix sentence), and a normal start with the same arguments must refuse to forward
# with the same sentence.
#   doctor.sh SLUICE
set -euo pipefail
sluice=$1
work=$(mktemp -d /tmp/sluice-doctor.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
