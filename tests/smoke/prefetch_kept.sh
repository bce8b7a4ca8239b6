#!/usr/bin/env bash
# The burst's prefetches must survive compilation. A prefetch is a hint with no effect the
# compiler can see: a helper whose only statement is one can be judged effect-free and its
# calls deleted, silently halving the established path on a large table. Dataplane::process
# must keep at least three: the next packet's data, the flow buckets, the flow records.
set -euo pipefail
bin=${1:?usage: prefetch_kept.sh SLUICE_BINARY}
command -v objdump >/dev/null || { echo "prefetch_kept: objdump not found (binutils)" >&2; exit 1; }
sym=_ZN6sluice2lb9Dataplane7processEPNS0_9PacketRefEjj
body=$(objdump -d --no-show-raw-insn "$bin" | awk -v s="<$sym>:" '$2 == s {on = 1; next} on && /^$/ {on = 0} on')
[ -n "$body" ] || { echo "prefetch_kept: Dataplane::process not found in $bin" >&2; exit 1; }
n=$(grep -c prefetch <<<"$body" || true)
echo "prefetch_kept: Dataplane::process has $n prefetch instructions"
[ "$n" -ge 3 ] || { echo "prefetch_kept: expected at least 3 (packet data, buckets, records)" >&2; exit 1; }
