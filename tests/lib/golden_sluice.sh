# Sourced by tests that need a running Sluice holding some state: it replays a golden case's
# captures through the binary on net_pcap ports and returns once they are consumed.
#
#   start_golden_sluice NAME  (needs $sluice, $ctl, $golden, $work; sets $pid and c())
#
# The captures are addressed to the replay harness's port MACs; they are readdressed to
# net_pcap's (02:70:63:61:70:0N), which the binary would otherwise drop as foreign_mac.
start_golden_sluice() {
  local name=$1 readdress last now
  readdress=$(dirname "${BASH_SOURCE[0]}")/readdress_pcap.py
  "$readdress" "$golden/in-port0.pcap" "$work/in0.pcap" 02:70:63:61:70:00
  "$readdress" "$golden/in-port1.pcap" "$work/in1.pcap" 02:70:63:61:70:01
  "$sluice" -l 0 --no-huge -m 256 --no-pci --file-prefix "sluice-$name-$$" \
    --vdev "net_pcap0,rx_pcap=$work/in0.pcap,tx_pcap=$work/out0.pcap" \
    --vdev "net_pcap1,rx_pcap=$work/in1.pcap,tx_pcap=$work/out1.pcap" -- \
    --config "$golden/sluice.conf" --control-socket "$work/s.sock" --idle-sleep 500 >"$work/sluice.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do c list --kv >/dev/null 2>&1 && break; sleep 0.1; done
  # The captures are replayed at start; wait until rx stops moving.
  last=
  for _ in $(seq 100); do
    now=$(c stats --kv 2>/dev/null | grep -o "^rx=[0-9]*" || true)
    [ -n "$now" ] && [ "$now" = "$last" ] && [ "$now" != rx=0 ] && break
    last=$now
    sleep 0.2
  done
}
c() { "$ctl" --socket "$work/s.sock" "$@"; }
