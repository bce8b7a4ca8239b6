#!/usr/bin/env bash
# Half-closed TCP through Sluice, with real Linux TCP stacks on both sides, in nat and fullnat
# at once (one Sluice process, four VIPs: nat and fullnat, IPv4 and IPv6).
#
#   halfclose.sh SLUICE SLUICECTL
#
# Each client connects through a VIP, sends a request and shuts down its sending side
# (shutdown(SHUT_WR): its FIN). Once the backend has read that EOF it sends 4 chunks of 96 KiB,
# 35 s apart, then closes. Between chunks the connection is silent for longer than the closing
# timeout (10 s) but well within the half-closed one (120 s): Sluice must keep the flow
# (per-direction FIN tracking), or the later chunks die as no_flow.
# It checks, per connection: every byte arrives (SHA-256 of what the client read = what the
# server sent), the server saw the client's EOF, the backend saw the client (nat) or the SNAT
# address (fullnat), and 70% into the first silence `sluicectl explain` still finds the flow
# in the table; then that Sluice counted no no_flow, tcp_no_flow or non_syn_miss, and stops
# with every mbuf back. Takes about two minutes. Exit 0 pass, 1 fail, 77 skip (not root, no
# network namespaces).
#
# HALFCLOSE_GAP=SECONDS changes the gap (a quick run of the script itself); HALFCLOSE_SLUICE_OPTS
# adds Sluice options: "--timeout-tcp-half-closed 10" reproduces the old behaviour (a single
# FIN got the 10 s closing timeout) and must fail. KEEP=1 keeps the work directory.
#
# Addresses: client 192.0.2.10 / 2001:db8:1::10, backend 198.51.100.11 / 2001:db8:2::11
# (port 8080; its gateway is Sluice's --self address, as nat needs), VIPs 203.0.113.10 (nat),
# 203.0.113.11 (fullnat), 2001:db8:3::10 (nat), 2001:db8:3::11 (fullnat), port 80. Everything
# it creates is removed on exit, even when it fails or is interrupted.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 SLUICE SLUICECTL" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "halfclose: SKIP: needs root (network namespaces)"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "halfclose: SKIP: no /usr/bin/python3"; exit 77; }
sluice=$(realpath "$1") ctl_bin=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
helper=$here/halfclose.py
py=/usr/bin/python3
gap=${HALFCLOSE_GAP:-35} chunks=4 size=$((96 << 10))
tag=slhc$$
ns_cli=$tag-cli ns_lb=$tag-lb ns_be=$tag-be
work=$(mktemp -d /tmp/sluice-halfclose.XXXXXX)
sock=$work/sluice.sock
pids=() made_ns=()

cleanup() {
  set +e
  if [ -n "${sluice_pid:-}" ] && kill -INT "$sluice_pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$sluice_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sluice_pid" 2>/dev/null
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for n in "${made_ns[@]}"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "/var/run/dpdk/$tag"
  [ -n "${KEEP:-}" ] && echo "halfclose: kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "halfclose: $*"; }
ms() { date +%s%3N; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
ctl() { in_ns "$ns_lb" timeout 10 "$ctl_bin" --socket "$sock" "$@"; }
# A fatal setup failure: Sluice's state and log, then exit 1.
die() {
  echo "halfclose: FAIL: $*" >&2
  ctl list --kv >&2 2>/dev/null
  [ -f "$work/sluice.log" ] && tail -40 "$work/sluice.log" >&2
  exit 1
}
jget() { "$py" -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2], ""); print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$1" "$2"; }
t_begin=$(ms)

# ---- topology: client -- [lbc] Sluice [lbb] -- backend -------------------------------------
for n in "$ns_cli" "$ns_lb" "$ns_be"; do
  ip netns add "$n" 2>/dev/null || { echo "halfclose: SKIP: cannot create network namespaces"; exit 77; }
  made_ns+=("$n")
done
ip link add c0 netns "$ns_cli" type veth peer name lbc netns "$ns_lb"
ip link add lbb netns "$ns_lb" type veth peer name eth0 netns "$ns_be"
offloads_off() { in_ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; }
in_ns "$ns_cli" ip link set lo up
in_ns "$ns_cli" ip addr add 192.0.2.10/24 dev c0
in_ns "$ns_cli" ip -6 addr add 2001:db8:1::10/64 dev c0 nodad
in_ns "$ns_cli" ip link set c0 up
offloads_off "$ns_cli" c0
in_ns "$ns_cli" ip route add 203.0.113.0/24 dev c0      # the VIPs are on-link: Sluice answers ARP
in_ns "$ns_cli" ip -6 route add 2001:db8:3::/64 dev c0  # and neighbour solicitations for them
in_ns "$ns_be" ip link set lo up
in_ns "$ns_be" ip addr add 198.51.100.11/24 dev eth0
in_ns "$ns_be" ip -6 addr add 2001:db8:2::11/64 dev eth0 nodad
in_ns "$ns_be" ip link set eth0 up
offloads_off "$ns_be" eth0
# nat: replies must go back through Sluice (its --self address); fullnat replies go to the
# SNAT address, on-link, whatever the route.
in_ns "$ns_be" ip route add default via 198.51.100.1
in_ns "$ns_be" ip -6 route add default via 2001:db8:2::1
in_ns "$ns_lb" ip link set lo up
for l in lbc lbb; do
  in_ns "$ns_lb" ip link set $l up
  in_ns "$ns_lb" sysctl -qw net.ipv6.conf.$l.disable_ipv6=1   # the kernel holds no address on them
  offloads_off "$ns_lb" $l
done

# ---- the backend: one server for all four VIPs ----------------------------------------------
# `ip netns exec` execs the server, so $! is the server itself.
ip netns exec "$ns_be" "$py" "$helper" serve 8080 "$work" >"$work/server.log" 2>&1 &
pids+=("$!")

# ---- Sluice: nat and fullnat side by side ---------------------------------------------------
# Default timeouts on purpose: closing 10 s, half-closed 120 s.
cat >"$work/sluice.conf" <<EOF
vip = hc-nat,203.0.113.10:80/tcp,nat
vip = hc-fnat,203.0.113.11:80/tcp,fullnat
vip = hc-nat6,[2001:db8:3::10]:80/tcp,nat
vip = hc-fnat6,[2001:db8:3::11]:80/tcp,fullnat
backend = hc-nat,198.51.100.11:8080
backend = hc-fnat,198.51.100.11:8080
backend = hc-nat6,[2001:db8:2::11]:8080
backend = hc-fnat6,[2001:db8:2::11]:8080
snat = 198.51.100.100
snat = 2001:db8:2::100
self = 198.51.100.1/24
self = 2001:db8:2::1/64
kernel-if = shc
control-socket = $sock
flow-log = 1
EOF
ip netns exec "$ns_lb" "$sluice" -l 0 --no-huge -m 512 --no-pci --file-prefix "$tag" \
  --vdev net_af_packet0,iface=lbc --vdev net_af_packet1,iface=lbb -- \
  --config "$work/sluice.conf" --flow-capacity 4096 ${HALFCLOSE_SLUICE_OPTS:-} >"$work/sluice.log" 2>&1 &
sluice_pid=$!

# Up when the control socket answers and the backend's MACs are resolved through the kernel side.
t0=$(ms)
until out=$(ctl list --kv 2>/dev/null) && [ "$(grep -c '^ *backend ' <<<"$out")" = 4 ] && ! grep -q 'mac=unresolved' <<<"$out"; do
  kill -0 "$sluice_pid" 2>/dev/null || die "Sluice exited"
  [ $(($(ms) - t0)) -lt 20000 ] || die "Sluice not up with resolved backends within 20 s"
  sleep 0.2
done
declare -A VIP=([nat4]=203.0.113.10 [fnat4]=203.0.113.11 [nat6]=2001:db8:3::10 [fnat6]=2001:db8:3::11)
declare -A LPORT=([nat4]=41001 [fnat4]=41002 [nat6]=41003 [fnat6]=41004)
declare -A CLI=([nat4]=192.0.2.10 [fnat4]=192.0.2.10 [nat6]=2001:db8:1::10 [fnat6]=2001:db8:1::10)
# What the backend must see as its peer: the client itself in nat, the SNAT address in fullnat.
declare -A PEER=([nat4]=192.0.2.10 [fnat4]=198.51.100.100 [nat6]=2001:db8:1::10 [fnat6]=2001:db8:2::100)
declare -A NAME=([nat4]="nat     IPv4" [fnat4]="fullnat IPv4" [nat6]="nat     IPv6" [fnat6]="fullnat IPv6")
conns=(nat4 fnat4 nat6 fnat6)
hp() { [[ $1 == *:* ]] && echo "[$1]:$2" || echo "$1:$2"; }
for c in "${conns[@]}"; do
  t0=$(ms)
  until in_ns "$ns_cli" "$py" "$helper" ping "${VIP[$c]}" 80; do
    [ $(($(ms) - t0)) -lt 15000 ] || die "${NAME[$c]}: no answer through $(hp "${VIP[$c]}" 80) within 15 s"
    sleep 0.5
  done
done
say "lab up in $(($(ms) - t_begin)) ms; every VIP answers. Four half-closed transfers: $chunks x $size bytes, ${gap} s apart"

# ---- the transfers ------------------------------------------------------------------------
declare -A CPID
t_start=$(ms)
for c in "${conns[@]}"; do
  in_ns "$ns_cli" timeout $((gap * chunks + 60)) "$py" "$helper" run "${VIP[$c]}" 80 "${LPORT[$c]}" "$c" \
    "$chunks" "$size" "$gap" "$work/client-$c.json" &
  CPID[$c]=$!
  pids+=("$!")
done

# Into the first silence (after chunk 1, past the old 10 s closing timeout): each flow must
# still be in Sluice's table, not merely recomputed by Maglev.
check_at=$((gap * 700))
sleep "$(awk -v t=$((t_start + check_at - $(ms))) 'BEGIN { print (t > 0 ? t / 1000 : 0) }')"
declare -A EXPLAIN
for c in "${conns[@]}"; do
  EXPLAIN[$c]=$(ctl explain tcp "$(hp "${CLI[$c]}" "${LPORT[$c]}")" "$(hp "${VIP[$c]}" 80)" 2>&1 || true)
done
say "$((($(ms) - t_start) / 1000)) s in: sluicectl explain on the four flows; waiting for the last chunks"

declare -A RC
for c in "${conns[@]}"; do
  if wait "${CPID[$c]}"; then RC[$c]=0; else RC[$c]=$?; fi
done
t_xfer=$((($(ms) - t_start) / 1000))
sleep 1  # the servers' result files follow their close

# ---- verdicts ----------------------------------------------------------------------------
failures=()
lines=()
for c in "${conns[@]}"; do
  cj=$work/client-$c.json sj=$work/server-$c.json why=()
  if [ ! -f "$cj" ]; then why+=("client wrote no result (exit ${RC[$c]})")
  else
    cb=$(jget "$cj" bytes) csha=$(jget "$cj" sha256) bursts=$(jget "$cj" bursts) cerr=$(jget "$cj" error)
    [ -z "$cerr" ] || why+=("client: $cerr")
    [ "$(jget "$cj" eof)" = True ] || why+=("client never saw the server's FIN")
  fi
  if [ ! -f "$sj" ]; then why+=("server wrote no result (still blocked sending?)")
  else
    sb=$(jget "$sj" sent) ssha=$(jget "$sj" sha256) serr=$(jget "$sj" error) peer=$(jget "$sj" peer)
    [ -z "$serr" ] || why+=("server: $serr")
    [ "$(jget "$sj" eof)" = True ] && [ "$(jget "$sj" eof_after)" = True ] || why+=("server did not see the client's EOF")
    [ "$sb" = $((chunks * size)) ] || why+=("server sent $sb of $((chunks * size)) bytes")
    [ "$peer" = "${PEER[$c]}" ] || why+=("backend saw peer $peer, expected ${PEER[$c]}")
  fi
  if [ -f "$cj" ] && [ -f "$sj" ]; then
    [ "$cb" = "$sb" ] && [ "$csha" = "$ssha" ] || why+=("received $cb bytes sha256 ${csha:0:16}.. but the server sent $sb sha256 ${ssha:0:16}..")
    [ "$(wc -w <<<"$bursts")" = "$chunks" ] || why+=("client saw $(wc -w <<<"$bursts") bursts, not $chunks")
  fi
  grep -q "flow-table hit" <<<"${EXPLAIN[$c]}" || why+=("at $((check_at / 1000)) s the flow was not in the table: ${EXPLAIN[$c]}")
  label="${NAME[$c]} $(hp "${CLI[$c]}" "${LPORT[$c]}") -> $(hp "${VIP[$c]}" 80)"
  if [ ${#why[@]} = 0 ]; then
    lines+=("  PASS $label: ${cb} bytes byte-exact (sha256 ${csha:0:16}..), backend saw EOF and peer $peer, data at ${bursts// /, } s after FIN, flow in table at $((check_at / 1000)) s")
  else
    lines+=("  FAIL $label: $(printf '%s; ' "${why[@]}" | sed 's/; $//')")
    failures+=("$c")
  fi
done

stats=$(ctl stats --kv 2>&1 || true)
num() { grep -o "\(^\| \)$1=[0-9]*" <<<"$stats" | head -1 | cut -d= -f2; }
dnum() { local v; v=$(grep -o "^drop $1=[0-9]*" <<<"$stats" | cut -d= -f2); echo "${v:-0}"; }
no_flow=$(dnum no_flow) tcp_no_flow=$(dnum tcp_no_flow) miss=$(num non_syn_miss)
if [ -z "$miss" ]; then
  lines+=("  FAIL sluicectl stats unreadable: $stats"); failures+=(stats)
elif [ "$no_flow" = 0 ] && [ "$tcp_no_flow" = 0 ] && [ "$miss" = 0 ]; then
  lines+=("  PASS Sluice stats: no_flow=0 tcp_no_flow=0 non_syn_miss=0 (flow_hits=$(num flow_hits); other drops: $(grep '^drop ' <<<"$stats" | cut -d' ' -f2 | paste -sd' ' || true))")
else
  lines+=("  FAIL Sluice stats: no_flow=$no_flow tcp_no_flow=$tcp_no_flow non_syn_miss=$miss: flow state was lost")
  failures+=(stats)
fi

# A clean stop returns every mbuf.
kill -INT "$sluice_pid"
for _ in $(seq 100); do kill -0 "$sluice_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$sluice_pid" 2>/dev/null; then
  lines+=("  FAIL Sluice did not stop within 10 s of SIGINT"); failures+=(stop)
elif m=$(grep -o 'mbufs: all [0-9]* back in the pool' "$work/sluice.log"); then
  lines+=("  PASS Sluice stopped cleanly: $m")
else
  lines+=("  FAIL Sluice's stop: $(grep -i mbuf "$work/sluice.log" || echo 'no mbuf report')"); failures+=(stop)
fi
sluice_pid=

echo
echo "halfclose summary (transfers took $t_xfer s, the whole test $((($(ms) - t_begin) / 1000)) s):"
printf '%s\n' "${lines[@]}"
if [ ${#failures[@]} = 0 ]; then
  say "PASS: half-closed TCP survives ${gap} s silences through nat and fullnat, IPv4 and IPv6"
  exit 0
fi
set +e
echo "halfclose: evidence:"
echo "$stats" | sed 's/^/  stats: /'
grep -E 'sluice: flow (open|close)|no_flow' "$work/sluice.log" | tail -30 | sed 's/^/  log: /'
tail -5 "$work/server.log" 2>/dev/null | sed 's/^/  server: /'

say "FAIL: ${failures[*]}"
exit 1
