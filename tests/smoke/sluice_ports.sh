#!/usr/bin/env bash
# The sluice binary on real DPDK ports (vdevs): it must forward a capture read by net_pcap to
# exactly the packets the replay harness produces from the same capture, with one worker and
# with two workers sharing two RX queues (so nat flows cross workers through the redirect
# rings), and it must run on net_null (garbage in, every packet counted as a drop) and stop
# cleanly on SIGINT.
#   sluice_ports.sh SLUICE SLUICE_REPLAY GEN_BENCH_PCAP
set -euo pipefail
sluice=$1 replay=$2 gen=$3
work=$(mktemp -d /tmp/sluice-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
eal=(--no-huge -m 512 --no-pci --log-level=error)
opts=(--vip bench,203.0.113.10:80/tcp,nat
  --backend bench,198.51.100.11:8080,weight=2 --backend bench,198.51.100.12:8080
  --neighbor 198.51.100.11,02:00:00:00:b1:01 --neighbor 198.51.100.12,02:00:00:00:b1:02
  --flow-capacity 4096)

fail() { echo "FAIL: $*" >&2; exit 1; }

# Packet bytes of a capture, one hex line per packet, sorted (order across workers may differ).
packets() {
  /usr/bin/python3 - "$1" "$(dirname "$0")/.." <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from pcapfile import read_pcap
for line in sorted(b.hex() for _, b in read_pcap(sys.argv[1])):
    print(line)
PY
}

"$gen" established 300 "$work/a.pcap"
"$gen" syn 300 "$work/b.pcap"

# Reference: the harness on the same input, with net_pcap0's MAC address as the port's.
mac=02:70:63:61:70:00
"$replay" --in 0="$work/a.pcap" --out 0="$work/ref-a.pcap" --port-mac 0=$mac "${opts[@]}" >/dev/null
"$replay" --in 0="$work/b.pcap" --out 0="$work/ref-b.pcap" --port-mac 0=$mac "${opts[@]}" >/dev/null
# The capture is addressed to that MAC: the reference forwards all of it (a capture for another
# MAC would be dropped as foreign_mac, and an empty output would match an empty output).
[ "$(packets "$work/ref-a.pcap" | wc -l)" = 300 ] || fail "the harness did not forward the 300 packets of a.pcap"

run_sluice() {  # name lcores vdev-args [sluice options]
  local name=$1 lcores=$2 vdev=$3
  shift 3
  timeout -s INT 4 "$sluice" --lcores "$lcores" "${eal[@]}" --file-prefix "sluice-smoke-$name-$$" \
    --vdev "$vdev" -- "${opts[@]}" "$@" --control-socket "$work/$name.sock" --stats-json "$work/$name.json" >"$work/$name.log" 2>&1 || true
  grep -q "Forward statistics" "$work/$name.log" || { cat "$work/$name.log"; fail "$name: no clean shutdown"; }
  # Drops, redirects and transmits alike return every mbuf by the time the ports are closed.
  grep -q "mbufs: all [0-9]* back in the pool" "$work/$name.log" || { cat "$work/$name.log"; fail "$name: mbufs leaked"; }
  # A clean exit takes the EAL's runtime directory (a few MB per prefix) with it.
  [ ! -e "/run/dpdk/sluice-smoke-$name-$$" ] || fail "$name: /run/dpdk/sluice-smoke-$name-$$ left behind"
}

# One worker (the main lcore runs it), one queue.
run_sluice one "0@0" "net_pcap0,rx_pcap=$work/a.pcap,tx_pcap=$work/out-one.pcap"
[ "$(packets "$work/out-one.pcap")" = "$(packets "$work/ref-a.pcap")" ] || fail "one worker: output differs from the harness"
echo "ok: one worker on net_pcap matches the harness ($(packets "$work/out-one.pcap" | wc -l) packets)"

# --burst 512: net_pcap hands over the whole capture in one burst, more than a TX staging
# array holds; nothing may be dropped for want of room.
run_sluice big "0@0" "net_pcap0,rx_pcap=$work/a.pcap,tx_pcap=$work/out-big.pcap" --burst 512
[ "$(packets "$work/out-big.pcap")" = "$(packets "$work/ref-a.pcap")" ] || {
  grep -o '"tx_full": *[0-9]*' "$work/big.json" >&2 || true
  fail "--burst 512: output differs from the harness"
}
echo "ok: --burst 512 forwards all $(packets "$work/out-big.pcap" | wc -l) packets of one burst"

# Two workers, two queues: each worker gets one capture; nat flows owned by the other worker
# are redirected through the rings.
run_sluice two "0@0,1@1,2@1" "net_pcap0,rx_pcap=$work/a.pcap,rx_pcap=$work/b.pcap,tx_pcap=$work/out-q0.pcap,tx_pcap=$work/out-q1.pcap"
got=$( { packets "$work/out-q0.pcap"; packets "$work/out-q1.pcap"; } | sort)
want=$( { packets "$work/ref-a.pcap"; packets "$work/ref-b.pcap"; } | sort)
[ "$got" = "$want" ] || fail "two workers: output differs from the harness"
/usr/bin/python3 -c "
import json, sys
s = json.load(open('$work/two.json'))
t = s['total']
assert t['dropped'] == 0, t
assert t['redirected_out'] > 0 and t['redirected_out'] == t['redirected_in'], t
print('ok: two workers on net_pcap match the harness;', t['redirected_out'], 'packets crossed workers')
"

# net_null: fixed-size frames of zeros. Sluice must count every one as a drop and stop cleanly.
run_sluice null "0@0,1@1" "net_null0,size=64"
/usr/bin/python3 -c "
import json
t = json.load(open('$work/null.json'))['total']
assert t['rx'] > 0 and t['tx'] == 0 and t['dropped'] == t['rx'], t
print('ok: net_null', t['rx'], 'frames, all dropped as', t['drops'])
"

# One lcore: its worker gives the control core its turns, which print --stats-period lines
# (timestamped, like every control-core log line); --idle-sleep lets the idle loop sleep.
run_sluice stats1 "0@0" "net_null0,size=64" --stats-period 1 --idle-sleep 100
n=$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z stats: rx-pps' "$work/stats1.log" || true)
[ "$n" -ge 2 ] || { cat "$work/stats1.log"; fail "one lcore: $n timestamped --stats-period lines in 4 s, expected 2 or more"; }
echo "ok: one lcore prints $n timestamped --stats-period lines"
