#!/usr/bin/env bash
# The control core against real servers: Sluice on net_af_packet between a client namespace
# and a backend LAN of three real HTTP servers (each answers with its own name), health
# checks through the exception path (--kernel-if), backend MACs learnt by ARP (no --neighbor).
#
#   control_lab.sh SLUICE SLUICECTL
#
# It checks, and prints the measured times of:
#  - every backend comes up and serves; requests spread over all three;
#  - a backend whose server stops is marked down within fall x inter + timeout, and no request
#    fails or reaches it afterwards; it comes back after `rise` successes;
#  - drain and weight changes take effect without a restart;
#  - a reload with a broken file is rejected and the old config keeps running;
#  - `sluicectl explain` names the backend a client actually reached.
# Addresses: clients 192.0.2.0/24, backends 198.51.100.0/24, VIP 203.0.113.10. Everything
# it creates is removed on exit, even when interrupted.
set -euo pipefail
sluice=$(realpath "$1") ctl=$(realpath "$2")
tag=slt$$
ns_cli=$tag-cli ns_lb=$tag-lb ns_lan=$tag-lan
work=$(mktemp -d /tmp/sluice-lab.XXXXXX)
sock=$work/sluice.sock
pids=()

cleanup() {
  set +e
  if [ -n "${sluice_pid:-}" ] && kill -INT "$sluice_pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$sluice_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sluice_pid" 2>/dev/null
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for n in "$ns_cli" "$ns_lb" "$ns_lan" $tag-be1 $tag-be2 $tag-be3; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "control_lab: FAIL: $*" >&2; ctl list --kv >&2 2>/dev/null; [ -f "$work/sluice.log" ] && tail -40 "$work/sluice.log" >&2; exit 1; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
ms() { date +%s%3N; }
ctl() { in_ns "$ns_lb" "$ctl" --socket "$sock" "$@"; }

# ---- topology -------------------------------------------------------------------------------
for n in "$ns_cli" "$ns_lb" "$ns_lan"; do ip netns add "$n"; done
# client <-> Sluice port 0
ip link add cli0 netns "$ns_cli" type veth peer name lbc netns "$ns_lb"
# Sluice port 1 <-> backend LAN bridge
ip link add lbb netns "$ns_lb" type veth peer name up0 netns "$ns_lan"
in_ns "$ns_lan" ip link add br0 type bridge
in_ns "$ns_lan" ip link set up0 master br0
for i in 1 2 3; do
  ip netns add $tag-be$i
  ip link add eth0 netns $tag-be$i type veth peer name be$i netns "$ns_lan"
  in_ns "$ns_lan" ip link set be$i master br0
  in_ns "$ns_lan" ip link set be$i up
  in_ns $tag-be$i ip link set lo up
  in_ns $tag-be$i ip addr add 198.51.100.1$i/24 dev eth0
  in_ns $tag-be$i ip addr add 2001:db8:2::1$i/64 dev eth0 nodad
  in_ns $tag-be$i ip link set eth0 up
  # Frames leave with full checksums: Sluice patches them incrementally.
  in_ns $tag-be$i ethtool -K eth0 tx off >/dev/null
done
in_ns "$ns_lan" ip link set up0 up
in_ns "$ns_lan" ip link set br0 up
in_ns "$ns_cli" ip link set lo up
in_ns "$ns_cli" ip addr add 192.0.2.10/24 dev cli0
in_ns "$ns_cli" ip addr add 2001:db8:1::10/64 dev cli0 nodad
in_ns "$ns_cli" ip link set cli0 up
in_ns "$ns_cli" ethtool -K cli0 tx off >/dev/null
in_ns "$ns_cli" ip route add 203.0.113.0/24 dev cli0   # the VIP is on-link: Sluice answers ARP for it
in_ns "$ns_cli" ip -6 route add 2001:db8:3::/64 dev cli0  # and neighbour solicitations
for l in lbc lbb; do
  in_ns "$ns_lb" ip link set $l up
  in_ns "$ns_lb" ethtool -K $l tx off rx off >/dev/null 2>&1 || true
done

# ---- backends: real HTTP servers naming themselves -------------------------------------------
start_backend() {
  local i=$1
  mkdir -p "$work/www$i"
  echo "backend be$i" >"$work/www$i/index.html"
  # `ip netns exec` execs the server, so $! is the server itself.
  ip netns exec $tag-be$i /usr/bin/python3 -m http.server 8080 --bind 198.51.100.1$i --directory "$work/www$i" \
    >"$work/be$i.log" 2>&1 &
  eval "be${i}_pid=$!"
  pids+=("$!")
  if [ -z "${2:-}" ]; then  # the IPv6 server runs throughout
    ip netns exec $tag-be$i /usr/bin/python3 -m http.server 8080 --bind 2001:db8:2::1$i --directory "$work/www$i" \
      >"$work/be$i-v6.log" 2>&1 &
    pids+=("$!")
  fi
}
stop_backend() { local v="be${1}_pid"; kill "${!v}"; wait "${!v}" 2>/dev/null || true; }
for i in 1 2 3; do start_backend $i; done

# ---- Sluice ----------------------------------------------------------------------------------
inter=500 fall=3 rise=2 timeout=400
cat >"$work/sluice.conf" <<EOF
vip = web,203.0.113.10:80/tcp,fullnat,check=http,inter=${inter}ms,fall=$fall,rise=$rise,timeout=${timeout}ms,http-body=backend
backend = web,198.51.100.11:8080
backend = web,198.51.100.12:8080
backend = web,198.51.100.13:8080
vip = web6,[2001:db8:3::10]:80/tcp,fullnat,check=http,inter=${inter}ms,fall=$fall,rise=$rise,timeout=${timeout}ms
backend = web6,[2001:db8:2::11]:8080
backend = web6,[2001:db8:2::12]:8080
backend = web6,[2001:db8:2::13]:8080
snat = 198.51.100.100
snat = 2001:db8:2::100
self = 198.51.100.1/24
self = 2001:db8:2::1/64
kernel-if = slk
control-socket = $sock
flow-log = 1
timeout-tcp-closing = 1
EOF
cp "$work/sluice.conf" "$work/good.conf"
ip netns exec "$ns_lb" "$sluice" -l 0 --no-huge -m 512 --no-pci --file-prefix "$tag" \
  --vdev net_af_packet0,iface=lbc --vdev net_af_packet1,iface=lbb -- \
  --config "$work/sluice.conf" --flow-capacity 4096 >"$work/sluice.log" 2>&1 &
sluice_pid=$!

# Waits (up to $2 ms) until `sluicectl list` shows backend $1 in state $3; prints the wait.
wait_state() {
  local be=$1 limit=$2 want=$3 t0
  t0=$(ms)
  while :; do
    if ctl list --kv 2>/dev/null | grep -q "backend $be state=$want "; then echo $(($(ms) - t0)); return 0; fi
    [ $(($(ms) - t0)) -lt "$limit" ] || return 1
    sleep 0.05
  done
}

# Up, and confirmed by real checks through the exception path (not just the initial state).
t0=$(ms)
until [ "$(ctl list --kv 2>/dev/null | grep -c 'state=up .*last_check="http status 200"')" = 6 ]; do
  [ $(($(ms) - t0)) -lt 15000 ] || fail "the backends' health checks do not pass"
  sleep 0.1
done
# Resolved by ARP through the exception path (no --neighbor given).
t0=$(ms)
until ! ctl list --kv | grep -q "mac=unresolved"; do
  [ $(($(ms) - t0)) -lt 10000 ] || { ctl list --kv; fail "backend MACs not resolved"; }
  sleep 0.1
done
echo "control_lab: three backends up over IPv4 and IPv6, MACs resolved by ARP and neighbour discovery"
in_ns "$ns_lb" ping -c 1 -W 2 198.51.100.11 >/dev/null || fail "the kernel side cannot reach a backend"
in_ns $tag-be1 ping -c 1 -W 2 198.51.100.1 >/dev/null || fail "Sluice's kernel side does not answer ping"
echo "control_lab: the kernel side pings a backend and answers a backend's ping"

# Runs N requests (to URL, default the IPv4 VIP); prints "be1 be2 be3 failed" counts.
requests() {
  local n=$1 url=${2:-http://203.0.113.10/} c1=0 c2=0 c3=0 bad=0 out
  for _ in $(seq "$n"); do
    out=$(in_ns "$ns_cli" curl -s -g --max-time 3 "$url" || true)
    case $out in
      "backend be1") c1=$((c1 + 1)) ;;
      "backend be2") c2=$((c2 + 1)) ;;
      "backend be3") c3=$((c3 + 1)) ;;
      *) bad=$((bad + 1)) ;;
    esac
  done
  echo "$c1 $c2 $c3 $bad"
}

read -r a b c bad <<<"$(requests 60)"
echo "control_lab: 60 requests: be1 $a, be2 $b, be3 $c, failed $bad"
[ "$bad" = 0 ] || fail "$bad requests failed with all backends up"
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$c" -gt 0 ] || fail "a backend got no request"

read -r a b c bad <<<"$(requests 30 'http://[2001:db8:3::10]/')"
echo "control_lab: 30 IPv6 requests: be1 $a, be2 $b, be3 $c, failed $bad"
[ "$bad" = 0 ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$c" -gt 0 ] || fail "IPv6 requests failed or missed a backend"
in_ns $tag-be1 ping -6 -c 1 -W 2 2001:db8:2::1 >/dev/null || fail "Sluice's kernel side does not answer ping6"

# DPDK telemetry: the stock client reads Sluice's counters.
tel=$(echo /sluice/stats | in_ns "$ns_lb" dpdk-telemetry.py -f "$tag" 2>/dev/null | grep -o '"forwarded": [0-9]*' || true)
[ -n "$tel" ] && [ "${tel#*: }" -gt 0 ] || fail "dpdk-telemetry.py /sluice/stats: no forwarded count"
echo "control_lab: dpdk-telemetry.py /sluice/stats: $tel"

# ---- a backend fails: detection ----------------------------------------------------------------
stop_backend 2  # its IPv4 server only
bound=$((fall * inter + timeout))
detect=$(wait_state 198.51.100.12:8080 $((bound + 3000)) down) || fail "be2 not marked down"
echo "control_lab: be2 stopped -> marked down after $detect ms (bound fall x inter + timeout = $bound ms)"
[ "$detect" -le $((bound + 500)) ] || fail "detection took $detect ms, above $bound ms (+500 ms polling slack)"
ctl list --kv | grep "198.51.100.12:8080" | grep -q 'last_change="tcp connect: Connection refused (3/3 failures)' || fail "no reason shown for be2"
read -r a b c bad <<<"$(requests 40)"
echo "control_lab: 40 requests with be2 down: be1 $a, be2 $b, be3 $c, failed $bad"
[ "$bad" = 0 ] && [ "$b" = 0 ] || fail "requests failed or reached the down backend"

start_backend 2 v4-only
recover=$(wait_state 198.51.100.12:8080 $((rise * inter + timeout + 5000)) up) || fail "be2 never came back"
echo "control_lab: be2 restarted -> marked up after $recover ms (rise = $rise, inter = $inter ms)"

# ---- drain and weight, live ------------------------------------------------------------------
ctl drain web 198.51.100.13:8080 >/dev/null
wait_state 198.51.100.13:8080 1000 draining >/dev/null || fail "drain not applied"
ctl set-weight web 198.51.100.11:8080 3 >/dev/null
read -r a b c bad <<<"$(requests 60)"
echo "control_lab: 60 requests after drain be3, weight be1=3: be1 $a, be2 $b, be3 $c, failed $bad"
[ "$bad" = 0 ] && [ "$c" = 0 ] || fail "drained backend still takes new connections (or failures)"
[ "$a" -gt "$b" ] || fail "weight 3 backend did not get the larger share"
ctl set-state web 198.51.100.13:8080 up >/dev/null
ctl set-weight web 198.51.100.11:8080 1 >/dev/null

# ---- explain agrees with where a client landed -------------------------------------------------
got=$(in_ns "$ns_cli" curl -s --max-time 3 --local-port 40001 http://203.0.113.10/)
ex=$(ctl explain tcp 192.0.2.10:40001 203.0.113.10:80)
echo "control_lab: client port 40001 reached '$got'; explain: $ex"
be=${got#backend be}
grep -q "198.51.100.1$be:8080" <<<"$ex" || fail "explain disagrees with the backend reached"

# ---- reloads ------------------------------------------------------------------------------------
echo "vip = broken" >"$work/sluice.conf"
if ctl reload >"$work/reload.out" 2>&1; then fail "a broken config was accepted"; fi
grep -q "broken" "$work/reload.out" || fail "reload error does not name the problem: $(cat "$work/reload.out")"
kill -HUP "$sluice_pid"
sleep 0.3
ctl list --kv | grep -q "backend 198.51.100.11:8080 state=up" || fail "old config lost after a rejected reload"
read -r a b c bad <<<"$(requests 10)"
[ "$bad" = 0 ] || fail "requests failed after a rejected reload"
echo "control_lab: broken reload rejected ($(head -1 "$work/reload.out")), old config still serving"
# A good reload that removes be3: its flows are flushed, requests spread over be1 and be2.
grep -v "198.51.100.13" "$work/good.conf" >"$work/sluice.conf"
ctl reload >/dev/null || fail "a good reload was rejected"
ctl list --kv | grep -q "198.51.100.13" && fail "be3 still listed after reload"
read -r a b c bad <<<"$(requests 20)"
[ "$bad" = 0 ] && [ "$c" = 0 ] || fail "reload without be3: failures or be3 still used"
echo "control_lab: reload without be3 applied live: be1 $a, be2 $b, failed $bad"

grep -q "DOWN: tcp connect" "$work/sluice.log" || fail "the down transition was not logged"
sleep 2  # closing flows expire (timeout-tcp-closing 1 s): their close lines appear
grep -q "sluice: flow open tcp 192.0.2.10:40001 -> web 203.0.113.10:80 backend" "$work/sluice.log" ||
  fail "flow log: no open line for the explained flow"
grep -qE "sluice: flow close tcp .* packets [0-9]+ bytes [0-9]+ duration" "$work/sluice.log" ||
  fail "flow log: no close line"
echo "control_lab: flow log: $(grep -c 'flow open' "$work/sluice.log") opens, $(grep -c 'flow close' "$work/sluice.log") closes, e.g."
grep -m1 "flow close" "$work/sluice.log" | sed 's/^/  /' 
echo "control_lab: state changes logged:"
grep -E "sluice: backend .* (UP|DOWN)" "$work/sluice.log" | sed 's/^/  /'
echo "control_lab: PASS"
