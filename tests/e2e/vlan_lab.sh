#!/usr/bin/env bash
# 802.1Q VLANs per side, with real kernels: Sluice one-arm in nat on a single link that is a
# trunk, its clients on VLAN 100 and its backends on VLAN 200 (--client-vlan 100
# --backend-vlan 200), IPv4 and IPv6.
#
#   vlan_lab.sh SLUICE SLUICECTL
#
#   client ns --- VLAN 100 \
#                             tr0 (trunk) ===== lb0: Sluice (net_af_packet, one-arm)
#   be1, be2  --- VLAN 200 /                   kernel side: TAP vlk0 (--self), untagged
#
# The kernel side knows no VLANs: Sluice's data path hands its control core only the frames of
# the kernel side's VLAN (one arm: the backend VLAN), the control core takes the tag off before
# the TAP and puts it on the kernel's frames; the --self addresses sit on vlk0 itself. No 8021q
# module, no VLAN interface. Frames for the kernel side on another VLAN (the client's) are
# dropped as foreign_vlan.
# The switch namespace holds the trunk end tr0 and one access port per host: a user-space
# 802.1Q switch (vlan_lab.py switch) joins them, or the kernel's 8021q and bridges where the
# kernel has them (VLAN_LAB_TRUNK). Client and backends reach each other only through Sluice
# (different VLANs; the client routes only the VIPs, on-link; the backends' default gateway is
# Sluice's --self address). Sluice resolves the backends by ARP/ND through its kernel side (no
# --neighbor) and health-checks them over it (check=http). A capture on tr0 runs from before
# Sluice starts until the traffic is done.
# It checks:
#  - Sluice's kernel side: vlk0 exists with the port's MAC and holds the --self addresses, and
#    Sluice made no VLAN interface (none in its namespace);
#  - both backends up by their health checks, their MACs learnt (the real ones);
#  - client and backend can only meet through Sluice (the client's ARP for a backend and the
#    backend's ARP for the client go unanswered);
#  - 50 IPv4 and 20 IPv6 HTTP connections from a real client: all byte-exact, spread over both
#    backends, which see the client's own address (nat);
#  - a capture on the trunk (AF_PACKET, the tag read inline or from PACKET_AUXDATA): client
#    traffic tagged 100 and backend traffic (nat flows, probes, ARP/ND) tagged 200, each way;
#    the kernel side's own frames (probes, ARP and NS for the backends, and whatever else the
#    kernel sends: MLD, RS...) leave tagged 200, and nothing from Sluice's MAC leaves untagged
#    (or on any VLAN but 100 and 200);
#  - no foreign_vlan drop for all that traffic; then SYNs to the VIP sent on the trunk
#    untagged and on VLAN 300, IPv4 and IPv6, are dropped as foreign_vlan (exactly 4) and open
#    no flow, the same SYN on VLAN 100 opens one, and one to another MAC counts as foreign_mac;
#  - be2's server stopped: marked down (IPv4 and IPv6), every new connection goes to be1 and
#    none fails; restarted: back up;
#  - a host on the client VLAN claiming be1's addresses (gratuitous ARP, unsolicited NA) does
#    not change the MAC Sluice sends be1's traffic to: both claims are dropped as foreign_vlan
#    (one-arm, the kernel side lives on the backend VLAN);
#  - Sluice stops cleanly, every mbuf back.
# Takes about 20 s. Exit 0 pass, 1 fail, 77 skip (not root, no network namespaces).
#
# VLAN_LAB_TRUNK=auto|kernel|user picks the switch: kernel (8021q VLAN interfaces and bridges;
# auto picks it when the kernel has both) or user (the user-space switch; auto picks it
# otherwise). Variants:
#   VLAN_LAB_STATIC=1          no kernel side (--neighbor MACs, no health checks: those checks
#                              are skipped): the data path alone;
#   VLAN_LAB_BACKEND_VLAN=0    backends untagged on the trunk (no --backend-vlan), clients on
#                              VLAN 100: the kernel side's frames leave untagged.
# (VLAN_LAB_BACKEND_VLAN=N puts the backends on VLAN N instead of 200.) VLAN_LAB_SLUICE_OPTS
# adds Sluice options. KEEP=1 keeps the work directory.
#
# Addresses: client 192.0.2.10 / 2001:db8:1::10; backends 198.51.100.11-12 / 2001:db8:2::11-12
# port 8080 (gateway: Sluice's --self 198.51.100.1 / 2001:db8:2::1); VIPs 203.0.113.10 and
# [2001:db8:3::10] port 80. Everything it creates is removed on exit, even when it fails or
# is interrupted.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 SLUICE SLUICECTL" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "vlan_lab: SKIP: needs root (network namespaces)"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "vlan_lab: SKIP: no /usr/bin/python3"; exit 77; }
sluice=$(realpath "$1") ctl_bin=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
helper=$here/vlan_lab.py
py=/usr/bin/python3
static=${VLAN_LAB_STATIC:-}
tag=slvl$$
ns_cli=$tag-cli ns_lb=$tag-lb ns_sw=$tag-sw ns_be1=$tag-be1 ns_be2=$tag-be2
lb_mac=02:00:00:00:5c:01
declare -A BE_MAC=([1]=02:00:00:00:b1:01 [2]=02:00:00:00:b2:01)
cli_mac=02:00:00:00:c1:01
inter=500 fall=3 rise=2 timeout=400  # health checks (ms)
kif=vlk                              # --kernel-if: TAP vlk0 (untagged: Sluice tags its frames)
bv=${VLAN_LAB_BACKEND_VLAN:-200}  # the backend side's VLAN (0: untagged, the trunk's native VLAN)
[[ $bv =~ ^[0-9]+$ ]] && [ "$bv" -le 4094 ] && [ "$bv" != 100 ] && [ "$bv" != 300 ] ||
  { echo "vlan_lab: VLAN_LAB_BACKEND_VLAN=$bv: want 0 (untagged) or 1..4094 other than 100 and 300" >&2; exit 2; }
if [ "$bv" = 0 ]; then bside=untagged; else bside="VLAN $bv"; fi
kside=${kif}0
work=$(mktemp -d /tmp/sluice-vlan.XXXXXX)
sock=$work/sluice.sock
pids=() made_ns=()

cleanup() {
  set +e
  if [ -n "${sluice_pid:-}" ] && kill -INT "$sluice_pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$sluice_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sluice_pid" 2>/dev/null
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 20); do  # up to 2 s to exit on SIGTERM (the switch prints its counts)
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for n in "${made_ns[@]}"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "/var/run/dpdk/$tag"
  [ -n "${KEEP:-}" ] && echo "vlan_lab: kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "vlan_lab: $*"; }
ms() { date +%s%3N; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }
ctl() { in_ns "$ns_lb" timeout 10 "$ctl_bin" --socket "$sock" "$@"; }
die() {
  echo "vlan_lab: FAIL: $*" >&2
  ctl list --kv >&2 2>/dev/null
  ctl stats --kv 2>/dev/null | grep -E '^drop ' >&2
  [ -f "$work/sluice.log" ] && tail -40 "$work/sluice.log" >&2
  exit 1
}
skip() { echo "vlan_lab: SKIP: $*"; exit 77; }
t_begin=$(ms)

for n in "$ns_sw" "$ns_lb" "$ns_cli" "$ns_be1" "$ns_be2"; do
  ip netns add "$n" 2>/dev/null || skip "cannot create network namespaces"
  made_ns+=("$n")
done
# The switch has no address of its own: nothing of its leaks onto the trunk.
in_ns "$ns_sw" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

# ---- what the kernel can do ----------------------------------------------------------------
in_ns "$ns_sw" ip link add probe0 type veth peer name probe1
has_8021q=no has_bridge=no
in_ns "$ns_sw" ip link add link probe0 name probe0.5 type vlan id 5 2>/dev/null && has_8021q=yes
in_ns "$ns_sw" ip link add probebr type bridge 2>/dev/null && has_bridge=yes
in_ns "$ns_sw" ip link del probe0 2>/dev/null || true
in_ns "$ns_sw" ip link del probebr 2>/dev/null || true
trunk=${VLAN_LAB_TRUNK:-auto}
case $trunk in auto | kernel | user) ;; *) echo "vlan_lab: VLAN_LAB_TRUNK=$trunk: want auto, kernel or user" >&2; exit 2 ;; esac
if [ "$trunk" = auto ]; then
  [ $has_8021q = yes ] && [ $has_bridge = yes ] && trunk=kernel || trunk=user
fi
if [ "$trunk" = kernel ] && { [ $has_8021q = no ] || [ $has_bridge = no ]; }; then
  skip "VLAN_LAB_TRUNK=kernel needs 8021q and bridges (8021q: $has_8021q, bridge: $has_bridge)"
fi
say "trunk: $trunk switch (8021q: $has_8021q, bridge: $has_bridge); clients on VLAN 100, backends $bside; Sluice's kernel side: $([ -n "$static" ] && echo "none (VLAN_LAB_STATIC: static neighbours, no health checks)" || echo "$kside (a TAP, untagged in the kernel$([ "$bv" = 0 ] || echo "; its frames leave tagged $bv"))")"

# ---- topology ----------------------------------------------------------------------------------
offloads_off() { in_ns "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true; }
ip link add lb0 netns "$ns_lb" address "$lb_mac" type veth peer name tr0 netns "$ns_sw"
in_ns "$ns_lb" sysctl -qw net.ipv6.conf.lb0.disable_ipv6=1  # the kernel holds no address on it
ip link add eth0 netns "$ns_cli" address "$cli_mac" type veth peer name acc-cli netns "$ns_sw"
for i in 1 2; do
  ip link add eth0 netns "$tag-be$i" address "${BE_MAC[$i]}" type veth peer name acc-be$i netns "$ns_sw"
done
for l in tr0 acc-cli acc-be1 acc-be2; do offloads_off "$ns_sw" $l; in_ns "$ns_sw" ip link set $l up; done
offloads_off "$ns_lb" lb0
in_ns "$ns_lb" ip link set lo up
in_ns "$ns_lb" ip link set lb0 up
if [ "$trunk" = kernel ]; then
  # One bridge per side: brc joins the client to tr0.100, brb the backends to tr0.<bv> (to tr0
  # itself when the backends are untagged: its VLAN interfaces still take the tagged frames).
  bmember=tr0.$bv
  [ "$bv" = 0 ] && bmember=tr0
  in_ns "$ns_sw" ip link add link tr0 name tr0.100 type vlan id 100
  [ "$bv" = 0 ] || in_ns "$ns_sw" ip link add link tr0 name "$bmember" type vlan id "$bv"
  for b in brc brb; do  # no MLD snooping: every multicast frame is flooded, as on a plain switch
    in_ns "$ns_sw" ip link add $b type bridge mcast_snooping 0 2>/dev/null || in_ns "$ns_sw" ip link add $b type bridge
  done
  in_ns "$ns_sw" ip link set tr0.100 master brc
  in_ns "$ns_sw" ip link set "$bmember" master brb
  in_ns "$ns_sw" ip link set acc-cli master brc
  in_ns "$ns_sw" ip link set acc-be1 master brb
  in_ns "$ns_sw" ip link set acc-be2 master brb
  for l in tr0.100 "$bmember" brc brb; do offloads_off "$ns_sw" $l; in_ns "$ns_sw" ip link set $l up; done
else
  ip netns exec "$ns_sw" "$py" "$helper" switch tr0 100=acc-cli "$bv=acc-be1,acc-be2" >"$work/switch.log" 2>&1 &
  pids+=("$!")
fi

in_ns "$ns_cli" ip link set lo up
in_ns "$ns_cli" ip addr add 192.0.2.10/24 dev eth0
in_ns "$ns_cli" ip -6 addr add 2001:db8:1::10/64 dev eth0 nodad
in_ns "$ns_cli" ip link set eth0 up
offloads_off "$ns_cli" eth0
in_ns "$ns_cli" ip route add 203.0.113.0/24 dev eth0      # the VIPs are on-link: Sluice answers ARP
in_ns "$ns_cli" ip -6 route add 2001:db8:3::/64 dev eth0  # and neighbour solicitations for them
for i in 1 2; do
  n=$tag-be$i
  in_ns "$n" ip link set lo up
  in_ns "$n" ip addr add 198.51.100.1$i/24 dev eth0
  in_ns "$n" ip -6 addr add 2001:db8:2::1$i/64 dev eth0 nodad
  in_ns "$n" ip link set eth0 up
  offloads_off "$n" eth0
  # nat: replies must go back through Sluice, the backends' gateway.
  in_ns "$n" ip route add default via 198.51.100.1
  in_ns "$n" ip -6 route add default via 2001:db8:2::1
done

# ---- the capture on the trunk, from before Sluice starts (its ARP/ND included) --------------------
ip netns exec "$ns_sw" "$py" "$helper" sniff tr0 "$lb_mac" "$work/capture.json" >"$work/sniff.log" 2>&1 &
sniff_pid=$!
pids+=("$sniff_pid")
t0=$(ms)
until [ -f "$work/capture.json.ready" ]; do
  [ $(($(ms) - t0)) -lt 10000 ] || die "the trunk sniffer did not start: $(cat "$work/sniff.log")"
  sleep 0.1
done

# ---- backends: HTTP servers (IPv4 and IPv6 on one socket) -------------------------------------------
# The blob is what clients fetch (names its backend, then 48 KiB of random bytes: frames of
# full size, tagged); /health is what the health check reads.
for i in 1 2; do
  mkdir -p "$work/www$i"
  { echo "backend be$i"; head -c 49152 /dev/urandom; } >"$work/www$i/blob"
  echo "ok be$i" >"$work/www$i/health"
done
start_backend() {  # `ip netns exec` execs the server, so $! is the server itself
  ip netns exec "$tag-be$1" "$py" -m http.server 8080 --bind :: --directory "$work/www$1" >>"$work/be$1.log" 2>&1 &
  eval "be${1}_pid=$!"
  pids+=("$!")
}
stop_backend() { local v="be${1}_pid"; kill "${!v}"; wait "${!v}" 2>/dev/null || true; }
for i in 1 2; do start_backend $i; done

# ---- Sluice --------------------------------------------------------------------------------------------
if [ -n "$static" ]; then
  check="check=none"
  side=$(printf 'neighbor = 198.51.100.1%s,%s\nneighbor = 2001:db8:2::1%s,%s\n' 1 "${BE_MAC[1]}" 1 "${BE_MAC[1]}" 2 "${BE_MAC[2]}" 2 "${BE_MAC[2]}")
else
  check="check=http,inter=${inter}ms,fall=$fall,rise=$rise,timeout=${timeout}ms,http-path=/health,http-body=ok"
  side="kernel-if = $kif"
fi
cat >"$work/sluice.conf" <<EOF
vip = vl4,203.0.113.10:80/tcp,nat,$check
backend = vl4,198.51.100.11:8080
backend = vl4,198.51.100.12:8080
vip = vl6,[2001:db8:3::10]:80/tcp,nat,$check
backend = vl6,[2001:db8:2::11]:8080
backend = vl6,[2001:db8:2::12]:8080
self = 198.51.100.1/24
self = 2001:db8:2::1/64
client-vlan = 100
$([ "$bv" = 0 ] || echo "backend-vlan = $bv")
$side
control-socket = $sock
EOF
ip netns exec "$ns_lb" "$sluice" -l 0 --no-huge -m 512 --no-pci --file-prefix "$tag" \
  --vdev net_af_packet0,iface=lb0 -- --config "$work/sluice.conf" --flow-capacity 4096 \
  ${VLAN_LAB_SLUICE_OPTS:-} >"$work/sluice.log" 2>&1 &
sluice_pid=$!

lines=() failures=()
pass() { lines+=("  PASS $*"); }
fail() { lines+=("  FAIL $1"); failures+=("$2"); }
skipped() { lines+=("  SKIP $*"); }

# Up: the control socket answers, the four backends are listed with their MACs, and (full)
# the health checks have passed through the kernel side.
t0=$(ms)
until out=$(ctl list --kv 2>/dev/null) && [ "$(grep -c '^ *backend ' <<<"$out")" = 4 ] && ! grep -q 'mac=unresolved' <<<"$out" &&
  { [ -n "$static" ] || [ "$(grep -c 'state=up .*last_check="http status 200"' <<<"$out")" = 4 ]; }; do
  kill -0 "$sluice_pid" 2>/dev/null || die "Sluice exited: $(grep -iE 'error|cannot|fail' "$work/sluice.log" | tail -3)"
  [ $(($(ms) - t0)) -lt 25000 ] || die "Sluice not up with 4 resolved$([ -n "$static" ] || echo ", healthy") backends within 25 s"
  sleep 0.2
done
t_up=$(($(ms) - t0))
say "Sluice up in $t_up ms; the lab took $(($(ms) - t_begin)) ms"
list0=$out

# ---- the kernel side and the backends' resolution ----------------------------------------------------------
if [ -n "$static" ]; then
  skipped "kernel side on the backend side, ARP/ND resolution, health checks (VLAN_LAB_STATIC: static neighbours)"
else
  vinfo=$(in_ns "$ns_lb" ip -d addr show dev "$kside" 2>&1 || true)
  # Sluice makes no VLAN interface: nothing in its namespace is an 802.1Q device or <kif>0.*.
  vlans=$(in_ns "$ns_lb" ip -d -o link show 2>/dev/null | grep -E "vlan protocol|: ${kif}[0-9]+[.@]" | cut -d' ' -f2 | paste -sd' ' || true)
  if grep -q "^[0-9]*: $kside: " <<<"$vinfo" && grep -q "inet 198.51.100.1/24" <<<"$vinfo" &&
    grep -q "inet6 2001:db8:2::1/64" <<<"$vinfo" && grep -q "link/ether $lb_mac" <<<"$vinfo" &&
    ! grep -q "vlan protocol" <<<"$vinfo" && [ -z "$vlans" ]; then
    pass "kernel side: $kside (TAP$(grep -qw tun <<<"$vinfo" && echo ", tun"), untagged), MAC $lb_mac, holds 198.51.100.1/24 and 2001:db8:2::1/64; no VLAN interface in Sluice's namespace"
  else
    fail "kernel side: $kside missing or wrong (VLAN interfaces in Sluice's namespace: ${vlans:-none}): $(tr '\n' ' ' <<<"$vinfo")" kernel-side
  fi
  why=()
  for i in 1 2; do
    for a in 198.51.100.1$i:8080 "[2001:db8:2::1$i]:8080"; do
      l=$(grep -F "backend $a " <<<"$list0" || true)
      grep -q "mac=${BE_MAC[$i]}" <<<"$l" || why+=("$a: not learnt as ${BE_MAC[$i]}: $l")
    done
  done
  if [ ${#why[@]} = 0 ]; then
    pass "backends resolved by ARP and ND, $bside (no --neighbor): be1 ${BE_MAC[1]}, be2 ${BE_MAC[2]}, IPv4 and IPv6"
  else
    fail "backend MACs: $(printf '%s; ' "${why[@]}")" resolution
  fi
  pass "health checks (http /health through $kside) mark all 4 backends up within $t_up ms of the start"
fi

# ---- isolation: the VLANs meet only in Sluice ---------------------------------------------------------
if in_ns "$ns_cli" timeout 5 "$py" "$helper" arp eth0 192.0.2.10 198.51.100.11 1 >"$work/arp1" 2>&1 ||
  in_ns "$ns_be1" timeout 5 "$py" "$helper" arp eth0 198.51.100.11 192.0.2.10 1 >"$work/arp2" 2>&1; then
  fail "isolation: client and backend reach each other directly: $(cat "$work/arp1" "$work/arp2" 2>/dev/null)" isolation
else
  pass "isolation: the client's ARP for be1 and be1's ARP for the client go unanswered"
fi

# ---- traffic ------------------------------------------------------------------------------------------------
# N connections through VIP $1: "be1 be2 failed errors..."
requests() {
  local out
  out=$(in_ns "$ns_cli" timeout 100 "$py" "$helper" get "$1" 80 /blob "$2" be1="$work/www1/blob" be2="$work/www2/blob" 2>&1) ||
    { echo "0 0 $2 helper failed: $out"; return; }
  "$py" -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["counts"]["be1"], r["counts"]["be2"], r["failed"], " | ".join(r["errors"]))' "$out"
}
client_lines() { cat "$work"/be[12].log 2>/dev/null | grep -c "^$1 .*\"GET /blob HTTP/1.0\" 200" || true; }
declare -A N=([203.0.113.10]=50 [2001:db8:3::10]=20)
declare -A CLI=([203.0.113.10]=::ffff:192.0.2.10 [2001:db8:3::10]=2001:db8:1::10)
t_traffic=$(ms)
for vip in 203.0.113.10 2001:db8:3::10; do
  before=$(client_lines "${CLI[$vip]}")
  read -r a b bad errs <<<"$(requests $vip ${N[$vip]})"
  seen=$(($(client_lines "${CLI[$vip]}") - before))
  label="${N[$vip]} connections to $vip:80 (client VLAN 100 -> backends $bside)"
  if [ "$bad" = 0 ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$seen" = "${N[$vip]}" ]; then
    pass "$label: all byte-exact ($(stat -c %s "$work/www1/blob") bytes), be1 $a, be2 $b; the backends logged $seen from ${CLI[$vip]#::ffff:}"
  else
    fail "$label: be1 $a, be2 $b, failed $bad, backends logged $seen from ${CLI[$vip]#::ffff:}${errs:+: $errs}" "traffic-$vip"
  fi
done
t_traffic=$(($(ms) - t_traffic))

# ---- the capture: which VLAN each kind of frame used ---------------------------------------------------
kill -TERM "$sniff_pid" 2>/dev/null || true
for _ in $(seq 50); do [ -f "$work/capture.json" ] && break; sleep 0.1; done
if [ ! -f "$work/capture.json" ]; then
  fail "trunk capture: the sniffer wrote nothing ($(cat "$work/sniff.log"))" capture
elif verdict=$("$py" "$helper" tags "$work/capture.json" "$([ -n "$static" ] && echo static || echo full)" "$bv"); then
  pass "trunk capture (tr0): client traffic on VLAN 100, backend traffic $bside, both ways:"
  lines+=("$(sed 's/^/        /' <<<"$verdict")")
else
  fail "trunk capture (tr0): frames on the wrong VLAN:" capture
  lines+=("$(sed 's/^/        /' <<<"$verdict")")
fi

# ---- foreign VLANs and MACs -------------------------------------------------------------------------------
dnum() { local v; v=$(grep -o "^drop $1=[0-9]*" <<<"$2" | cut -d= -f2); echo "${v:-0}"; }
stats=$(ctl stats --kv 2>&1 || true)
fv0=$(dnum foreign_vlan "$stats") fm0=$(dnum foreign_mac "$stats")
if ! grep -q '^drop \|forwarded' <<<"$stats"; then
  fail "sluicectl stats unreadable: $stats" stats
elif [ "$fv0" = 0 ]; then
  pass "no foreign_vlan drop for all the lab's traffic (foreign_mac $fm0: flooded multicast; drops: $(grep '^drop ' <<<"$stats" | cut -d' ' -f2 | paste -sd' ' || true))"
else
  fail "foreign_vlan=$fv0 before any foreign frame was sent: the lab's own traffic was dropped" foreign-vlan
fi
send() { in_ns "$ns_sw" timeout 5 "$py" "$helper" send tr0 "$@"; }
send "$lb_mac" 300 192.0.2.10 203.0.113.10 40901 80        # VLAN 300: no side's
send "$lb_mac" 300 2001:db8:1::10 2001:db8:3::10 40902 80  # the same, IPv6
want_fv=2 what="on VLAN 300 (IPv4, IPv6)"
if [ "$bv" != 0 ]; then  # no side is untagged: untagged frames are foreign too
  send "$lb_mac" 0 192.0.2.10 203.0.113.10 40903 80
  send "$lb_mac" 0 2001:db8:1::10 2001:db8:3::10 40904 80
  want_fv=4 what="untagged and on VLAN 300 (IPv4, IPv6)"
fi
send "$lb_mac" 100 192.0.2.10 203.0.113.10 40905 80        # the client VLAN: accepted
send 02:00:00:00:99:99 100 192.0.2.10 203.0.113.10 40906 80 "$cli_mac"  # another host's MAC
sleep 0.5
stats=$(ctl stats --kv 2>&1 || true)
fv=$(($(dnum foreign_vlan "$stats") - fv0)) fm=$(($(dnum foreign_mac "$stats") - fm0))
ex_bad=$(ctl explain tcp 192.0.2.10:40901 203.0.113.10:80 2>&1 || true)
ex_good=$(ctl explain tcp 192.0.2.10:40905 203.0.113.10:80 2>&1 || true)
if [ "$fv" = $want_fv ] && [ "$fm" -ge 1 ] && grep -q "flow-table hit" <<<"$ex_good" && ! grep -q "flow-table hit" <<<"$ex_bad"; then
  pass "SYNs to the VIP sent on the trunk $what -> foreign_vlan +$fv, no flow; on VLAN 100 -> a flow (explain: flow-table hit); to another MAC -> foreign_mac +$fm"
else
  fail "foreign frames: foreign_vlan +$fv (want $want_fv: $what), foreign_mac +$fm (want >= 1); explain VLAN 300 SYN: $ex_bad; explain VLAN 100 SYN: $ex_good" foreign-vlan
fi

# ---- a backend fails: health checks over VLAN 200 ---------------------------------------------------------
wait_state() {  # backend $1 in state $2 on both VIPs within $3 ms; prints the wait
  local t0; t0=$(ms)
  while :; do
    out=$(ctl list --kv 2>/dev/null || true)
    if grep -qF "backend 198.51.100.1$1:8080 state=$2 " <<<"$out" && grep -qF "backend [2001:db8:2::1$1]:8080 state=$2 " <<<"$out"; then
      echo $(($(ms) - t0)); return 0
    fi
    [ $(($(ms) - t0)) -lt "$3" ] || return 1
    sleep 0.1
  done
}
if [ -n "$static" ]; then
  skipped "a stopped backend marked down by its health check (VLAN_LAB_STATIC: no health checks)"
else
  stop_backend 2
  bound=$((fall * inter + timeout))
  if detect=$(wait_state 2 down $((bound + 3000))); then
    out=$(ctl list --kv 2>/dev/null || true)
    pass "be2 stopped -> marked down on both VIPs after $detect ms (fall x inter + timeout = $bound ms): $(grep -F 'backend 198.51.100.12:8080' <<<"$out" | grep -o 'last_change="[^"]*"' || true)"
    read -r a b bad errs <<<"$(requests 203.0.113.10 30)"
    read -r a6 b6 bad6 errs6 <<<"$(requests 2001:db8:3::10 10)"
    if [ "$bad" = 0 ] && [ "$b" = 0 ] && [ "$bad6" = 0 ] && [ "$b6" = 0 ] && [ "$a" = 30 ] && [ "$a6" = 10 ]; then
      pass "with be2 down: 30 IPv4 + 10 IPv6 connections all reach be1, byte-exact, none failed"
    else
      fail "with be2 down: IPv4 be1 $a be2 $b failed $bad; IPv6 be1 $a6 be2 $b6 failed $bad6 ${errs}${errs6}" avoid-down
    fi
  else
    out=$(ctl list --kv 2>/dev/null || true)
    fail "be2 stopped: not marked down within $((bound + 3000)) ms: $(grep -F '198.51.100.12' <<<"$out")" down
  fi
  start_backend 2
  rec=$(wait_state 2 up $((rise * inter + timeout + 5000))) || rec=
  out=$(ctl list --kv 2>/dev/null || true)
  if [ -n "$rec" ]; then
    pass "be2 restarted -> up again on both VIPs after $rec ms (rise = $rise)"
  else
    fail "be2 restarted: not up again: $(grep -F '198.51.100.12' <<<"$out")" recover
  fi
fi

# ---- neighbour claims are believed from the backend side only ---------------------------------------------
# One-arm, the side is the VLAN: a host on the client VLAN claiming a backend's address (what
# a host that takes an address over sends: gratuitous ARP, unsolicited NA with Override) must
# not redirect that backend's traffic.
if [ -n "$static" ]; then
  skipped "neighbour claims from the client VLAN (VLAN_LAB_STATIC: static neighbours always win)"
else
  spoof=02:00:00:00:66:66
  fv0=$(dnum foreign_vlan "$(ctl stats --kv 2>&1 || true)")
  in_ns "$ns_cli" timeout 5 "$py" "$helper" claim eth0 198.51.100.11 $spoof
  in_ns "$ns_cli" timeout 5 "$py" "$helper" claim eth0 2001:db8:2::11 $spoof
  sleep 0.5
  out=$(ctl list --kv 2>/dev/null || true)
  fv=$(($(dnum foreign_vlan "$(ctl stats --kv 2>&1 || true)") - fv0))
  learnt=$(grep -F -e "backend 198.51.100.11:8080 " -e "backend [2001:db8:2::11]:8080 " <<<"$out" | grep -c "mac=$spoof" || true)
  # Both claims are for the kernel side, which lives on the backend side's VLAN: foreign_vlan.
  if [ "$learnt" = 0 ] && ! grep -q "is at $spoof" "$work/sluice.log" && [ "$fv" = 2 ]; then
    pass "a client on VLAN 100 claiming be1's addresses (gratuitous ARP, unsolicited NA) changes nothing: both dropped as foreign_vlan (+$fv), be1 stays at ${BE_MAC[1]}"
  elif [ "$learnt" = 0 ] && ! grep -q "is at $spoof" "$work/sluice.log"; then
    fail "a client on VLAN 100 claimed be1's addresses: not believed, but foreign_vlan +$fv (want 2: the claims are for the kernel side, on $bside)" neighbor-claim
  else
    read -r a b bad errs <<<"$(requests 203.0.113.10 10)"
    fail "a client on VLAN 100 claimed be1's addresses and Sluice believed it ($learnt of 2 backend entries now mac=$spoof; log: $(grep "is at $spoof" "$work/sluice.log" | sed 's/^.*neighbor/neighbor/' | paste -sd';'))); then 10 IPv4 connections: be1 $a, be2 $b, failed $bad" neighbor-claim
  fi
fi

# ---- a clean stop ----------------------------------------------------------------------------------------------------
final_stats=$(ctl stats --kv 2>&1 || true)
kill -INT "$sluice_pid"
for _ in $(seq 100); do kill -0 "$sluice_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$sluice_pid" 2>/dev/null; then
  fail "Sluice did not stop within 10 s of SIGINT" stop
elif m=$(grep -o 'mbufs: all [0-9]* back in the pool' "$work/sluice.log"); then
  pass "Sluice stopped cleanly: $m"
else
  fail "Sluice's stop: $(grep -i mbuf "$work/sluice.log" || echo 'no mbuf report')" stop
fi
sluice_pid=

echo
echo "vlan_lab summary ($trunk trunk$([ -n "$static" ] && echo ", VLAN_LAB_STATIC"); traffic $t_traffic ms, the whole test $((($(ms) - t_begin) / 1000)) s):"
printf '%s\n' "${lines[@]}"
if [ ${#failures[@]} = 0 ]; then
  say "PASS: nat through Sluice with clients on VLAN 100 and backends $bside on one trunk$([ -n "$static" ] && echo " (data path only: VLAN_LAB_STATIC)")"
  exit 0
fi
set +e
echo "vlan_lab: evidence:"
echo "$final_stats" | grep -E '^drop |forwarded|to_kernel|vlan' | sed 's/^/  stats: /'
ctl list --kv 2>/dev/null | sed 's/^/  list: /'
[ -f "$work/switch.log" ] && sed 's/^/  switch: /' "$work/switch.log"
grep -vE '^EAL|^TELEMETRY' "$work/sluice.log" | tail -20 | sed 's/^/  log: /'
say "FAIL: ${failures[*]}"
exit 1
