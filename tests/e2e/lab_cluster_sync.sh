#!/usr/bin/env bash
# Replicated state through a tier of three fullnat instances (`scripts/lab up cluster 3 fullnat`,
# scripts/lib/lab_cluster.sh): each instance owns its SNAT addresses and replicates its
# sessions and persistence entries to the others (--sync-*); the router prefers each SNAT
# address's owner and falls back to the others, which hold its sessions.
#
#   lab_cluster_sync.sh [SLUICE SLUICECTL]
#
#  1. Every instance hears both peers; a wrong-key datagram is refused and counted.
#  2. Sticky clients: 50 clients per family pin a backend of the sticky VIPs (persist=10m); a
#     fourth backend joins (Maglev moves some clients' choice); every client keeps its backend,
#     whichever instance its next connection reaches.
#  3. kill -9 of instance 2 during 30 paced downloads per family (SHA-256 checked), all older
#     than 1 s: at least 99% complete byte-exact (the target of the tier's issue), those of the
#     killed instance included; its sessions' answers now reach a survivor through the router.
#  4. After the failover every sticky client still gets its backend (>= 99%).
#  5. Instance 2 restarts: it resynchronises from its peers before it announces anything (its
#     log says so in that order, and its workers hold the peers' sessions).
set -euo pipefail
[ $# = 0 ] || [ $# = 2 ] || { echo "usage: $0 [SLUICE SLUICECTL]" >&2; exit 2; }
. "$(dirname "$0")/../lib/lab_test.sh" cluster-sync "$@"

summary=()
fail() {
  echo "lab_cluster_sync: FAIL: $*" >&2
  "$lab" cluster status >&2 2>/dev/null || true
  for d in $state/lb[0-9]*; do
    [ -d "$d" ] || continue
    echo "--- ${d##*/}: sluice.log" >&2
    tail -15 "$d/sluice.log" >&2 2>/dev/null || true
  done
  exit 1
}
say() { echo "lab_cluster_sync: $*"; }
note() { summary+=("$*"); say "$*"; }
load() { ip netns exec sll-client /usr/bin/python3 "$root/tests/e2e/cluster_load.py" "$@"; }
sluicectl=${SLUICECTL:-$root/build/apps/sluicectl}
ctl() { local k=$1; shift; ip netns exec "sll-lb$k" "$sluicectl" --socket "$state/lb$k/sluice.sock" "$@"; }
# A counter from instance K's `stats` answer: worker counters and the replication's.
stat() {  # K NAME
  ctl "$1" stats --kv 2>/dev/null | tr ' ' '\n' | awk -F= -v n="$2" '$1 == n {print $2; exit}'
}
declare -A VIP=([4]=203.0.113.10 [6]=2001:db8:3::10)

say "binaries: ${SLUICE_BIN:-$root/build/apps/sluice}, ${SLUICECTL:-$root/build/apps/sluicectl}"
t0=$(ms)
SLUICE_CLUSTER_SYNC_AGE=200ms "$lab" up cluster 3 fullnat >"$work/up.log" 2>&1 ||
  { cat "$work/up.log" >&2; fail "the lab did not come up"; }
sed 's/^lab: /  /' "$work/up.log"

# ---- 1. peers heard; a forged datagram refused ----------------------------------------------------
for k in 1 2 3; do
  until [ "$(ctl $k stats --kv | grep -c '^sync_peer .*heard=yes')" = 2 ]; do
    [ $(($(ms) - t0)) -lt 90000 ] || fail "instance $k does not hear both peers: $(ctl $k stats --kv | grep '^sync_peer')"
    sleep 0.2
  done
done
before=$(stat 1 refused_bad_tag)
ip netns exec sll-be1 /usr/bin/python3 - <<'EOF'
import os, socket
# The protocol's magic and version, then anything: without the tier's key the tag cannot verify.
d = b"SLSY\x01\x01\x00\x00" + os.urandom(120)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(d, ("198.51.100.1", 7447))
EOF
for _ in $(seq 50); do [ "$(stat 1 refused_bad_tag)" -ge $((before + 5)) ] && break; sleep 0.1; done
[ "$(stat 1 refused_bad_tag)" -ge $((before + 5)) ] || fail "forged datagrams were not refused as bad_tag"
# The JSON view carries the same: two peers heard, the refusals counted.
ctl 1 stats --json | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
peers = {p["id"]: p["heard"] for p in s["sync_peer"]}
assert peers == {2: "yes", 3: "yes"}, peers
assert s["sync"][0]["instance"] == 1, s["sync"]
assert s["sync_counters"][0]["refused_bad_tag"] >= 5, s["sync_counters"]
' || fail "stats --json does not carry the replication lines: $(ctl 1 stats --json | tail -4)"
note "every instance hears both peers; 5 forged datagrams refused as bad_tag"

# ---- 2. sticky clients keep their backend when a backend joins ------------------------------------
for f in 4 6; do load sticky --vip "${VIP[$f]}" --port 81 --count 50 >"$work/pin-$f"; done
for f in 4 6; do
  [ "$(grep -c ' -$' "$work/pin-$f" || true)" = 0 ] || fail "IPv$f: sticky connections failed: $(grep ' -$' "$work/pin-$f" | paste -sd' ')"
done
"$lab" backend 4 start >/dev/null
for k in 1 2 3; do
  ctl $k add-backend sticky 198.51.100.14:80 >/dev/null
  ctl $k add-backend sticky6 '[2001:db8:2::14]:80' >/dev/null
done
for k in 1 2 3; do
  for _ in $(seq 100); do
    [ "$(ctl $k list --kv | grep -c 'backend 198.51.100.14:80 .*state=up\|backend \[2001:db8:2::14\]:80 .*state=up')" -ge 2 ] && break
    sleep 0.1
  done
done
# Maglev alone would now move some clients: the entries keep them.
for f in 4 6; do
  moved=0
  while read -r src be; do
    b=$(ctl 1 explain tcp "$( [ $f = 4 ] && echo "$src:50000" || echo "[$src]:50000")" \
          "$( [ $f = 4 ] && echo "${VIP[$f]}:81" || echo "[${VIP[$f]}]:81")" 2>/dev/null || true)
    grep -q persistence <<<"$b" || moved=$((moved + 1))
  done <"$work/pin-$f"
  load sticky --vip "${VIP[$f]}" --port 81 --count 50 >"$work/pin2-$f"
  same=$(join "$work/pin-$f" "$work/pin2-$f" | awk '$2 == $3' | wc -l)
  note "IPv$f: sticky: $same of 50 clients kept their backend after be4 joined (instance 1 decides $((50 - moved)) of them by a persistence entry)"
  [ "$same" -ge 50 ] || fail "IPv$f: sticky clients changed backend: $(join "$work/pin-$f" "$work/pin2-$f" | awk '$2 != $3' | paste -sd' ')"
done

# ---- 3. kill -9 of an instance during long fullnat downloads ------------------------------------
for f in 4 6; do
  load long --vip "${VIP[$f]}" --count 30 --bytes $((4 << 20)) --rate 300000 --spread 3 --timeout 90 \
    --seed $((7 + f)) --file $state/big.bin >"$work/long-$f" 2>&1 &
  eval "dl_$f=$!"
done
for f in 4 6; do
  p="dl_$f"
  until grep -q '^started' "$work/long-$f"; do
    kill -0 "${!p}" 2>/dev/null || fail "IPv$f downloads did not start: $(cat "$work/long-$f")"
    sleep 0.1
  done
done
sleep 2  # every download older than a second
for k in 1 3; do
  n=$(stat $k sync_installed)
  [ "${n:-0}" -gt 0 ] || fail "instance $k installed no replicated session before the kill"
done
say "before the kill: sessions installed from peers: lb1 $(stat 1 sync_installed), lb3 $(stat 3 sync_installed); agent adds sent by lb2: $(stat 2 agent_adds_sent)"
t=$(ms)
"$lab" cluster kill 2
for f in 4 6; do
  p="dl_$f"
  wait "${!p}" || fail "the IPv$f downloader failed: $(tail -3 "$work/long-$f")"
done
for f in 4 6; do
  via2=$(awk '$1 == "xfer" && $4 ~ /via=(198\.51\.100\.2|2001:db8:2::2)$/' "$work/long-$f" | wc -l)
  ok2=$(awk '$1 == "xfer" && $4 ~ /via=(198\.51\.100\.2|2001:db8:2::2)$/ && $5 == "result=ok"' "$work/long-$f" | wc -l)
  n=$(grep -c '^xfer' "$work/long-$f")
  ok=$(grep -c '^xfer.*result=ok' "$work/long-$f" || true)
  stall=$(awk '$1 == "xfer" {split($8, a, "="); if (a[2] > m) m = a[2]} END {print m + 0}' "$work/long-$f")
  note "IPv$f: kill -9 of instance 2 during 30 downloads older than 1 s: $ok of $n complete byte-exact; through the killed instance $ok2 of $via2; longest stall $stall ms $(grep '^xfer' "$work/long-$f" | grep -v result=ok | awk '{print $2 "/" $3 "(" $4 "," $5 ")"}' | paste -sd' ')"
  [ "$via2" -gt 0 ] || fail "IPv$f: no download went through instance 2"
  [ $((ok * 100)) -ge $((n * 99)) ] || fail "IPv$f: under 99% of the downloads completed through the kill"
done
note "answers translated since the start: lb1 $(stat 1 replies), lb3 $(stat 3 replies); sessions installed from peers: lb1 $(stat 1 sync_installed), lb3 $(stat 3 sync_installed)"

# ---- 4. sticky clients after the failover ----------------------------------------------------------
for f in 4 6; do
  load sticky --vip "${VIP[$f]}" --port 81 --count 50 >"$work/pin3-$f"
  same=$(join "$work/pin-$f" "$work/pin3-$f" | awk '$2 == $3' | wc -l)
  note "IPv$f: sticky after the failover: $same of 50 clients kept their backend"
  [ $((same * 100)) -ge $((50 * 99)) ] || fail "IPv$f: sticky clients lost their backend through the failover: $(join "$work/pin-$f" "$work/pin3-$f" | awk '$2 != $3' | paste -sd' ')"
done

# ---- 5. a restarted instance resynchronises before it announces ----------------------------------
log2=$state/lb2/sluice.log
from=$(($(wc -l <"$log2") + 1))
t=$(ms)
"$lab" cluster start 2 >/dev/null
until tail -n +"$from" "$log2" | grep -q 'announce 203.0.113.10:'; do
  [ $(($(ms) - t)) -lt 30000 ] || fail "instance 2 did not announce after its restart: $(tail -n +"$from" "$log2" | tail -5)"
  sleep 0.1
done
order=$(tail -n +"$from" "$log2" | grep -n -E 'resynchronised from peer|announce 203.0.113.10:' | cut -d: -f1 | paste -sd' ')
tail -n +"$from" "$log2" | grep -E 'replication|announce' | sed 's/^/  /'
first_resync=$(tail -n +"$from" "$log2" | grep -n 'resynchronised from peer' | head -1 | cut -d: -f1)
first_announce=$(tail -n +"$from" "$log2" | grep -n 'announce 203.0.113.10:' | head -1 | cut -d: -f1)
[ -n "$first_resync" ] && [ "$first_resync" -lt "$first_announce" ] ||
  fail "instance 2 announced before it resynchronised (log lines: $order)"
[ "$(tail -n +"$from" "$log2" | grep -c 'resynchronised from peer')" = 2 ] || fail "instance 2 did not resynchronise from both peers"
note "restarted instance 2 resynchronised from both peers, then announced ($(stat 2 bulk_chunks_received) chunks received, $(stat 2 sync_installed) sessions installed, $(stat 2 persist_learnt) persistence entries)"
[ "$(stat 2 persist_learnt)" -gt 0 ] || fail "instance 2 learnt no persistence entry in its resync"

"$lab" down >/dev/null
echo "lab_cluster_sync: summary"
for l in "${summary[@]}"; do echo "  $l"; done
say "PASS in $(($(ms) - t0)) ms"
