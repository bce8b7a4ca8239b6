#!/usr/bin/env bash
# DPDK telemetry's flow gauges against sluicectl's: Sluice replays a golden capture (nat4: two
# VIPs, flows on every backend) from net_pcap ports, as drain_wait.sh does; /sluice/flows must
# give each worker's table fill as `stats --json` does and each VIP's active and inactive
# flows as `list --json` does, /sluice/vip,web the same per backend, and /sluice/vip,nope an
# error. The telemetry socket is read directly (SOCK_SEQPACKET, as dpdk-telemetry.py does).
#
#   telemetry_flows.sh SLUICE SLUICECTL
set -euo pipefail
sluice=$(realpath "$1") ctl=$(realpath "$2")
golden=$(cd "$(dirname "$0")/../golden/nat4" && pwd)
work=$(mktemp -d /tmp/sluice-telemetry.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
  rm -rf "$work" "/var/run/dpdk/sluice-telemetry-$$"  # EAL leaves its runtime directory
}
trap cleanup EXIT
fail() { echo "telemetry-flows: FAIL: $*" >&2; exit 1; }

. "$(dirname "$0")/../lib/golden_sluice.sh"
start_golden_sluice telemetry
tel=/var/run/dpdk/sluice-telemetry-$$/dpdk_telemetry.v2
[ -S "$tel" ] || fail "no telemetry socket at $tel"

/usr/bin/python3 - "$tel" "$ctl" "$work/s.sock" <<'PY' || fail "telemetry's flow gauges do not match sluicectl's"
import json, socket, subprocess, sys
tel, ctl, sock = sys.argv[1:]

def query(cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(tel)
    json.loads(s.recv(16384))  # the greeting: version, pid, max_output_len
    s.send(cmd.encode())
    reply = json.loads(s.recv(1 << 16))
    s.close()
    return reply[cmd.split(",")[0]]

def ctl_json(*args):
    return json.loads(subprocess.run([ctl, "--socket", sock, "--json", *args], check=True, capture_output=True,
                                     text=True, timeout=10).stdout)

# Flows expire while the test runs: compare only when sluicectl's answers around agree.
for attempt in range(10):
    before = (ctl_json("list"), ctl_json("stats")["flows"])
    flows, web = query("/sluice/flows"), query("/sluice/vip,web")
    after = (ctl_json("list"), ctl_json("stats")["flows"])
    if before == after:
        break
else:
    sys.exit("sluicectl's answers kept changing")
vips, workers = before
assert flows["worker_ipv4_flows"] == [w["ipv4"]["flows"] for w in workers], (flows, workers)
assert flows["worker_ipv4_capacity"] == [w["ipv4"]["capacity"] for w in workers], (flows, workers)
assert flows["worker_ipv6_flows"] == [w["ipv6"]["flows"] for w in workers], (flows, workers)
assert flows["worker_ipv6_capacity"] == [w["ipv6"]["capacity"] for w in workers], (flows, workers)
assert flows["vips"] == [v["name"] for v in vips], flows
assert flows["vip_count"] == len(vips), flows
assert flows["vip_active_flows"] == [v["active_flows"] for v in vips], (flows, vips)
assert flows["vip_inactive_flows"] == [v["inactive_flows"] for v in vips], (flows, vips)
assert sum(flows["vip_active_flows"]) + sum(flows["vip_inactive_flows"]) > 0, flows
v = next(v for v in vips if v["name"] == "web")
assert web["name"] == "web" and web["active_flows"] == v["active_flows"] and web["inactive_flows"] == v["inactive_flows"], web
assert web["backends"] == [b["address"] for b in v["backends"]], web
assert web["backend_active_flows"] == [b["active_flows"] for b in v["backends"]], web
assert web["backend_inactive_flows"] == [b["inactive_flows"] for b in v["backends"]], web
print(f"ok: /sluice/flows {flows}")
print(f"ok: /sluice/vip,web {web}")
nope = query("/sluice/vip,nope")
assert nope == {"error": "no such VIP"}, nope
print(f"ok: /sluice/vip,nope {nope}")
PY
