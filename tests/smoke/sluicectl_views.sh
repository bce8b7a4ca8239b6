#!/usr/bin/env bash
# sluicectl's client-side views against a real Sluice: it replays a golden capture (nat4: two
# VIPs, flows on every backend) from net_pcap ports, as drain_wait.sh does. `list --json` and
# `stats --json` must parse with Python's json and carry the numbers of the plain answers
# (`--kv`); `list web --kv` must be the plain answer cut to that VIP, `list nope` must fail
# with exit 1 naming the VIPs; `--rate` must run; plain `list` and `stats` must be aligned
# tables with the numbers of `--kv` (`--table` the same); `top --iterations=2`
# must print two plain frames when stdout is not a terminal, and `top` must end cleanly on
# SIGINT. Loopback only (no network).
#
#   sluicectl_views.sh SLUICE SLUICECTL
set -euo pipefail
sluice=$(realpath "$1") ctl=$(realpath "$2")
golden=$(cd "$(dirname "$0")/../golden/nat4" && pwd)
work=$(mktemp -d /tmp/sluice-views.XXXXXX)
pid=
cleanup() { [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "sluicectl-views: FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3

. "$(dirname "$0")/../lib/golden_sluice.sh"
start_golden_sluice views
c list --kv | grep -q "^vip web .* packets=[1-9]" || { c list --kv; fail "the replay left no packets on VIP web"; }

# A view and the plain answers around it: flows time out while the test runs, so a view is
# compared with the plain answer only when the answers before and after it agree.
# same_as "PLAIN_CMD" VIEW_CMD...: leaves the agreeing plain answer in $work/plain and the view
# in $work/view.
same_as() {
  local plain=$1; shift
  for _ in $(seq 10); do
    c $plain >"$work/p1"
    c "$@" >"$work/view"
    c $plain >"$work/p2"
    if cmp -s "$work/p1" "$work/p2"; then cp "$work/p1" "$work/plain"; return 0; fi
  done
  fail "the answers to '$plain' kept changing"
}

# The oracle: the plain text split with shlex (quoted values keep their spaces), every
# key=value compared with the JSON (integers as numbers, the rest as strings).
same_as "list --kv" list --json
$py - "$work/plain" "$work/view" <<'EOF' || fail "list --json does not match list"
import json, shlex, sys
plain = open(sys.argv[1]).read().splitlines()
doc = json.load(open(sys.argv[2]))
assert isinstance(doc, list), "not an array"

def fields(tokens):
    out = {}
    for t in tokens:
        k, _, v = t.partition("=")
        out[k] = int(v) if v.isdigit() and (v == "0" or v[0] != "0") else v
    return out

vips = []
for line in plain:
    t = shlex.split(line)
    if line.startswith("vip "):
        addr, _, proto = t[2].rpartition("/")
        vips.append(dict(name=t[1], address=addr, proto=proto, mode=t[3], **fields(t[4:]), backends=[]))
    elif line.startswith("  backend "):
        vips[-1]["backends"].append(dict(address=t[1], **fields(t[2:])))
assert doc == vips, f"json {doc!r}\n!= text {vips!r}"
assert len(doc) == 2 and all(isinstance(v["packets"], int) for v in doc)
assert sum(v["packets"] for v in doc) > 0
print(f"ok: list --json matches list: {len(doc)} VIPs, {sum(len(v['backends']) for v in doc)} backends")
EOF

same_as "stats --kv" stats --json
$py - "$work/plain" "$work/view" <<'EOF' || fail "stats --json does not match stats"
import json, sys
plain = open(sys.argv[1]).read().splitlines()
doc = json.load(open(sys.argv[2]))
counters = {k: int(v) for k, v in (t.split("=") for t in plain[0].split())}
assert doc["counters"] == counters, f"{doc['counters']} != {counters}"
flows = []
for line in plain:
    if line.startswith("flows "):
        w = {}
        for t in line.split()[1:]:
            k, v = t.split("=")
            w[k] = {"flows": int(v.split("/")[0]), "capacity": int(v.split("/")[1])} if "/" in v else int(v)
        flows.append(w)
assert doc["flows"] == flows and flows, f"{doc['flows']} != {flows}"
drops = {l.split()[1].split("=")[0]: int(l.split("=")[1]) for l in plain if l.startswith("drop ")}
assert doc["drops"] == drops, f"{doc['drops']} != {drops}"
assert counters["rx"] > 0
print(f"ok: stats --json matches stats: rx={counters['rx']}, {len(flows)} worker(s), {len(drops)} drop reason(s)")
EOF

same_as "list --kv" list web --kv
awk '/^vip web /{v=1; print; next} /^vip /{v=0} v' "$work/plain" >"$work/web"
cmp -s "$work/web" "$work/view" || { diff "$work/web" "$work/view" || true; fail "list web is not list's web block"; }
grep -q "^vip dns" "$work/view" && fail "list web shows VIP dns"
c --json list dns | $py -c 'import json,sys; d=json.load(sys.stdin); assert [v["name"] for v in d] == ["dns"], d' ||
  fail "--json list dns is not one VIP dns"
echo "ok: list web --kv is the plain answer's web block; --json list dns filters too"

set +e
c list nope >"$work/out" 2>"$work/err"; rc=$?
set -e
[ $rc = 1 ] && grep -q "no VIP named 'nope' (VIPs: web, dns)" "$work/err" ||
  { cat "$work/err"; fail "list nope exited $rc"; }
echo "ok: list nope exits 1: $(cat "$work/err")"
for bad in "--json drain web 198.51.100.21" "stats web" "--table --json list" "--kv --json stats" "list --kv --table" \
           "list --rate=0" "list --iterations=2" "top --json" "top --kv" "--kv explain tcp 1.2.3.4:1 203.0.113.10:80"; do
  set +e; c $bad >/dev/null 2>&1; rc=$?; set -e
  [ $rc = 2 ] || fail "'sluicectl $bad' exited $rc, not 2 (usage)"
done
echo "ok: view options in the wrong place are usage errors (exit 2)"

c list --kv --rate=0.5 >"$work/rate"
grep -q "^vip web .* packets_per_s=[0-9.]* bytes_per_s=[0-9.]* new_flows_per_s=[0-9.]* active_flows=[0-9]" \
  "$work/rate" || { cat "$work/rate"; fail "list --rate shows no rates for VIP web"; }
[ "$(grep -c '^  backend .* packets_per_s=' "$work/rate")" = 6 ] || { cat "$work/rate"; fail "list --rate lacks backends"; }
grep -q " packets=" "$work/rate" && fail "list --rate still shows packet totals"
echo "ok: list --rate=0.5:"; sed 's/^/    /' "$work/rate"
c --json --rate=0.5 list web | $py -c '
import json, sys
d = json.load(sys.stdin)
assert [v["name"] for v in d] == ["web"], d
for o in [d[0]] + d[0]["backends"]:
    assert all(isinstance(o[k], (int, float)) for k in ("packets_per_s", "bytes_per_s", "new_flows_per_s", "active_flows")), o
    assert "packets" not in o, o
' || fail "list --rate --json"
c stats --kv --rate=0.5 | grep -q "^rx_per_s=[0-9.]* tx_per_s=[0-9.]* " || fail "stats --rate shows no rx/tx rates"
c stats --rate=0.5 --json | $py -c '
import json, sys
d = json.load(sys.stdin)
assert 0.4 < d["interval_s"] < 2, d
assert isinstance(d["counters"]["rx_per_s"], (int, float)) and isinstance(d["counters"]["drops_per_s"], (int, float)), d
assert d["flows"], d
' || fail "stats --rate --json"
echo "ok: --rate with --json and with stats"

# The default: plain `list` is the table; --table asks for the same. Each is checked against
# the --kv answer around it (flows expire while the test runs).
for view in list "list --table"; do
  same_as "list --kv" $view
  echo "ok: $view:"; sed 's/^/    /' "$work/view"
  $py - "$work/plain" "$work/view" <<'EOF' || fail "$view is not an aligned table of the list's numbers"
import shlex, sys
plain = [l for l in open(sys.argv[1]).read().splitlines()]
rows = open(sys.argv[2]).read().splitlines()
head = rows[0]
assert head.startswith("VIP / backend"), head
assert len(rows) == 2 + len(plain), "a row per VIP and backend, and the note on packet counts"
note = rows.pop()
assert note == "Packets, Bytes: a VIP counts its clients' packets, a nat or fullnat backend also its replies", note
cols = {"Weight": "weight", "Active": "active_flows", "Inactive": "inactive_flows", "Packets": "packets",
        "Bytes": "bytes", "NewFlows": "new_flows"}
for line, row in zip(plain, rows[1:]):
    f = dict(t.partition("=")[::2] for t in shlex.split(line) if "=" in t)
    for title, key in cols.items():
        end = head.index(title) + len(title)  # numbers end under their title's last letter
        start = row.rfind(" ", 0, end) + 1
        cell = row[start:end]
        assert end >= len(row) or row[end] == " ", f"{title}: {row!r} runs past its column"
        want = f.get(key, "" if line.startswith("vip") and key == "weight" else "-")
        assert cell.strip() == want, f"{title}: {cell!r} != {want!r} in {row!r}"
    first = row.strip().split("  ")[0]
    assert first.startswith("-> ") == line.startswith("  backend"), row
print("ok: the columns line up with list --kv's numbers; the note says what packets count")
EOF
done

same_as "stats --kv" stats
echo "ok: stats:"; sed 's/^/    /' "$work/view"
$py - "$work/plain" "$work/view" <<'EOF' || fail "stats is not a table of stats --kv's numbers"
import sys
plain = open(sys.argv[1]).read().splitlines()
blocks = open(sys.argv[2]).read().split("\n\n")
assert len(blocks) == 3, f"counters, workers, drops: {len(blocks)} blocks"
counters = dict(t.split("=") for t in plain[0].split())
rows = blocks[0].splitlines()
assert rows[0].split() == ["Counter", "Total"] * 3, rows[0]
cells = [c for r in rows[1:] for c in r.split()]
got = dict(zip(cells[0::2], cells[1::2]))
assert got == counters, f"{got} != {counters}"
workers = [l for l in plain if l.startswith("flows ")]
rows = blocks[1].splitlines()
assert rows[0].split() == ["Worker", "IPv4", "flows", "IPv4", "capacity", "IPv6", "flows", "IPv6", "capacity"], rows[0]
for line, row in zip(workers, rows[1:]):
    f = dict(t.split("=") for t in line.split()[1:])
    want = [f["worker"], *f["ipv4"].split("/"), *f["ipv6"].split("/")]
    assert row.split() == want, f"{row!r} != {want}"
assert len(rows) == 1 + len(workers)
drops = {l.split()[1].split("=")[0]: l.split("=")[1] for l in plain if l.startswith("drop ")}
rows = blocks[2].splitlines()
if drops:
    assert rows[0].split() == ["Drop", "reason", "Packets"], rows[0]
    assert dict(r.split() for r in rows[1:]) == drops, f"{rows} != {drops}"
else:
    assert rows == ["No drops."], rows
print(f"ok: stats' tables hold stats --kv's {len(counters)} counters, {len(workers)} worker(s), {len(drops)} drop reason(s)")
EOF

c top --iterations=2 --interval=0.5 >"$work/top" 2>"$work/top.err" || { cat "$work/top.err"; fail "top --iterations=2 failed"; }
[ "$(grep -c '^sluice top (every 0.5 s)  rx [0-9.]* pps  tx [0-9.]* pps  drops [0-9.]*/s  flows [0-9]*' "$work/top")" = 2 ] ||
  { cat -A "$work/top"; fail "top --iterations=2 did not print two frames"; }
grep -q $'\x1b' "$work/top" && fail "top wrote terminal escapes to a file"
[ "$(grep -c '^VIP / backend .*Pkts/s' "$work/top")" = 2 ] || fail "a top frame lacks its table"
# Frames a blank line apart: the second header follows an empty line.
awk '/^sluice top/ && NR > 1 && prev != "" {exit 1} {prev=$0}' "$work/top" || fail "top frames not a blank line apart"
echo "ok: top --iterations=2 printed two frames; one of them:"
awk '/^sluice top/{n++} n==2' "$work/top" | sed 's/^/    /'
c top web --iterations=1 --interval=0.2 | grep -q "^dns " && fail "top web shows VIP dns"
set +e; c top nope --iterations=1 >/dev/null 2>&1; rc=$?; set -e
[ $rc = 1 ] || fail "top nope exited $rc, not 1"
# Ctrl-C: top ends with status 0 after the frames so far.
# (sluicectl itself in the background: a backgrounded shell function would be a subshell.)
"$ctl" --socket "$work/s.sock" top --interval=0.2 >"$work/top-int" 2>&1 &
tpid=$!
sleep 1
kill -INT $tpid
set +e; wait $tpid; rc=$?; set -e
[ $rc = 0 ] && grep -q "^sluice top" "$work/top-int" || { cat "$work/top-int"; fail "top after SIGINT exited $rc"; }
echo "ok: top web filters, top nope exits 1, SIGINT ends top with status 0"

# Rates under load: the client capture replayed without end (net_pcap's infinite_rx; no tx
# capture, so nothing grows on disk). A rate must be positive and at most the growth of the
# totals read before and after it, divided by its shortest possible window.
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
"$sluice" -l 0 --no-huge -m 256 --no-pci --file-prefix sluice-views-$$ \
  --vdev "net_pcap0,rx_pcap=$work/in0.pcap,infinite_rx=1" --vdev "net_pcap1,rx_pcap=$work/in1.pcap" -- \
  --config "$golden/sluice.conf" --control-socket "$work/s.sock" --idle-sleep 500 >"$work/sluice2.log" 2>&1 &
pid=$!
for _ in $(seq 100); do c list --kv >/dev/null 2>&1 && break; sleep 0.1; done
c list --kv >"$work/a"
c --json list web --rate=0.5 >"$work/rate.json"
c list --kv >"$work/b"
$py - "$work/a" "$work/rate.json" "$work/b" <<'EOF2' || fail "list --rate under load"
import json, re, sys
def web(path, key):
    for line in open(path):
        if line.startswith("vip web "):
            return int(re.search(rf" {key}=(\d+)", line).group(1))
r = json.load(open(sys.argv[2]))[0]
for key in ("packets", "bytes"):
    rate, grown = r[key + "_per_s"], web(sys.argv[3], key) - web(sys.argv[1], key)
    assert 0 < rate <= grown / 0.5, f"{key}_per_s={rate}, totals grew by {grown}"
    print(f"ok: under load {key}_per_s={rate} (totals grew by {grown} around it)")
EOF2
c top --iterations=1 --interval=0.5 >"$work/top2"
grep -q "^sluice top (every 0.5 s)  rx [1-9][0-9.]* pps  tx [1-9][0-9.]* pps" "$work/top2" ||
  { cat "$work/top2"; fail "top under load shows no rx/tx rate"; }
echo "ok: a top frame under load:"; sed 's/^/    /' "$work/top2"
