# The cluster lab: N Sluice instances behind one ECMP router, each announcing the VIPs it can
# serve over BGP from its own BIRD. Sourced by scripts/lab, whose helpers it uses (in_ns, veth,
# bridge_port, offloads_off, start_backend, stop_backend, ms) and whose `down` removes it.
#
#   scripts/lab up cluster [N] [nat|dsr|fullnat]
#                                          N instances (1..9, default 3), mode (default nat)
#   scripts/lab cluster kill K             SIGKILL instance K's Sluice (its BIRD lives on)
#   scripts/lab cluster stop K             SIGTERM: Sluice withdraws, drains, exits
#   scripts/lab cluster start K            start instance K's Sluice (and its BIRD if gone)
#   scripts/lab cluster ctl K ARGS...      sluicectl against instance K
#   scripts/lab cluster birdc K|router ARGS...
#                                          birdc against instance K's or the router's BIRD
#   scripts/lab cluster status             each instance's VIP lines; the router's ECMP routes
#
# Topology (documentation addresses only):
#
#   client (192.0.2.10-59, 2001:db8:1::10-59: many sources, so that ECMP spreads them)
#      |  c0 -- r0 (192.0.2.1, 2001:db8:1::1)
#   router: BIRD, one BGP session per instance and family, BFD on each; `merge paths` turns
#      |    the VIP routes into ECMP routes (layer-4 hash: fib_multipath_hash_policy=1)
#      |  r1 (198.51.100.254, 2001:db8:2::fe)
#   [fabric: bridge br0 in namespace sll-lanb] ----+------------------+--------------+
#      |                    |                       |                  |              |
#   sll-lb1 ... sll-lbN: Sluice, one-arm           be1   be2   be3   be4   (198.51.100.11-14,
#     data port `data` (net_af_packet)                                    2001:db8:2::11-14)
#     kernel side TAP tap0: self 198.51.100.K/24, 2001:db8:2::K/64, and the VIPs it announces
#     BIRD: protocol direct on tap0 -> BGP to the router (BGP and BFD go through Sluice:
#     kernel -> tap0 -> Sluice -> data -> fabric -> router, and back)
#
# VIPs web 203.0.113.10:80/tcp and web6 [2001:db8:3::10]:80/tcp, be1-be3 with weights 1, 2, 3
# and HTTP checks, on every instance (so every instance builds the same Maglev table).
#   dsr  backends hold the VIPs on loopback (ARP/ND suppressed) and answer through the router.
#   nat  backends' answers must reach a live instance: their default routes go to a nexthop
#        group of the instances' self addresses, whose members with a failed neighbour entry
#        the kernel skips (managed entries, short neighbour timers); any instance translates
#        them back (client-gateway: the router's MAC for flows it never saw).
#   fullnat  instance K owns SNAT 203.0.113.20K and 2001:db8:3::20K and replicates its
#        sessions and persistence entries to the others (--sync-*, over the kernel side,
#        through Sluice like BGP); each announces its own SNAT addresses and, with a longer AS
#        path, its peers', so the router sends a dead instance's answers to the survivors,
#        which hold its sessions. Backends route through the router. A third VIP, sticky
#        203.0.113.10:81 / [2001:db8:3::10]:81, pins clients for 10 minutes (persist=).
# See docs/tier.md for the BIRD configurations and the measured failure times.

CL_AS_ROUTER=65000
CL_AS_LB=65001
# BFD: 200 ms x 5 = a dead instance's routes go after 1 s; measured not to flap with three
# instances and the test's load on two cores (docs/tier.md).
CL_BFD_MS=200
CL_BFD_MULT=5

cl_ns() { echo "$P-lb$1"; }
cl_dir() { echo "$state/lb$1"; }
cl_ctl() { local k=$1; shift; in_ns "$(cl_ns "$k")" "$ctl_bin" --socket "$(cl_dir "$k")/sluice.sock" "$@"; }
cl_birdc() {  # K|router ARGS...
  local k=$1 ns sock; shift
  if [ "$k" = router ]; then ns=$NS_R sock=$state/router/bird.ctl; else ns=$(cl_ns "$k") sock=$(cl_dir "$k")/bird.ctl; fi
  in_ns "$ns" birdc -s "$sock" "$@"
}
cl_count() { cat "$state/cluster" | cut -d' ' -f1; }
cl_mode() { cat "$state/cluster" | cut -d' ' -f2; }
cl_alive() { local f; f=$(cl_dir "$1")/$2.pid; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

cl_sluice_conf() {  # K
  local k=$1 check="check=http,inter=500ms,fall=3,rise=2,timeout=400ms,http-body=backend" i
  {
    echo "# Written by scripts/lab (cluster, $mode, instance $k)."
    echo "vip = web,203.0.113.10:80/tcp,$mode,$check"
    echo "vip = web6,[2001:db8:3::10]:80/tcp,$mode,$check"
    for i in 1 2 3; do
      echo "backend = web,198.51.100.1$i:80,weight=$i"
      echo "backend = web6,[2001:db8:2::1$i]:80,weight=$i"
    done
    if [ "$mode" = fullnat ]; then
      echo "vip = sticky,203.0.113.10:81/tcp,fullnat,persist=10m,$check"
      echo "vip = sticky6,[2001:db8:3::10]:81/tcp,fullnat,persist=10m,$check"
      for i in 1 2 3; do
        echo "backend = sticky,198.51.100.1$i:80"
        echo "backend = sticky6,[2001:db8:2::1$i]:80"
      done
      echo "snat = 203.0.113.20$k"
      echo "snat = 2001:db8:3::20$k"
      echo "sync-id = $k"
      echo "sync-listen = 198.51.100.$k"
      echo "sync-key = $state/sync.key"
      echo "sync-min-age = ${SLUICE_CLUSTER_SYNC_AGE:-200ms}"
      for j in $(seq "$(cl_count)"); do
        [ "$j" = "$k" ] || echo "sync-peer = $j,198.51.100.$j,snat=203.0.113.20$j,snat=2001:db8:3::20$j"
      done
    fi
    echo "self = 198.51.100.$k/24"
    echo "self = 2001:db8:2::$k/64"
    echo "kernel-if = tap"
    echo "control-socket = $(cl_dir "$k")/sluice.sock"
    echo "timeout-tcp-closing = 2"
    echo "flow-capacity = 65536"
    # The tier: VIPs on tap0 while they can be served (BIRD announces them); workers that give
    # the shared cores away when idle; SIGTERM withdraws and forwards this long before exiting.
    echo "announce = yes"
    echo "idle-sleep = 200"
    echo "drain-time = ${SLUICE_CLUSTER_DRAIN:-10}"
    if [ "$mode" != dsr ]; then
      echo "client-gateway = 198.51.100.254"
      echo "client-gateway = 2001:db8:2::fe"
    fi
  } >"$(cl_dir "$k")/sluice.conf"
}

# BIRD's BGP timers for both ends: BFD finds a dead peer; after an error a session may start
# again within a second, so a restarted instance is back at once.
cl_bgp_timers() {
  echo "hold time 9; keepalive time 3; connect delay time 1; connect retry time 2;"
  echo "  error wait time 1, 5; error forget time 10; bfd on;"
}

cl_bird_instance_conf() {  # K
  local k=$1
  cat >"$(cl_dir "$k")/bird.conf" <<EOF
# Instance $k: announces the VIPs Sluice has put on its kernel side (tap0) to the router.
log "$(cl_dir "$k")/bird.log" { info, warning, error, fatal, remote, auth };
router id 198.51.100.$k;
protocol device { scan time 10; }
# The VIPs Sluice holds on tap0 (and the self prefixes, which the filters keep to themselves).
protocol direct { ipv4; ipv6; interface "tap0"; }
protocol bfd { interface "tap0" { interval $CL_BFD_MS ms; multiplier $CL_BFD_MULT; }; }
# A peer's SNAT address (fullnat): announced with a longer AS path than its owner's, so the
# router uses this instance for it only once the owner is gone.
filter vips4 {
  if net ~ [ 203.0.113.200/29{32,32} ] && net != 203.0.113.20$k/32 then bgp_path.prepend($CL_AS_LB);
  if net ~ [ 203.0.113.0/24{32,32} ] then accept; reject;
}
filter vips6 {
  if net ~ [ 2001:db8:3::200/125{128,128} ] && net != 2001:db8:3::20$k/128 then bgp_path.prepend($CL_AS_LB);
  if net ~ [ 2001:db8:3::/64{128,128} ] then accept; reject;
}
template bgp uplink {
  local as $CL_AS_LB;
  $(cl_bgp_timers)
}
protocol bgp uplink4 from uplink {
  local 198.51.100.$k; neighbor 198.51.100.254 as $CL_AS_ROUTER;
  ipv4 { import none; export filter vips4; next hop self; };
}
protocol bgp uplink6 from uplink {
  local 2001:db8:2::$k; neighbor 2001:db8:2::fe as $CL_AS_ROUTER;
  ipv6 { import none; export filter vips6; next hop self; };
}
EOF
}

cl_bird_router_conf() {  # N
  local n=$1 k d=$state/router
  {
    cat <<EOF
# The router: learns each VIP from every instance that announces it and installs one ECMP
# route per VIP (merge paths), a nexthop per instance.
log "$d/bird.log" all;
# Session and BFD state changes in the log: the tests count them (a flap is a failure).
debug protocols { states };
router id 198.51.100.254;
protocol device { scan time 10; }
filter vips4 { if net ~ [ 203.0.113.0/24{32,32} ] then accept; reject; }
filter vips6 { if net ~ [ 2001:db8:3::/64{128,128} ] then accept; reject; }
protocol kernel kernel4 { ipv4 { import none; export filter vips4; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export filter vips6; }; merge paths on; }
protocol bfd { interface "r1" { interval $CL_BFD_MS ms; multiplier $CL_BFD_MULT; }; }
template bgp lb {
  local as $CL_AS_ROUTER;
  $(cl_bgp_timers)
}
EOF
    for k in $(seq "$n"); do
      cat <<EOF
protocol bgp lb${k}_4 from lb {
  local 198.51.100.254; neighbor 198.51.100.$k as $CL_AS_LB;
  ipv4 { import filter vips4; export none; };
}
protocol bgp lb${k}_6 from lb {
  local 2001:db8:2::fe; neighbor 2001:db8:2::$k as $CL_AS_LB;
  ipv6 { import filter vips6; export none; next hop prefer global; };
}
EOF
    done
  } >"$d/bird.conf"
}

cl_start_bird() {  # K|router
  local k=$1 ns d
  if [ "$k" = router ]; then ns=$NS_R d=$state/router; else ns=$(cl_ns "$k") d=$(cl_dir "$k"); fi
  in_ns "$ns" bird -c "$d/bird.conf" -s "$d/bird.ctl" -P "$d/bird.pid" 2>>"$d/bird.log" ||
    { echo "lab: BIRD ($k) did not start:" >&2; tail -5 "$d/bird.log" >&2; return 1; }
}

# Starts instance K's Sluice; with `wait`, returns once its backends are up and its kernel
# side holds its addresses, then starts its BIRD if it is not running.
cl_start() {  # K
  local k=$1 d ns t0 vdev
  d=$(cl_dir "$k") ns=$(cl_ns "$k")
  if cl_alive "$k" sluice; then echo "lab: instance $k is running" >&2; return 1; fi
  rm -rf "/var/run/dpdk/sluice-cl-$k"
  vdev=net_af_packet0,iface=data
  ip netns exec "$ns" "$sluice" -l 0 --no-huge -m 256 --no-pci --file-prefix "sluice-cl-$k" --vdev "$vdev" -- \
    --config "$d/sluice.conf" >>"$d/sluice.log" 2>&1 &
  echo $! >"$d/sluice.pid"
  t0=$(ms)
  # Up: every backend checked, the self addresses on tap0, and its IPv6 link-local address
  # usable (BGP over IPv6 sends it as a next hop).
  local want=6
  [ "$mode" = fullnat ] && want=12
  until [ "$(cl_ctl "$k" list --kv 2>/dev/null | grep -c 'state=up .*last_check="http status 200"')" = "$want" ] &&
        in_ns "$ns" ip addr show dev tap0 2>/dev/null | grep -q "198.51.100.$k/" &&
        in_ns "$ns" ip -6 addr show dev tap0 scope link 2>/dev/null | grep -v tentative | grep -q fe80; do
    if ! cl_alive "$k" sluice || [ $(($(ms) - t0)) -gt 30000 ]; then
      echo "lab: instance $k did not come up; its log:" >&2
      tail -30 "$d/sluice.log" >&2
      return 1
    fi
    sleep 0.1
  done
  cl_alive "$k" bird || cl_start_bird "$k"
}

cl_make_instance() {  # K
  local k=$1 ns
  ns=$(cl_ns "$k")
  mkdir -p "$(cl_dir "$k")"
  ip netns add "$ns"
  veth data "$ns" "lb$k" "$NS_LBN"
  bridge_port "$NS_LBN" br0 "lb$k"
  in_ns "$ns" ip link set lo up
  in_ns "$ns" sysctl -qw net.ipv6.conf.data.disable_ipv6=1   # the kernel holds no address on it
  # net_af_packet leaves the kernel its copy of every frame: it must not take the IPv4 ones for
  # the addresses on tap0 (a fullnat answer to a SNAT address would get a RST from the kernel)
  # nor answer ARP on the wire. Strict reverse-path filtering drops them all: no route points
  # at `data`.
  in_ns "$ns" sysctl -qw net.ipv4.conf.data.rp_filter=1 net.ipv4.conf.data.arp_ignore=8
  in_ns "$ns" ip link set data up
  offloads_off "$ns" data
  cl_sluice_conf "$k"
  cl_bird_instance_conf "$k"
}

cl_make_backend() {  # I N
  local i=$1 n=$2 ns k hops4="" hops6="" dev=eth0
  ns=$(be_ns "$i")
  ip netns add "$ns"
  veth eth0 "$ns" "be$i" "$NS_LBN"
  bridge_port "$NS_LBN" br0 "be$i"
  in_ns "$ns" ip link set lo up
  in_ns "$ns" ip addr add "198.51.100.1$i/24" dev eth0
  in_ns "$ns" ip -6 addr add "2001:db8:2::1$i/64" dev eth0 nodad
  in_ns "$ns" ip link set eth0 up
  offloads_off "$ns" eth0
  if [ "$mode" = fullnat ]; then
    # Answers go to the SNAT addresses, which the router routes to their owner (or, once it
    # is gone, to a peer holding its sessions); no ICMP redirects around the router.
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.eth0.accept_redirects=0 \
      net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.eth0.accept_redirects=0
    in_ns "$ns" ip route add default via 198.51.100.254
    in_ns "$ns" ip -6 route add default via 2001:db8:2::fe
  elif [ "$mode" = dsr ]; then
    in_ns "$ns" ip addr add 203.0.113.10/32 dev lo
    in_ns "$ns" ip -6 addr add 2001:db8:3::10/128 dev lo nodad
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
    in_ns "$ns" ip route add default via 198.51.100.254
    in_ns "$ns" ip -6 route add default via 2001:db8:2::fe
  else
    # Answers go to a live instance: a default route per family over a nexthop group of the
    # instances' self addresses (layer-4 hash). The kernel skips a group member whose
    # neighbour entry is not valid (both families, unlike plain multipath routes, where IPv6
    # still uses a nexthop whose entry is INCOMPLETE); `managed` entries are kept resolved by
    # the kernel itself, every second, so a dead instance's entry fails within ~2 s even when
    # no packet is sent to it, and a restarted one's is valid again within a second.
    in_ns "$ns" sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
    for f in ipv4 ipv6; do
      in_ns "$ns" sysctl -qw "net.$f.neigh.$dev.base_reachable_time_ms=1000" \
        "net.$f.neigh.$dev.delay_first_probe_time=0" "net.$f.neigh.$dev.retrans_time_ms=250" \
        "net.$f.neigh.$dev.ucast_solicit=2" "net.$f.neigh.$dev.mcast_solicit=2" \
        "net.$f.neigh.$dev.interval_probe_time_ms=1000"
    done
    for k in $(seq "$n"); do
      in_ns "$ns" ip nexthop add id "$k" via "198.51.100.$k" dev $dev
      in_ns "$ns" ip nexthop add id "1$k" via "2001:db8:2::$k" dev $dev
      in_ns "$ns" ip neigh replace "198.51.100.$k" dev $dev managed
      in_ns "$ns" ip -6 neigh replace "2001:db8:2::$k" dev $dev managed
      hops4+="${hops4:+/}$k" hops6+="${hops6:+/}1$k"
    done
    in_ns "$ns" ip nexthop add id 100 group "$hops4"
    in_ns "$ns" ip nexthop add id 106 group "$hops6"
    in_ns "$ns" ip route add default nhid 100
    in_ns "$ns" ip -6 route add default nhid 106
  fi
}

# The router's ECMP nexthops for VIP address $1: one line per nexthop address.
cl_nexthops() {
  local fam=-4
  case $1 in *:*) fam=-6 ;; esac
  in_ns "$NS_R" ip "$fam" route show "$1" 2>/dev/null | grep -o 'via [0-9a-f:.]*' | cut -d' ' -f2 | sort -u
}

cluster_up() {
  local n=3 k i t0 a
  mode=nat
  for a in "$@"; do
    case $a in
      [1-9]) n=$a ;;
      nat|dsr|fullnat) mode=$a ;;
      *) echo "lab: up cluster [N 1..9] [nat|dsr|fullnat]" >&2; exit 2 ;;
    esac
  done
  down
  trap 'down; exit 130' INT TERM
  trap 'rc=$?; [ $rc = 0 ] || down; exit $rc' EXIT
  "$root/scripts/install-deps"
  if [ -n "${SLUICE_BIN:-}${SLUICECTL:-}" ]; then
    for b in "$sluice" "$ctl_bin"; do
      [ -x "$b" ] || { echo "lab: $b (SLUICE_BIN, SLUICECTL) is not an executable" >&2; exit 2; }
    done
  elif [ ! -x "$sluice" ] || [ ! -x "$ctl_bin" ]; then
    . "$root/scripts/lib/build.sh"
    build_quietly "$root/build" apps/sluice apps/sluicectl
  fi
  t0=$(ms)
  mkdir -p "$state/router"
  echo "$mode" >"$state/mode"   # scripts/lab backend N stop|start reads it
  echo "$n $mode" >"$state/cluster"
  # The tier's replication key (fullnat): one for every instance, readable by root only.
  (umask 077; head -c 32 /dev/urandom >"$state/sync.key")
  for ns in "$NS_C" "$NS_R" "$NS_LBN"; do ip netns add "$ns"; done
  in_ns "$NS_LBN" ip link add br0 type bridge mcast_snooping 0
  in_ns "$NS_LBN" ip link set br0 up
  in_ns "$NS_LBN" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
    net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
  # Clients: many addresses on one link to the router.
  veth c0 "$NS_C" r0 "$NS_R"
  in_ns "$NS_C" ip link set lo up
  for i in $(seq 10 59); do
    in_ns "$NS_C" ip addr add "192.0.2.$i/24" dev c0
    in_ns "$NS_C" ip -6 addr add "2001:db8:1::$i/64" dev c0 nodad
  done
  in_ns "$NS_C" ip link set c0 up
  offloads_off "$NS_C" c0
  in_ns "$NS_C" ip route add default via 192.0.2.1
  in_ns "$NS_C" ip -6 route add default via 2001:db8:1::1
  # The router.
  veth r1 "$NS_R" rt "$NS_LBN"
  bridge_port "$NS_LBN" br0 rt
  in_ns "$NS_R" ip link set lo up
  in_ns "$NS_R" ip addr add 192.0.2.1/24 dev r0
  in_ns "$NS_R" ip -6 addr add 2001:db8:1::1/64 dev r0 nodad
  in_ns "$NS_R" ip addr add 198.51.100.254/24 dev r1
  in_ns "$NS_R" ip -6 addr add 2001:db8:2::fe/64 dev r1 nodad
  for l in r0 r1; do in_ns "$NS_R" ip link set $l up; offloads_off "$NS_R" $l; done
  in_ns "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.r1.send_redirects=0
  # Backends (be4 is there for tests that add one) and their nginx.
  for i in 1 2 3 4; do cl_make_backend $i "$n"; done
  for i in 1 2 3; do start_backend $i; done
  # The router's BIRD first, so each instance's sessions come up as soon as it starts.
  cl_bird_router_conf "$n"
  cl_start_bird router
  for k in $(seq "$n"); do cl_make_instance "$k"; done
  for k in $(seq "$n"); do cl_start "$k" || exit 1; done
  # Up when the router has every instance as a nexthop of both VIPs.
  until [ "$(cl_nexthops 203.0.113.10 | wc -l)" = "$n" ] && [ "$(cl_nexthops 2001:db8:3::10 | wc -l)" = "$n" ]; do
    if [ $(($(ms) - t0)) -gt 60000 ]; then
      echo "lab: the router did not learn the VIPs from all $n instances; its sessions:" >&2
      cl_birdc router show protocols >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "lab: cluster lab up in $(($(ms) - t0)) ms ($sluice): $n $mode instances behind an ECMP router, clients 192.0.2.10-59 / 2001:db8:1::10-59, VIPs 203.0.113.10:80 and [2001:db8:3::10]:80, backends be1-be3 (weights 1, 2, 3)"
  trap - INT TERM EXIT
}

# Stops every instance at once without draining (SIGKILL: a drain would wait --drain-time),
# then the BIRDs; `down` removes the rest.
cluster_down() {
  local d pids=""
  for d in "$state"/lb[0-9]*; do
    [ -f "$d/sluice.pid" ] && kill -KILL "$(cat "$d/sluice.pid")" 2>/dev/null && pids+=" $(cat "$d/sluice.pid")"
  done
  for d in "$state"/lb[0-9]* "$state/router"; do
    [ -f "$d/bird.pid" ] && kill "$(cat "$d/bird.pid")" 2>/dev/null
  done
  for pid in $pids; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  done
  rm -rf /var/run/dpdk/sluice-cl-[0-9]*
  return 0
}

cluster_cmd() {
  local cmd=${1:-} k=${2:-} pid
  [ -f "$state/cluster" ] || { echo "lab: no cluster lab is up" >&2; exit 1; }
  mode=$(cl_mode)
  case $cmd in
    kill|stop|start|ctl)
      [[ $k =~ ^[1-9]$ ]] && [ "$k" -le "$(cl_count)" ] || { echo "lab: no instance '$k'" >&2; exit 2; } ;;
  esac
  case $cmd in
    kill)
      cl_alive "$k" sluice || { echo "lab: instance $k is not running" >&2; exit 1; }
      pid=$(cat "$(cl_dir "$k")/sluice.pid")
      kill -KILL "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done ;;
    stop)
      cl_alive "$k" sluice || { echo "lab: instance $k is not running" >&2; exit 1; }
      pid=$(cat "$(cl_dir "$k")/sluice.pid")
      kill -TERM "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done ;;
    start) cl_start "$k" ;;
    ctl) shift 2; cl_ctl "$k" "$@" ;;
    birdc) shift 2; cl_birdc "$k" "$@" ;;
    status)
      for k in $(seq "$(cl_count)"); do
        echo "instance $k:"
        cl_ctl "$k" list --kv 2>/dev/null | grep '^vip' | sed 's/^/  /' || echo "  (not running)"
      done
      echo "router:"
      in_ns "$NS_R" ip route show root 203.0.113.0/24 | sed 's/^/  /'
      in_ns "$NS_R" ip -6 route show root 2001:db8:3::/64 | sed 's/^/  /' ;;
    *) sed -n '4,13p' "$root/scripts/lib/lab_cluster.sh" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}
