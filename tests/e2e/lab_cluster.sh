#!/usr/bin/env bash
# End to end through a tier of Sluice instances behind an ECMP router (`scripts/lab up cluster 3
# MODE`, scripts/lib/lab_cluster.sh): each instance's BIRD announces the VIPs Sluice holds on
# its kernel side over BGP with BFD, through Sluice's own exception path; the router installs
# one ECMP route per VIP. For dsr and nat, IPv4 and IPv6 (SLUICE_CLUSTER_MODES picks modes):
#
#   lab_cluster.sh [SLUICE SLUICECTL]
#
#  1. Three instances announce both VIPs with equal Maglev digests; the router's FIB holds three
#     nexthops per VIP; 300 short connections per family (each its own source address and
#     port) all succeed, reach every instance, and spread over the backends by weight 1:2:3.
#  2. kill -9 of instance 2 while 30 paced 4 MiB downloads per family (SHA-256 checked) and a
#     stream of short connections run: the router loses its nexthop within 3 s (BFD 200 ms x 5)
#     and no new connection is lost (each has 5 s; the delayed ones are counted);
#     every download on the other instances completes byte-exact (some of them move between
#     survivors: the kernel's hash-threshold ECMP reshuffles, and the new instance picks them up
#     from the same Maglev table); the share of the killed instance's downloads that complete
#     is reported (dsr: all must). In nat a download also depends on the instance its backend
#     answers through (asked of the backend's kernel before the kill), counted as well.
#  3. Instance 2 starts again during downloads (2 -> 3 nexthops): none breaks; then instance 3
#     stops gracefully (SIGTERM, drain-time): it is withdrawn at once and no download breaks.
#  4. Every backend down: every instance withdraws both VIPs and the router loses the routes;
#     one backend back: announced again. Both times measured.
#  5. No BGP session flapped: the router logged session drops only for the killed and the
#     stopped instance. (Also timed: `sluicectl withdraw` and `announce` on one instance.)
# Figures are printed as they come and summed up at the end.
set -euo pipefail
[ $# = 0 ] || [ $# = 2 ] || { echo "usage: $0 [SLUICE SLUICECTL]" >&2; exit 2; }
. "$(dirname "$0")/../lib/lab_test.sh" cluster "$@"
# The graceful stop's drain must outlast the downloads it carries (step 3).
export SLUICE_CLUSTER_DRAIN=10

mode=none
summary=()
fail() {
  echo "lab_cluster: FAIL ($mode): $*" >&2
  "$lab" cluster status >&2 2>/dev/null || true
  for d in $state/lb[0-9]*; do
    [ -d "$d" ] || continue
    echo "--- ${d##*/}: sluice.log, bird.log" >&2
    tail -8 "$d/sluice.log" >&2 2>/dev/null || true
    tail -5 "$d/bird.log" >&2 2>/dev/null || true
  done
  echo "--- router: bird.log" >&2
  tail -10 $state/router/bird.log >&2 2>/dev/null || true
  exit 1
}
say() { echo "lab_cluster ($mode): $*"; }
note() { summary+=("$mode: $*"); say "$*"; }
load() { ip netns exec sll-client /usr/bin/python3 "$root/tests/e2e/cluster_load.py" "$@"; }
sluicectl=${SLUICECTL:-$root/build/apps/sluicectl}
ctl() { local k=$1; shift; ip netns exec "sll-lb$k" "$sluicectl" --socket "$state/lb$k/sluice.sock" "$@"; }

declare -A VIP=([4]=203.0.113.10 [6]=2001:db8:3::10)
declare -A NAME=([4]=web [6]=web6)
nh() { [ "$1" = 4 ] && echo "198.51.100.$2" || echo "2001:db8:2::$2"; }  # family K
# The router's nexthops for family F's VIP, as instance numbers ("1 2 3"; empty: no route).
nexthops() {
  ip netns exec sll-router ip "-$1" route show "${VIP[$1]}" 2>/dev/null |
    grep -o 'via [0-9a-f:.]*' | sed 's/.*[.:]//' | sort -n | paste -sd' '
}
# Waits until family F's nexthops are exactly WANT, at most LIMIT ms from T0 (ms); prints the
# time from T0, or fails with WHY.
await_nexthops() {  # F WANT T0 LIMIT WHY
  until [ "$(nexthops "$1")" = "$2" ]; do
    [ $(($(ms) - $3)) -lt "$4" ] || fail "$5 (router nexthops for ${VIP[$1]}: '$(nexthops "$1")', want '$2')"
    sleep 0.01
  done
  echo $(($(ms) - $3))
}
# A field of VIP NAME's line in instance K's list (empty if absent).
vip_field() {  # K NAME FIELD
  ctl "$1" list --kv 2>/dev/null | awk -v v="$2" -v f="$3" '$1 == "vip" && $2 == v {
    for (i = 3; i <= NF; i++) if (index($i, f "=") == 1) { print substr($i, length(f) + 2); exit } }'
}
# Is count $1 of $2 within 4 sigma of share $3/$4?
within() {
  awk -v got="$1" -v n="$2" -v w="$3" -v tot="$4" 'BEGIN {
    p = w / tot; mu = n * p; sd = sqrt(n * p * (1 - p)); d = got - mu; if (d < 0) d = -d;
    exit !(d <= 4 * sd) }'
}

# Paced downloads (COUNT per family, BYTES each at RATE bytes/s) over SPREAD nexthops, for both
# families at once, into $work/long-TAG-F; returns once every one has its headers.
start_downloads() {  # TAG COUNT BYTES SPREAD
  local f seed
  # Each set its own source ports: a port of a broken download of the set before may linger.
  seed=$(cksum <<<"$1" | cut -d' ' -f1)
  for f in 4 6; do
    load long --vip "${VIP[$f]}" --count "$2" --bytes "$3" --rate 300000 --spread "$4" --timeout 60 \
      --seed "$((seed + f))" --file $state/big.bin >"$work/long-$1-$f" 2>&1 &
    eval "dl_$1_$f=$!"
  done
  for f in 4 6; do
    local t0 p
    t0=$(ms) p="dl_$1_$f"
    until grep -q '^started' "$work/long-$1-$f"; do
      kill -0 "${!p}" 2>/dev/null || fail "downloads $1 (IPv$f) did not start: $(cat "$work/long-$1-$f")"
      [ $(($(ms) - t0)) -lt 20000 ] || fail "downloads $1 (IPv$f) did not start within 20 s"
      sleep 0.1
    done
  done
}
# nat: the instance through which each download of TAG is answered (the backend's own
# layer-4 choice in its nexthop group, asked before anything fails), into $work/back-TAG-F as
# "SRC SPORT K".
answer_paths() {  # TAG
  local f s p be k
  for f in 4 6; do
    awk '$1 == "plan" {sub("src=", "", $2); sub("sport=", "", $3); print $2, $3}' "$work/long-$1-$f" |
      while read -r s p; do
        if [ "$f" = 4 ]; then
          be=$(ctl 1 explain tcp "$s:$p" "${VIP[$f]}:80" | grep -o 'backend 198\.51\.100\.1[1-4]' | tail -c 2)
          k=$(ip netns exec "sll-be$be" ip -j route get "$s" from "198.51.100.1$be" ipproto tcp sport 80 dport "$p")
        else
          be=$(ctl 1 explain tcp "[$s]:$p" "[${VIP[$f]}]:80" | grep -o 'backend \[2001:db8:2::1[1-4]' | tail -c 2)
          k=$(ip netns exec "sll-be$be" ip -j -6 route get "$s" from "2001:db8:2::1$be" ipproto tcp sport 80 dport "$p")
        fi
        k=$(grep -o '"gateway":"[0-9a-f:.]*"' <<<"$k" | sed 's/.*[.:]\([0-9]*\)"$/\1/')
        echo "$s $p ${k:-?}"
      done >"$work/back-$1-$f"
  done
}
# Waits for downloads TAG; writes $work/done-TAG with a line per family: "F total ok
# total-on-K ok-on-K failures" for instance K (0: none), failures as src/sport(via,result).
finish_downloads() {  # TAG K
  local f p
  for f in 4 6; do
    p="dl_$1_$f"
    wait "${!p}" || fail "the IPv$f downloader ($1) failed: $(tail -3 "$work/long-$1-$f")"
  done
  for f in 4 6; do
    touch "$work/back-$1-$f"
    awk -v f="$f" -v k="$(nh "$f" "$2")" -v kk="$2" '
      FILENAME != ARGV[2] { back[$1 " " $2] = $3; next }
      $1 == "xfer" {
        s = $2; sub("src=", "", s); p = $3; sub("sport=", "", p); b = back[s " " p]
        n++; ok += ($5 == "result=ok")
        if ($4 == "via=" k || b == kk) { kn++; kok += ($5 == "result=ok") }
        if ($5 != "result=ok") bad = bad " " $2 "/" $3 "(" $4 ",answers-via=" (b == "" ? "router" : b) "," $5 ")" }
      END { print f, n, ok, kn + 0, kok + 0, (bad == "" ? "-" : bad) }' "$work/back-$1-$f" "$work/long-$1-$f"
  done >"$work/done-$1"
}
max_stall() { awk '$1 == "xfer" {split($8, a, "="); if (a[2] > m) m = a[2]} END {print m + 0}' "$work/long-$1-$2"; }

run_mode() {
  mode=$1
  local t0 f k a b c bad line n d
  rm -f "$work"/back-*
  "$lab" up cluster 3 "$mode" >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "the lab did not come up"; }
  sed 's/^lab: /  /' "$work/up.log"

  # ---- 1. announced everywhere, one Maglev table, ECMP spreads over instances and weights --------
  for f in 4 6; do
    [ "$(nexthops $f)" = "1 2 3" ] || fail "router nexthops for ${VIP[$f]}: '$(nexthops $f)'"
    d=""
    for k in 1 2 3; do
      [ "$(vip_field $k "${NAME[$f]}" announced)" = yes ] || fail "instance $k does not announce ${NAME[$f]}"
      line=$(vip_field $k "${NAME[$f]}" digest)
      [ -n "$line" ] || fail "instance $k lists no digest for ${NAME[$f]}"
      d+="$line "
    done
    [ "$(tr ' ' '\n' <<<"$d" | sort -u | grep -c .)" = 1 ] || fail "${NAME[$f]}: Maglev digests differ: $d"
    say "${NAME[$f]}: announced by 1 2 3, router nexthops $(nexthops $f), digest ${d%% *} on all three"
  done
  for k in 1 2 3; do ctl $k clear-counters >/dev/null; done
  for f in 4 6; do
    n=300
    load short --vip "${VIP[$f]}" --count $n >"$work/short-$f"
    a=$(awk '$1 == "be1" {print $2}' "$work/short-$f") b=$(awk '$1 == "be2" {print $2}' "$work/short-$f")
    c=$(awk '$1 == "be3" {print $2}' "$work/short-$f") bad=$(awk '$1 == "failed" {print $2}' "$work/short-$f")
    line=""
    for k in 1 2 3; do line+=" lb$k $(vip_field $k "${NAME[$f]}" new_flows)"; done
    note "IPv$f: $n connections: be1 ${a:-0}, be2 ${b:-0}, be3 ${c:-0} (weights 1:2:3), failed $bad; new flows per instance:$line"
    [ "$bad" = 0 ] || fail "IPv$f: $bad of $n connections failed"
    within "${a:-0}" $n 1 6 && within "${b:-0}" $n 2 6 && within "${c:-0}" $n 3 6 || fail "IPv$f: backends outside 4 sigma of 1:2:3"
    for k in 1 2 3; do
      within "$(vip_field $k "${NAME[$f]}" new_flows)" $n 1 3 || fail "IPv$f: instance $k's share is outside 4 sigma of a third"
    done
  done

  # sluicectl withdraw / announce: the whole instance leaves the routers' choice and comes back.
  t0=$(ms)
  ctl 1 withdraw >/dev/null
  for f in 4 6; do a=$(await_nexthops $f "2 3" "$t0" 5000 "sluicectl withdraw did not withdraw instance 1"); done
  [ "$(vip_field 1 web announced)" = no ] || fail "instance 1 lists web as announced after sluicectl withdraw"
  b=$(($(ms) - t0)) t0=$(ms)
  ctl 1 announce >/dev/null
  for f in 4 6; do a=$(await_nexthops $f "1 2 3" "$t0" 5000 "sluicectl announce did not bring instance 1 back"); done
  note "sluicectl withdraw on instance 1 -> off the router after $b ms; announce -> back after $(($(ms) - t0)) ms"

  # ---- 2. kill -9 of an instance under load --------------------------------------------------------
  # 8 MiB at 300 kB/s: about 28 s, so that nat's answer_paths (60 explain and route lookups)
  # and the 2 s wait end well before the downloads, even on a loaded host.
  start_downloads kill 30 $((8 << 20)) 3
  [ "$mode" != nat ] || answer_paths kill
  for f in 4 6; do
    load stream --vip "${VIP[$f]}" --rate 10 --seconds 10 >"$work/stream-$f" 2>&1 &
    eval "st_$f=$!"
  done
  sleep 2
  t0=$(ms)
  for f in 4 6; do await_nexthops $f "1 3" "$t0" 10000 "instance 2 was not withdrawn" >"$work/wd-$f" & eval "wd_$f=$!"; done
  "$lab" cluster kill 2
  d=$(($(ms) - t0))
  for f in 4 6; do p="dl_kill_$f"; kill -0 "${!p}" 2>/dev/null || fail "IPv$f: the downloads ended before the kill"; done
  for f in 4 6; do
    p="wd_$f"; wait "${!p}" || exit 1
    note "IPv$f: kill -9 of instance 2 -> router withdrew its nexthop after $(cat "$work/wd-$f") ms (process gone after $d ms)"
    [ "$(cat "$work/wd-$f")" -le 3000 ] || fail "IPv$f: withdrawal took over 3 s"
  done
  for f in 4 6; do p="st_$f"; wait "${!p}" || fail "the IPv$f stream failed"; done
  finish_downloads kill 2
  while read -r f n a kn kok bad; do
    note "IPv$f: downloads through the kill: $a of $n complete byte-exact; through the killed instance$([ "$mode" = nat ] && echo " (either way)") $kok of $kn; on survivors only $((a - kok)) of $((n - kn)); longest stall $(max_stall kill "$f") ms; $(cut -d' ' -f2- "$work/stream-$f") ${bad#-}"
    [ $((a - kok)) = $((n - kn)) ] || fail "IPv$f: a download on a surviving instance broke:$bad"
    [ "$mode" != dsr ] || [ "$kok" = "$kn" ] || fail "IPv$f (dsr): a download of the killed instance broke:$bad"
    grep -q ' failed=0 ' "$work/stream-$f" || fail "IPv$f: new connections were lost through the kill (5 s each): $(cat "$work/stream-$f")"
  done <"$work/done-kill"

  # ---- 3. 2 -> 3 during downloads, then a graceful stop ----------------------------------------------
  start_downloads grow 30 $((3 << 20)) 2
  sleep 1
  t0=$(ms)
  "$lab" cluster start 2 >/dev/null
  d=$(($(ms) - t0))
  for f in 4 6; do
    a=$(await_nexthops $f "1 2 3" "$t0" 20000 "instance 2 was not announced again")
    note "IPv$f: cluster start 2 -> back among the router's nexthops after $a ms (Sluice up with its backends checked after $d ms)"
  done
  finish_downloads grow 0
  while read -r f n a kn kok bad; do
    note "IPv$f: downloads while instance 2 joined: $a of $n complete byte-exact, longest stall $(max_stall grow "$f") ms ${bad#-}"
    [ "$a" = "$n" ] || fail "IPv$f: downloads broke while instance 2 joined:$bad"
  done <"$work/done-grow"
  start_downloads drain 30 $((2 << 20)) 3
  sleep 1
  t0=$(ms)
  "$lab" cluster stop 3 &
  stop_pid=$!
  for f in 4 6; do p="dl_drain_$f"; kill -0 "${!p}" 2>/dev/null || fail "IPv$f: the downloads ended before the stop"; done
  for f in 4 6; do
    a=$(await_nexthops $f "1 2" "$t0" 5000 "instance 3 was not withdrawn on SIGTERM")
    note "IPv$f: SIGTERM to instance 3 -> withdrawn after $a ms (drain-time $SLUICE_CLUSTER_DRAIN s)"
  done
  finish_downloads drain 3
  while read -r f n a kn kok bad; do
    note "IPv$f: downloads through the graceful stop: $a of $n complete byte-exact (on instance 3: $kok of $kn), longest stall $(max_stall drain "$f") ms ${bad#-}"
    [ "$a" = "$n" ] || fail "IPv$f: downloads broke through a graceful stop:$bad"
  done <"$work/done-drain"
  wait $stop_pid || fail "cluster stop 3 failed"

  # ---- 4. every backend down: withdrawn everywhere; one back: announced again -----------------------
  for k in 1 2 3; do "$lab" backend $k stop; done
  t0=$(ms)
  for f in 4 6; do
    a=$(await_nexthops $f "" "$t0" 15000 "the VIP was not withdrawn with every backend down")
    note "IPv$f: all backends stopped -> no route on the router after $a ms (checks every 500 ms, fall 3)"
  done
  for k in 1 2; do
    for f in 4 6; do
      [ "$(vip_field $k "${NAME[$f]}" announced)" = no ] || fail "instance $k still announces ${NAME[$f]}"
    done
  done
  say "instance 1 lists: $(ctl 1 list --kv | grep -m1 -o 'announce_reason="[^"]*"')"
  "$lab" backend 1 start
  t0=$(ms)
  for f in 4 6; do
    a=$(await_nexthops $f "1 2" "$t0" 15000 "the VIP was not announced again with be1 back")
    note "IPv$f: be1 started -> routed to instances 1 and 2 again after $a ms (rise 2)"
  done
  for f in 4 6; do
    load short --vip "${VIP[$f]}" --count 30 >"$work/short-$f"
    [ "$(awk '$1 == "failed" {print $2}' "$work/short-$f")" = 0 ] && [ "$(awk '$1 == "be1" {print $2}' "$work/short-$f")" = 30 ] ||
      fail "IPv$f: with only be1 up: $(paste -sd' ' "$work/short-$f")"
  done
  # No session flapped: the router's BIRD logged one drop per family for the killed and for the
  # stopped instance, none for the one that ran throughout (BFD 200 ms x 5 under this load).
  line=""
  for k in 1 2 3; do
    eval "drops_$k=$(grep -cE "lb${k}_[46]: State changed to down" $state/router/bird.log || true)"
    p="drops_$k"; line+=" lb$k ${!p}"
  done
  note "BGP sessions dropped (both families):$line (expected lb1 0, lb2 2: the kill, lb3 2: the stop)"
  [ "$drops_1" = 0 ] && [ "$drops_2" = 2 ] && [ "$drops_3" = 2 ] || fail "a BGP session flapped:$line"
  "$lab" down >/dev/null
}

say "binaries: ${SLUICE_BIN:-$root/build/apps/sluice}, ${SLUICECTL:-$root/build/apps/sluicectl}"
for m in ${SLUICE_CLUSTER_MODES:-dsr nat}; do
  t=$(ms)
  run_mode "$m"
  note "mode done in $(($(ms) - t)) ms"
done
mode=all
echo "lab_cluster: summary"
for l in "${summary[@]}"; do echo "  $l"; done
say PASS
