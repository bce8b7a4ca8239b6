#!/usr/bin/env bash
# The Prometheus endpoint against Debian's real Prometheus server: Sluice replays a golden
# capture (nat4: TCP and UDP flows, drops) from net_pcap ports and then holds its counters;
# a Prometheus scrapes its --metrics-listen endpoint every second; the test reads the scraped
# series back through Prometheus's HTTP API and compares them with `sluicectl list` and
# `sluicectl stats`: VIP and backend packets, bytes and flows, backend state, every drop
# reason, the workers' counters and the flow-table size. Loopback only.
#
#   metrics_prometheus.sh SLUICE SLUICECTL
set -euo pipefail
sluice=$(realpath "$1") ctl=$(realpath "$2")
root=$(cd "$(dirname "$0")/../.." && pwd)
golden=$root/tests/golden/nat4
command -v prometheus >/dev/null || { echo "metrics-prometheus: prometheus is not installed (scripts/install-deps)" >&2; exit 1; }
work=$(mktemp -d /tmp/sluice-metrics.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The alert rules docs/metrics.md gives must be valid rules.
awk '/^# sluice-alerts.yml/{f=1;next} f&&/^```/{f=0} f' "$root/docs/metrics.md" >"$work/sluice-alerts.yml"
promtool check rules "$work/sluice-alerts.yml" >/dev/null ||
  { promtool check rules "$work/sluice-alerts.yml"; echo "metrics-prometheus: docs/metrics.md's alert rules do not load" >&2; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port) pport=$(free_port)

# The captures, addressed to net_pcap's port MACs instead of the harness's.
readdress=$(dirname "$0")/../lib/readdress_pcap.py
"$readdress" "$golden/in-port0.pcap" "$work/in0.pcap" 02:70:63:61:70:00
"$readdress" "$golden/in-port1.pcap" "$work/in1.pcap" 02:70:63:61:70:01
"$sluice" -l 0 --no-huge -m 256 --no-pci --file-prefix sluice-metrics-$$ \
  --vdev "net_pcap0,rx_pcap=$work/in0.pcap,tx_pcap=$work/out0.pcap" \
  --vdev "net_pcap1,rx_pcap=$work/in1.pcap,tx_pcap=$work/out1.pcap" -- \
  --config "$golden/sluice.conf" --metrics-listen "127.0.0.1:$mport" --control-socket "$work/sluice.sock" \
  --idle-sleep 500 >"$work/sluice.log" 2>&1 &
pids+=($!)
# The captures are replayed at start; the counters hold still once rx stops moving.
last=
for _ in $(seq 100); do
  now=$("$ctl" --socket "$work/sluice.sock" stats --kv 2>/dev/null | grep -o '^rx=[0-9]*' || true)
  [ -n "$now" ] && [ "$now" = "$last" ] && break
  last=$now
  sleep 0.2
done
[ -n "$last" ] || { echo "metrics-prometheus: Sluice did not come up:" >&2; tail -20 "$work/sluice.log" >&2; exit 1; }

cat >"$work/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: ['127.0.0.1:$mport']
CONF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
pids+=($!)

"$ctl" --socket "$work/sluice.sock" list --kv >"$work/list.txt"
"$ctl" --socket "$work/sluice.sock" stats --kv >"$work/stats.txt"
/usr/bin/python3 - "$pport" "$work/list.txt" "$work/stats.txt" <<'PY'
import json, re, sys, time, urllib.parse, urllib.request
port, list_file, stats_file = sys.argv[1], sys.argv[2], sys.argv[3]

def query(q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["result"]

# Prometheus up and one scrape in (its `up` series says the scrape succeeded).
deadline = time.time() + 60
while True:
    try:
        up = query('up{job="sluice"}')
        if up and up[0]["value"][1] == "1" and query("sluice_rx_total"):
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit("metrics-prometheus: Prometheus did not scrape Sluice within 60 s")
    time.sleep(0.5)

def series(name):
    return {tuple(sorted(r["metric"].items())): int(float(r["value"][1])) for r in query(name)}

def one(name, **labels):
    want = {"__name__": name, "instance": None, "job": "sluice", **labels}
    hits = [v for k, v in series(name).items()
            if all(dict(k).get(l) == x for l, x in labels.items())]
    if len(hits) != 1:
        sys.exit(f"metrics-prometheus: {name}{labels}: {len(hits)} series scraped, expected 1")
    return hits[0]

failures = []
checked = 0
def same(what, scraped, shown):
    global checked
    checked += 1
    if scraped != shown:
        failures.append(f"{what}: Prometheus has {scraped}, sluicectl shows {shown}")

vip = None
for line in open(list_file):
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    if line.startswith("vip "):
        vip = line.split()[1]
        for field, metric in (("packets", "sluice_vip_packets_total"), ("bytes", "sluice_vip_bytes_total"),
                              ("new_flows", "sluice_vip_new_flows_total")):
            same(f"vip {vip} {field}", one(metric, vip=vip), int(kv[field]))
    elif line.startswith("  backend "):
        be = line.split()[1]
        for field, metric in (("packets", "sluice_backend_packets_total"), ("bytes", "sluice_backend_bytes_total"),
                              ("new_flows", "sluice_backend_new_flows_total"),
                              ("handshake_failures", "sluice_backend_handshake_failures_total")):
            same(f"backend {vip}/{be} {field}", one(metric, vip=vip, backend=be), int(kv[field]))
        same(f"backend {vip}/{be} state", one("sluice_backend_state", vip=vip, backend=be, state=kv["state"]), 1)
        same(f"backend {vip}/{be} up", one("sluice_backend_up", vip=vip, backend=be), int(kv["state"] == "up"))

stats = open(stats_file).read()
first = stats.splitlines()[0]
drops = dict(re.findall(r"^drop (\w+)=(\d+)$", stats, re.M))
for name, value in re.findall(r"(\w+)=(\d+)", first):
    if name == "drops":
        same("drops (all reasons)", sum(series("sluice_drops_total").values()), int(value))
    else:
        same(f"stats {name}", one(f"sluice_{name}_total"), int(value))
for reason, count in drops.items():
    same(f"drop {reason}", one("sluice_drops_total", reason=reason), int(count))
# The golden config's flow timeouts are seconds: the flows may have gone by now. The table's
# size is fixed: --flow-capacity 4096 per worker and family.
entries = sum(series("sluice_flow_table_entries").values())
same("flow table capacity, worker 0, IPv4", one("sluice_flow_table_capacity", worker="0", family="ipv4"), 4096)
if one("sluice_forwarded_total") == 0 or one("sluice_replies_total") == 0:
    failures.append("nothing was forwarded: the replayed capture did not reach the VIPs")
for f in failures:
    print("FAIL", f)
print(f"metrics-prometheus: {checked} values scraped by Prometheus match sluicectl; "
      f"{entries} flows held now; {'FAILED' if failures else 'ok'}")
sys.exit(1 if failures else 0)
PY
