#!/usr/bin/env bash
# `sluicectl drain --wait`: Sluice replays a golden capture (nat4: flows on every backend,
# timeouts of seconds) from net_pcap ports and then holds those flows until they time out.
# The flow gauges in `list` must show them; a drain whose wait is shorter than the flows'
# timeout must fail saying how many are left; one that waits long enough must return once
# the backend holds none. Loopback only (no network).
#
#   drain_wait.sh SLUICE SLUICECTL
set -euo pipefail
sluice=$(realpath "$1") ctl=$(realpath "$2")
golden=$(cd "$(dirname "$0")/../golden/nat4" && pwd)
work=$(mktemp -d /tmp/sluice-drain.XXXXXX)
pid=
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "drain-wait: FAIL: $*" >&2; exit 1; }

. "$(dirname "$0")/../lib/golden_sluice.sh"
start_golden_sluice drain
# The backend with the most flows held now.
read -r be flows < <(c list --kv | awk '/^vip web /{v=1; next} /^vip /{v=0} v && /backend/ {
  a=0; i=0; for (f=1; f<=NF; f++) { if ($f ~ /^active_flows=/) a=substr($f,14); if ($f ~ /^inactive_flows=/) i=substr($f,16) }
  print $2, a+i }' | sort -k2 -n -r | head -1)
[ -n "${be:-}" ] && [ "$flows" -gt 0 ] || { c list --kv; fail "no backend of VIP web holds a flow after the replay"; }
echo "ok: list shows $flows flows on backend $be"
c stats --kv | grep -q "^flows worker=0 ipv4=[1-9][0-9]*/4096" || { c stats --kv; fail "stats shows no flows held by worker 0"; }
set +e
c --wait=1 drain web "$be" >"$work/short.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] && grep -q "still [0-9]* flows after 1 s" "$work/short.out" || { cat "$work/short.out"; fail "a 1 s wait returned $rc"; }
echo "ok: --wait=1 gives up: $(tail -1 "$work/short.out")"
t0=$(date +%s%N)
c --wait=30 drain web "$be" >"$work/long.out" 2>&1 || { cat "$work/long.out"; fail "--wait=30 did not see the backend drained"; }
grep -q "drained: no flow left" "$work/long.out" || { cat "$work/long.out"; fail "no 'drained' line"; }
echo "ok: drained in $(( ($(date +%s%N) - t0) / 1000000 )) ms (the capture's flows time out in seconds)"
c --wait=5 list >/dev/null 2>&1 && fail "--wait with list was accepted"
echo "ok: --wait is refused with a command that does not drain"
