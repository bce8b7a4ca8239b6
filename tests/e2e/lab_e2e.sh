#!/usr/bin/env bash
# End to end, with real TCP stacks: scripts/lab in one mode (nat, fullnat or dsr), IPv4 and
# IPv6 side by side (every step runs on both VIPs).
#
#   lab_e2e.sh MODE [SLUICE SLUICECTL]
#
# SLUICE and SLUICECTL are the binaries under test (`meson test` passes its build's); without
# them scripts/lab takes SLUICE_BIN and SLUICECTL from the environment, or build/apps/ in this
# tree.
#
#  1. Many short connections (curl) spread over the backends within 4 sigma of their weights.
#  2. A long transfer pinned to be1 (its client port chosen with `sluicectl explain`) carries
#     on byte-exact while be2 is stopped, detected and removed, and be3 is drained, removed and
#     added back; after be2 is detected down, no new connection fails.
#  3. A fourth backend added live takes its share of new connections, and `sluicectl explain`
#     names the backend each of 20 clients actually reached.
#  4. Malformed frames (scapy) are counted as drops while real connections run undisturbed.
set -euo pipefail
[ $# = 1 ] || [ $# = 3 ] || { echo "usage: $0 MODE [SLUICE SLUICECTL]" >&2; exit 2; }
mode=$1
shift
. "$(dirname "$0")/../lib/lab_test.sh" "e2e-$mode" "$@"

fail() { echo "lab_e2e $mode: FAIL: $*" >&2; "$lab" ctl list --kv >&2 2>/dev/null || true; tail -20 $state/sluice.log >&2 2>/dev/null || true; exit 1; }
say() { echo "lab_e2e $mode: $*"; }
ctl() { "$lab" ctl "$@"; }

say "binaries: ${SLUICE_BIN:-$root/build/apps/sluice}, ${SLUICECTL:-$root/build/apps/sluicectl}"
"$lab" up "$mode" >/dev/null || fail "the lab did not come up"

declare -A URL=([4]=http://203.0.113.10/ [6]='http://[2001:db8:3::10]/')
declare -A VIP=([4]=web [6]=web6)
declare -A VADDR=([4]=203.0.113.10 [6]='[2001:db8:3::10]')
declare -A CADDR=([4]=192.0.2.10 [6]='[2001:db8:1::10]')
be_addr() { [ "$1" = 4 ] && echo "198.51.100.1$2:80" || echo "[2001:db8:2::1$2]:80"; }

# N requests to family F's VIP: "c1 c2 c3 c4 failed".
requests() {
  local n=$1 url=${URL[$2]} c=(0 0 0 0 0) out
  for _ in $(seq "$n"); do
    out=$("$lab" client curl -s -g --max-time 3 "$url" || true)
    case $out in "backend be"[1-4]) c[${out#backend be}]=$((c[${out#backend be}] + 1)) ;; *) c[0]=$((c[0] + 1)) ;; esac
  done
  echo "${c[1]} ${c[2]} ${c[3]} ${c[4]} ${c[0]}"
}

# Is count $1 of $2 requests within 4 sigma of weight share $3/$4?
within() {
  awk -v got="$1" -v n="$2" -v w="$3" -v tot="$4" 'BEGIN {
    p = w / tot; mu = n * p; sd = sqrt(n * p * (1 - p)); d = got - mu; if (d < 0) d = -d;
    exit !(d <= 4 * sd) }'
}

# ---- 1. distribution ---------------------------------------------------------------------------
n=300
for f in 4 6; do
  read -r a b c _ bad <<<"$(requests $n $f)"
  say "IPv$f: $n connections: be1 $a, be2 $b, be3 $c (weights 1:2:3, expected $((n / 6)):$((n / 3)):$((n / 2))), failed $bad"
  [ "$bad" = 0 ] || fail "IPv$f: $bad connections failed"
  within "$a" $n 1 6 && within "$b" $n 2 6 && within "$c" $n 3 6 || fail "IPv$f: spread outside 4 sigma of the weights"
done

# ---- 2. a long transfer while the backend set changes --------------------------------------------
# A client port Maglev sends to be1, for each family.
declare -A PORT
for f in 4 6; do
  for p in $(seq $((57000 + f * 1000)) $((57200 + f * 1000))); do  # above the ephemeral range: never in TIME_WAIT
    if ctl explain tcp "${CADDR[$f]}:$p" "${VADDR[$f]}:80" | grep -qF "$(be_addr $f 1)"; then PORT[$f]=$p; break; fi
  done
  [ -n "${PORT[$f]:-}" ] || fail "IPv$f: no client port maps to be1"
done
for f in 4 6; do
  "$lab" client curl -s -g --max-time 60 --limit-rate 6M --local-port "${PORT[$f]}" -o "$work/big$f" \
    "${URL[$f]}big.bin" &
  eval "xfer$f=$!"
done
sleep 1
"$lab" backend 2 stop
t0=$(ms)
for f in 4 6; do
  until ctl list --kv | grep -qF "backend $(be_addr $f 2) state=down "; do
    [ $(($(ms) - t0)) -lt 5000 ] || fail "IPv$f: be2 not detected down"
    sleep 0.02
  done
  say "IPv$f: be2 stopped -> detected down after $(($(ms) - t0)) ms (bound 3 x 500 + 400 = 1900 ms)"
done
for f in 4 6; do
  read -r a b c _ bad <<<"$(requests 30 $f)"
  [ "$bad" = 0 ] && [ "$b" = 0 ] || fail "IPv$f: after detection $bad connections failed, $b reached be2"
done
say "after detection: 60 new connections, none failed, none reached be2"
for f in 4 6; do
  ctl remove-backend "${VIP[$f]}" "$(be_addr $f 2)" >/dev/null || fail "remove be2"
  ctl drain "${VIP[$f]}" "$(be_addr $f 3)" >/dev/null || fail "drain be3"
done
for f in 4 6; do
  read -r a b c _ bad <<<"$(requests 20 $f)"
  [ "$bad" = 0 ] && [ "$c" = 0 ] && [ "$b" = 0 ] || fail "IPv$f: with be3 draining: $bad failed, be2 $b, be3 $c"
done
for f in 4 6; do
  ctl remove-backend "${VIP[$f]}" "$(be_addr $f 3)" >/dev/null || fail "remove be3"
  ctl add-backend "${VIP[$f]}" "$(be_addr $f 3)" weight=3 >/dev/null || fail "re-add be3"
done
say "be2 removed, be3 drained, removed and added back while the transfers ran"
for f in 4 6; do
  v="xfer$f"
  wait "${!v}" || fail "IPv$f: the long transfer failed"
  cmp -s "$work/big$f" $state/big.bin || fail "IPv$f: the long transfer is not byte-exact"
done
say "long transfers (64 MiB each, IPv4 and IPv6, pinned to be1) completed byte-exact"

# ---- 3. a fourth backend ---------------------------------------------------------------------------
"$lab" backend 2 start
"$lab" backend 4 start
for f in 4 6; do ctl add-backend "${VIP[$f]}" "$(be_addr $f 4)" weight=2 >/dev/null || fail "add be4"; done
# A new backend takes no flows before its first good check (one, whatever rise is).
t0=$(date +%s%N)
until [ "$(ctl list --kv | grep -cF -e "backend $(be_addr 4 4) state=up" -e "backend $(be_addr 6 4) state=up")" = 2 ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || fail "be4 not up 5 s after it was added"
  sleep 0.05
done
say "be4 added: up after its first good check, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
# Backends now: be1 w1, be3 w3, be4 w2.
n=300
for f in 4 6; do
  read -r a b c d bad <<<"$(requests $n $f)"
  say "IPv$f: with be4 (weight 2) added: be1 $a, be3 $c, be4 $d (weights 1:3:2), be2 $b, failed $bad"
  [ "$bad" = 0 ] && [ "$b" = 0 ] || fail "IPv$f: failures or be2 used"
  within "$d" $n 2 6 && within "$a" $n 1 6 && within "$c" $n 3 6 || fail "IPv$f: new shares outside 4 sigma"
done
agree=0
for f in 4 6; do
  for p in $(seq $((58000 + f * 1000)) $((58009 + f * 1000))); do
    got=$("$lab" client curl -s -g --max-time 3 --local-port "$p" "${URL[$f]}")
    ex=$(ctl explain tcp "${CADDR[$f]}:$p" "${VADDR[$f]}:80")
    grep -qF "$(be_addr $f "${got#backend be}")" <<<"$ex" || fail "IPv$f port $p: reached '$got' but explain says: $ex"
    agree=$((agree + 1))
  done
done
say "sluicectl explain agreed with the backend reached for $agree of 20 clients"

# ---- 4. malformed traffic alongside real connections ---------------------------------------------
# Sent where Sluice's client-facing port is: the client LAN, or in one-arm fullnat the backend
# LAN (the router would drop malformed packets itself).
mac=$(grep -m1 "^port 0:" $state/sluice.log | grep -o 'mac [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$mac" ] || fail "Sluice's port MAC not in its log"
drops_before=$(ctl stats --kv | grep -o 'drops=[0-9]*' | cut -d= -f2)
if [ "$mode" = fullnat ]; then sender=(ip netns exec sll-router /usr/bin/python3) iface=r1
else sender=(ip netns exec sll-client /usr/bin/python3) iface=c0; fi
"${sender[@]}" "$root/tests/e2e/bad_traffic.py" "$iface" "$mac" 50 >"$work/sent" &
bad_pid=$!
read -r a b c d bad <<<"$(requests 40 4)"
wait $bad_pid || fail "bad_traffic.py failed"
sent=$(cat "$work/sent")
sleep 0.3
drops_after=$(ctl stats --kv | grep -o 'drops=[0-9]*' | cut -d= -f2)
say "$sent malformed frames sent during 40 real connections (failed $bad); drops rose by $((drops_after - drops_before))"
[ "$bad" = 0 ] || fail "real connections failed during the malformed traffic"
[ $((drops_after - drops_before)) -ge "$sent" ] || fail "not every malformed frame was counted as a drop"
ctl stats --kv | grep "^drop " | sed 's/^/  /'

stat() { ctl stats --kv | grep -o "$1=[0-9]*" | head -1 | cut -d= -f2; }
if [ "$mode" = fullnat ]; then
  # ---- 5. IPv6 fragments: UDP datagrams the client's and the backends' kernels fragment ---------
  # (IPv4 fragments never reach Sluice here: net_af_packet's fanout socket reassembles them.)
  before=$(stat frag_forwarded)
  out=$("$lab" client /usr/bin/python3 "$root/tests/e2e/udp_echo.py" ask 2001:db8:3::10 53 3000 20) ||
    fail "IPv6 fragments: $out"
  after=$(stat frag_forwarded)
  say "IPv6 fragments: $out; later fragments forwarded: $((after - before))"
  [ $((after - before)) -ge 40 ] || fail "fewer later fragments forwarded than the 20 requests and 20 answers carry"

  # ---- 6. path MTU discovery through Sluice ---------------------------------------------------
  # The router's link to the client shrinks to 1280 bytes; the backends' full-size segments
  # (MSS 1460 from the client's SYN, DF set) make it send ICMP fragmentation-needed / packet
  # too big to their source, the VIP. Only if Sluice hands them to the backend, translated,
  # does the backend lower its segment size: otherwise the transfer stalls.
  ip netns exec sll-router ip link set r0 mtu 1280
  before=$(stat icmp_forwarded)
  for f in 4 6; do
    "$lab" client curl -s -g --max-time 20 -r 0-4194303 -o "$work/pmtu$f" "${URL[$f]}big.bin" ||
      fail "IPv$f: a 4 MiB download over a 1280-byte hop did not complete"
    cmp -s "$work/pmtu$f" <(head -c 4194304 $state/big.bin) || fail "IPv$f: the 4 MiB download differs"
  done
  after=$(stat icmp_forwarded)
  ip netns exec sll-router ip link set r0 mtu 1500
  say "path MTU 1280 on the client side: 4 MiB downloaded byte-exact over IPv4 and IPv6; ICMP errors translated: $((after - before))"
  [ $((after - before)) -ge 2 ] || fail "no ICMP error went through Sluice"
fi

# ---- the end: a clean stop returns every mbuf (drops, redirects, kernel side, ICMP alike) ----
pid=$(cat $state/sluice.pid)
kill -INT "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "Sluice did not stop within 10 s of SIGINT"
grep -q "mbufs: all [0-9]* back in the pool" $state/sluice.log || fail "mbufs leaked: $(grep -i mbuf $state/sluice.log)"
say "stopped cleanly: $(grep -o 'mbufs: all [0-9]* back in the pool' $state/sluice.log)"
say PASS
