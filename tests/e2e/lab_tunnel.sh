#!/usr/bin/env bash
# End to end through tunnel VIPs, with real TCP stacks: `scripts/lab up tunnel` (backends in
# another subnet behind a router, decapsulating and answering the clients directly through it).
# Four VIPs: web (IPv4 in IPv4), web6 (IPv6 in IPv6), gue (IPv4 in GUE over IPv6: IPv6
# backends) and gue6 (IPv6 in GUE over IPv4: IPv4 backends).
#
#   lab_tunnel.sh [SLUICE SLUICECTL]
#
# SLUICE and SLUICECTL are the binaries under test (`meson test` passes its build's); without
# them scripts/lab takes SLUICE_BIN and SLUICECTL from the environment, or build/apps/ in this
# tree.
#
#  1. Many short connections to each VIP spread over the backends within 4 sigma of their
#     weights (every SYN, request and ACK through the tunnel, every answer around it).
#     On the router's link from Sluice, the outer headers: from the tunnel source of their
#     family to a backend, DF, TTL 64, GUE to port 6080 from 49152..65535 with an IPv6 UDP
#     checksum, and per-flow entropy (IPv6 flow label, GUE source port) that differs between
#     flows and never within one (IP in IPv4 has none).
#  2. 64 MiB downloads pinned to be1 (client ports chosen with `sluicectl explain`) on web and
#     web6 carry on byte-exact while be2 fails and recovers: its nginx stops, the health checks
#     mark it down on all four VIPs, new connections neither fail nor reach it; it starts
#     again, comes back up on all four and takes connections again.
#  2b. The health checks go through the tunnel to the VIP: be3 without web's and gue6's VIPs
#     on its loopback (the usual mistake) goes down on those two VIPs only, while its server
#     and its own address answer as before; with them back it comes back up.
#  3. Path MTU: a 64 MiB upload to each VIP. The backend LAN's MTU is 1400 (--tunnel-mtu 1400)
#     and the client's segments are as large as the backend's MSS allows: once wrapped they do
#     not fit, Sluice answers ICMP fragmentation-needed / packet-too-big from the VIP, and the
#     client's path MTU to that VIP must become 1400 less that VIP's outer headers. Each
#     upload completes within its time bound and sha256-exact on the backend, and the backends
#     decapsulated it from the expected encapsulation.
#  4. Sluice stops cleanly with every mbuf back; no packet was dropped as too big or for
#     lack of headroom.
set -euo pipefail
[ $# = 0 ] || [ $# = 2 ] || { echo "usage: $0 [SLUICE SLUICECTL]" >&2; exit 2; }
. "$(dirname "$0")/../lib/lab_test.sh" tunnel "$@"

fail() { echo "lab_tunnel: FAIL: $*" >&2; "$lab" ctl list --kv >&2 2>/dev/null || true; tail -20 $state/sluice.log >&2 2>/dev/null || true; exit 1; }
say() { echo "lab_tunnel: $*"; }
ctl() { "$lab" ctl "$@"; }

say "binaries: ${SLUICE_BIN:-$root/build/apps/sluice}, ${SLUICECTL:-$root/build/apps/sluicectl}"
"$lab" up tunnel >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "the lab did not come up"; }
sed 's/^lab: /  /' "$work/up.log"
decap=$(cat $state/decap)

VIPS="web web6 gue gue6"
declare -A URL=([web]=http://203.0.113.10/ [web6]='http://[2001:db8:3::10]/'
                [gue]=http://203.0.113.11/ [gue6]='http://[2001:db8:3::11]/')
declare -A VADDR=([web]=203.0.113.10 [web6]='[2001:db8:3::10]' [gue]=203.0.113.11 [gue6]='[2001:db8:3::11]')
declare -A CADDR=([web]=192.0.2.10 [web6]='[2001:db8:1::10]' [gue]=192.0.2.10 [gue6]='[2001:db8:1::10]')
# The backends' family, and what carries the client's packet to them (the decapsulator's name).
declare -A BEFAM=([web]=4 [web6]=6 [gue]=6 [gue6]=4)
declare -A ENCAP=([web]=4in4 [web6]=6in6 [gue]=gue-4in6 [gue6]=gue-6in4)
# The path MTU Sluice must announce: 1400 less the outer IP header (and UDP for GUE).
declare -A PMTU=([web]=1380 [web6]=1360 [gue]=1352 [gue6]=1372)
be_addr() { [ "${BEFAM[$1]}" = 4 ] && echo "198.51.100.13$2:80" || echo "[2001:db8:b::1$2]:80"; }
# Waits up to 5 s from T0 (ms) until backend N of VIP V is in STATE; else fails with WHY.
await_state() {  # V N STATE T0 WHY
  until [ "$(be_state $1 "$(be_addr $1 $2)")" = $3 ]; do
    [ $(($(ms) - $4)) -lt 5000 ] || fail "$1: $5"
    sleep 0.02
  done
}
be_state() {  # VIP ADDR:PORT: the backend's state in that VIP
  ctl list --kv | awk -v v="$1" -v b="$2" '$1 == "vip" {cur = $2} cur == v && $1 == "backend" && $2 == b {sub("state=", "", $3); print $3}'
}
stat() { ctl stats --kv | tr ' ' '\n' | grep -m1 "^$1=" | cut -d= -f2; }

# N requests to VIP V, each on its own TCP connection (one curl, `Connection: close`; a failed
# transfer prints nothing and curl goes on to the next): "c1 c2 c3 c4 failed".
requests() {
  local n=$1 urls=() c=(0 0 0 0) line
  for _ in $(seq "$n"); do urls+=("${URL[$2]}"); done
  while read -r line; do
    case $line in "backend be"[1-4]) c[${line#backend be} - 1]=$((c[${line#backend be} - 1] + 1)) ;; esac
  done < <("$lab" client curl -s -g --max-time 3 -H 'Connection: close' "${urls[@]}" || true)
  echo "${c[0]} ${c[1]} ${c[2]} ${c[3]} $((n - c[0] - c[1] - c[2] - c[3]))"
}

# Is count $1 of $2 requests within 4 sigma of weight share $3/$4?
within() {
  awk -v got="$1" -v n="$2" -v w="$3" -v tot="$4" 'BEGIN {
    p = w / tot; mu = n * p; sd = sqrt(n * p * (1 - p)); d = got - mu; if (d < 0) d = -d;
    exit !(d <= 4 * sd) }'
}

# Packets the backends (all of them) decapsulated from encapsulation E (4in4, 6in6, gue-4in6,
# gue-6in4): the user-space decapsulator's counters, or the kernel tunnel devices' (where
# the kernel's devices cannot tell GUE from plain IP in IP, those count both).
decapsulated() {
  local e=$1 total=0 i n dev
  for i in 1 2 3; do
    if [ "$decap" = user ]; then
      rm -f "$state/decap-$i.stats"
      ip netns pids "sll-be$i" | xargs -r ps -o pid=,args= -p | awk '/tunnel_decap/ {print $1}' | xargs -r kill -USR1
      for _ in $(seq 50); do [ -f "$state/decap-$i.stats" ] && break; sleep 0.02; done
      n=$(tr ' ' '\n' <"$state/decap-$i.stats" | grep "^$e=" | cut -d= -f2)
    else
      case $e in 4in4) dev=tunl0 ;; gue-6in4) dev=sit0 ;; *) dev=tnl6 ;; esac
      n=$(ip netns exec "sll-be$i" cat "/sys/class/net/$dev/statistics/rx_packets")
    fi
    total=$((total + ${n:-0}))
  done
  echo $total
}

# ---- 1. distribution ---------------------------------------------------------------------------
t1=$(ms)
for v in $VIPS; do
  n=600
  read -r a b c _ bad <<<"$(requests $n $v)"
  say "$v (${ENCAP[$v]}): $n connections: be1 $a, be2 $b, be3 $c (weights 1:2:3, expected $((n / 6)):$((n / 3)):$((n / 2))), failed $bad"
  [ "$bad" = 0 ] || fail "$v: $bad connections failed"
  within "$a" $n 1 6 && within "$b" $n 2 6 && within "$c" $n 3 6 || fail "$v: spread outside 4 sigma of the weights"
done
say "distribution checked in $(($(ms) - t1)) ms"

# ---- 1b. the outer headers on the wire -------------------------------------------------------------
mac=$(grep -m1 "^port 1:" $state/sluice.log | grep -o 'mac [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$mac" ] || fail "Sluice's backend port MAC not in its log"
ip netns exec sll-router /usr/bin/python3 "$root/tests/e2e/tunnel_wire.py" r2 "$mac" 4 >"$work/wire" &
wire_pid=$!
sleep 0.5
for v in $VIPS; do
  read -r a b c _ bad <<<"$(requests 40 $v)"
  [ "$bad" = 0 ] || fail "$v: $bad connections failed while capturing"
done
wait $wire_pid || fail "tunnel_wire.py failed"
sed 's/^/  /' "$work/wire"
[ "$(wc -l <"$work/wire")" = 4 ] || fail "expected exactly the four encapsulations on the wire"
for v in $VIPS; do
  e=${ENCAP[$v]}
  line=$(grep "^$e " "$work/wire") || fail "$v: no $e packet on the wire"
  field() { grep -o " $1=[^ ]*" <<<"$line" | cut -d= -f2; }
  [ "${e: -1}" = 4 ] && src=198.51.100.1 dst='198\.51\.100\.13[1-3]' || src=2001:db8:a::1 dst='2001:db8:b::1[1-3]'
  [ "$(field src)" = $src ] || fail "$v: outer source $(field src), not the tunnel source $src"
  tr ',' '\n' <<<"$(field dst)" | grep -qvx "$dst" && fail "$v: outer destinations $(field dst) are not all backends"
  [ "$(field df)" = all ] && [ "$(field ttl)" = 64 ] || fail "$v: DF $(field df), TTL $(field ttl)"
  [ "$(field flows)" -ge 40 ] && [ "$(field stable)" = yes ] || fail "$v: $(field flows) flows, entropy stable: $(field stable)"
  if [ "$e" != 4in4 ]; then  # IP in IPv4 has no field for it
    [ "$(field entropy)" != none ] && [ $(($(field entropy) * 2)) -ge "$(field flows)" ] ||
      fail "$v: per-flow entropy: $(field flows) flows got $(field entropy) values"
  fi
  if [ "${e#gue-}" != "$e" ]; then
    [ "$(field dport)" = 6080 ] && [ "$(field sport_min)" -ge 49152 ] || fail "$v: GUE ports"
    [ "${e: -1}" = 4 ] || [ "$(field udp_csum)" = set ] || fail "$v: GUE over IPv6 without a UDP checksum"
  fi
done
say "outer headers on the router's link: tunnel sources, DF, TTL 64, GUE ports and per-flow entropy as expected"

# ---- 2. a backend fails and recovers under long transfers ----------------------------------------
declare -A PORT
for v in web web6; do
  for p in $(seq $((57000 + ${BEFAM[$v]} * 1000)) $((57200 + ${BEFAM[$v]} * 1000))); do  # above the ephemeral range
    if ctl explain tcp "${CADDR[$v]}:$p" "${VADDR[$v]}:80" | grep -qF "$(be_addr $v 1)"; then PORT[$v]=$p; break; fi
  done
  [ -n "${PORT[$v]:-}" ] || fail "$v: no client port maps to be1"
done
t2=$(ms)
for v in web web6; do
  "$lab" client curl -s -g --max-time 40 --limit-rate 6M --local-port "${PORT[$v]}" -o "$work/big-$v" \
    "${URL[$v]}big.bin" &
  eval "xfer_$v=$!"
done
sleep 1
"$lab" backend 2 stop
t0=$(ms)
for v in $VIPS; do
  await_state $v 2 down $t0 "be2 not detected down"
done
say "be2 stopped -> down on all four VIPs after $(($(ms) - t0)) ms (checks every 500 ms, fall 3, timeout 400 ms)"
for v in web web6; do x="xfer_$v"; kill -0 "${!x}" 2>/dev/null || fail "$v: the download ended before be2 was down"; done
for v in $VIPS; do
  read -r a b c _ bad <<<"$(requests 100 $v)"
  [ "$bad" = 0 ] && [ "$b" = 0 ] || fail "$v: with be2 down $bad connections failed, $b reached be2"
done
say "with be2 down: 400 new connections, none failed, none reached be2"
"$lab" backend 2 start
t0=$(ms)
for v in $VIPS; do
  await_state $v 2 up $t0 "be2 did not come back up"
done
say "be2 started -> up on all four VIPs after $(($(ms) - t0)) ms (rise 2 x 500 ms)"
for v in $VIPS; do
  read -r a b c _ bad <<<"$(requests 60 $v)"
  [ "$bad" = 0 ] && [ "$b" -gt 0 ] || fail "$v: after recovery $bad connections failed, be2 took $b of 60"
  say "$v after recovery: be1 $a, be2 $b, be3 $c, failed $bad"
done
want=$(sha256sum <$state/big.bin | cut -d' ' -f1)
for v in web web6; do
  x="xfer_$v"
  wait "${!x}" || fail "$v: the 64 MiB download failed (or outlived its 40 s bound)"
  [ "$(sha256sum <"$work/big-$v" | cut -d' ' -f1)" = "$want" ] || fail "$v: the 64 MiB download is not byte-exact"
  rm -f "$work/big-$v"
done
say "64 MiB downloads pinned to be1 (web, web6) completed sha256-exact through the failure, in $(($(ms) - t2)) ms"

# ---- 2b. the checks prove the tunnel: a backend without the VIP on its loopback -----------------
ns3=sll-be3
ip netns exec $ns3 ip addr del 203.0.113.10/32 dev lo
ip netns exec $ns3 ip -6 addr del 2001:db8:3::11/128 dev lo
t0=$(ms)
for v in web gue6; do
  await_state $v 3 down $t0 "be3 without the VIP on its loopback was not detected down"
done
for v in web6 gue; do
  [ "$(be_state $v "$(be_addr $v 3)")" = up ] || fail "$v: be3 went down although it holds this VIP"
done
say "be3 without web's and gue6's VIPs on lo -> down on those two after $(($(ms) - t0)) ms, up on web6 and gue"
ip netns exec $ns3 ip addr add 203.0.113.10/32 dev lo
ip netns exec $ns3 ip -6 addr add 2001:db8:3::11/128 dev lo nodad
t0=$(ms)
for v in web gue6; do
  await_state $v 3 up $t0 "be3 did not come back up with the VIP back on its loopback"
done
say "VIPs back on be3's loopback -> up again after $(($(ms) - t0)) ms"

# ---- 3. path MTU discovery through the tunnels: 64 MiB uploads ------------------------------------
for v in $VIPS; do
  before_icmp=$(stat tunnel_too_big_sent)
  before_decap=$(decapsulated "${ENCAP[$v]}")
  t0=$(ms)
  code=$("$lab" client curl -s -g --max-time 60 -o /dev/null -w '%{http_code}' -T $state/big.bin "${URL[$v]}up/$v" || true)
  took=$(($(ms) - t0))
  [ "$code" = 201 ] || fail "$v: the 64 MiB upload did not complete (HTTP '$code' after $took ms)"
  icmp=$(($(stat tunnel_too_big_sent) - before_icmp))
  carried=$(($(decapsulated "${ENCAP[$v]}") - before_decap))
  addr=${VADDR[$v]#[}
  addr=${addr%]}
  pmtu=$("$lab" client ip route get "$addr" | grep -o 'mtu [0-9]*' | cut -d' ' -f2 || true)
  stored=$(ls $state/nginx-*/www/up/$v 2>/dev/null | head -1)
  [ -n "$stored" ] || fail "$v: the upload is on no backend"
  got=$(sha256sum <"$stored" | cut -d' ' -f1)
  rm -f "$stored"
  say "$v (${ENCAP[$v]}): 64 MiB uploaded in $took ms to $(echo "$stored" | grep -o 'nginx-[0-9]' | sed 's/nginx-/be/'); ICMP too-big sent: $icmp; client's path MTU to the VIP: ${pmtu:-none} (expected ${PMTU[$v]}); packets decapsulated from ${ENCAP[$v]}: $carried"
  [ "$got" = "$want" ] || fail "$v: the upload is not byte-exact on the backend"
  [ "$icmp" -ge 1 ] || fail "$v: Sluice sent no ICMP too-big"
  [ "${pmtu:-}" = "${PMTU[$v]}" ] || fail "$v: the client's path MTU is '${pmtu:-}', not ${PMTU[$v]}"
  [ "$carried" -ge 40000 ] || fail "$v: the backends decapsulated only $carried packets from ${ENCAP[$v]}"
done

# ---- 4. the end: a clean stop returns every mbuf -------------------------------------------------
for d in tunnel_too_big no_headroom; do
  n=$(ctl stats --kv | awk -v d="$d" '$1 == "drop" {split($2, kv, "="); if (kv[1] == d) print kv[2]}')
  [ "${n:-0}" = 0 ] || fail "$n packets dropped as $d"
done
pid=$(cat $state/sluice.pid)
kill -INT "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "Sluice did not stop within 10 s of SIGINT"
grep -q "mbufs: all [0-9]* back in the pool" $state/sluice.log || fail "mbufs leaked: $(grep -i mbuf $state/sluice.log)"
say "stopped cleanly: $(grep -o 'mbufs: all [0-9]* back in the pool' $state/sluice.log)"
say PASS
