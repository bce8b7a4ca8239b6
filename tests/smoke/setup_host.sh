#!/usr/bin/env bash
# scripts/setup-host --dry-run (root): hugepage arithmetic, NIC refusals and bindings, and
# that a dry run changes nothing on the host.
#
# This machine has no spare NICs, so NICs are exercised two ways:
#  - real interfaces in a network namespace of our own (sll-sh-<pid>): veths carrying the
#    default route via 192.0.2.1, an IPv6 default route and routes to management addresses,
#    and a bridge; setup-host must refuse them, for the route first, then because they are
#    not PCI devices;
#  - a fake sysfs tree (SETUP_HOST_SYSFS) with two NUMA nodes, an IOMMU and PCI NICs on
#    ixgbe, vfio-pci and mlx5_core, for the bind commands and the per-node page counts.
# Documentation addresses only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
#   setup_host.sh SETUP_HOST [SLUICE]
set -euo pipefail
setup_host=$1
bin_dir=$(dirname "${2:-$(dirname "$0")/../../build/apps/sluice}")
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }

ns=sll-sh-$$
work=$(mktemp -d /tmp/sluice-setup-host.XXXXXX)
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; [ -f "$work/out" ] && sed 's/^/  | /' "$work/out" >&2; exit 1; }
ok() { echo "ok: $*"; }

# Runs setup-host in the namespace (its routes, its /sys/class/net) with no SSH session in
# the environment; output (both streams) in $work/out, exit status in $rc.
sh_run() {
  set +e
  ip netns exec "$ns" env -u SSH_CONNECTION -u SSH_CLIENT "$@" >"$work/out" 2>&1
  rc=$?
  set -e
}
has() { grep -qF -- "$1" "$work/out" || fail "expected output line containing: $1"; }
hasnt() { ! grep -qF -- "$1" "$work/out" || fail "unexpected output: $1"; }
expect_rc() { [ "$rc" = "$1" ] || fail "exit status $rc, expected $1 ($2)"; }

# ---- what a dry run must not change -------------------------------------------------------
state() {
  for f in /proc/sys/vm/nr_hugepages /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages \
    /sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages; do
    [ -e "$f" ] && echo "$f $(cat "$f")"
  done
  for f in /etc/dpdk/dpdk.conf /etc/dpdk/interfaces /etc/modules-load.d/sluice.conf \
    /etc/modprobe.d/sluice-vfio-noiommu.conf /etc/systemd/system/sluice.service /etc/sluice/sluice.env \
    /etc/sluice/sluice.conf /usr/local/bin/sluice /usr/local/bin/sluicectl; do
    if [ -e "$f" ]; then echo "$f $(md5sum <"$f")"; else echo "$f absent"; fi
  done
  grep hugetlbfs /proc/mounts || true
  ls -d /dev/hugepages* 2>/dev/null || true
  cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null || true
  lsmod 2>/dev/null | awk '$1 ~ /^vfio/ { print $1 }' || true
  for d in /sys/bus/pci/devices/*; do echo "$d $(basename "$(readlink -f "$d/driver" 2>/dev/null || echo none)")"; done
}
state >"$work/before"

# ---- the namespace --------------------------------------------------------------------------
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip link add sllsh-dflt type veth peer name sllsh-dpeer
in_ns ip addr add 192.0.2.2/24 dev sllsh-dflt
in_ns ip link set sllsh-dflt up
in_ns ip route add default via 192.0.2.1 dev sllsh-dflt
in_ns ip link add sllsh-va type veth peer name sllsh-vb
in_ns ip link set sllsh-va up
in_ns ip link set sllsh-vb up
in_ns ip addr add 198.51.100.2/28 dev sllsh-va
in_ns ip -6 addr add 2001:db8:5::2/64 dev sllsh-vb nodad
in_ns ip -6 route add default via 2001:db8:5::1 dev sllsh-vb
in_ns ip link add sllsh-vc type veth peer name sllsh-vd
in_ns ip link set sllsh-vc up
in_ns ip route add 203.0.113.0/24 dev sllsh-vc
in_ns ip link add sllsh-br type bridge

# ---- arguments ------------------------------------------------------------------------------
sh_run "$setup_host" --help
expect_rc 0 "--help"
has "--dry-run"
has "--nic IFACE|PCI"
for bad in "--bogus" "--hugepages lots" "--pagesize 4M" "--node 97" "--hugepages 3M --pagesize 2M" "--nic"; do
  # shellcheck disable=SC2086
  sh_run "$setup_host" --dry-run $bad
  expect_rc 2 "$bad"
  grep -q "setup-host: " "$work/out" || fail "$bad: no message"
done
ok "--help; bad arguments exit 2 with a message"

# ---- hugepages on this host -----------------------------------------------------------------
sh_run "$setup_host" --dry-run --no-packages --hugepages 4G --pagesize 2M
expect_rc 0 "4G of 2M pages"
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
has "2048 x 2M per node"
if [ "$nodes" -eq 1 ]; then
  has 'NR_2M_PAGES="2048"'
  [ "$(cat /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages)" = 2048 ] ||
    has "+ dpdk-hugepages.py --pagesize 2M --node 0 --reserve 4G"
fi
has "dry run"
ok "4G of 2M pages here: 2048 pages per node, NR_2M_PAGES for dpdk.service"

sh_run "$setup_host" --dry-run --no-packages --hugepages 5G
if [ -d /sys/kernel/mm/hugepages/hugepages-1048576kB ]; then
  expect_rc 0 "default page size"
  has "5 x 1G per node"
  has 'NR_1G_PAGES='
  ok "default page size is 1G where the kernel offers it: 5 pages for 5G"
fi

# ---- a fake sysfs: two NUMA nodes, an IOMMU, PCI NICs ----------------------------------------
fake=$work/sys
mk() { mkdir -p "$(dirname "$1")"; echo "$2" >"$1"; }
for sz in 2048 1048576; do
  mk "$fake/kernel/mm/hugepages/hugepages-${sz}kB/nr_hugepages" 0
  for n in 0 1; do mk "$fake/devices/system/node/node$n/hugepages/hugepages-${sz}kB/nr_hugepages" 0; done
done
echo 1024 >"$fake/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"  # already there
mkdir -p "$fake/kernel/iommu_groups/0" "$fake/bus/pci/drivers/ixgbe" "$fake/bus/pci/drivers/vfio-pci" \
  "$fake/bus/pci/drivers/mlx5_core" "$fake/class/net"
pci_dev() {  # address driver class [interface]
  local d=$fake/bus/pci/devices/$1
  mkdir -p "$d"
  echo "$3" >"$d/class"
  ln -s ../.. "$d/subsystem"  # bus/pci
  ln -s "../../drivers/$2" "$d/driver"
  if [ -n "${4:-}" ]; then  # as in sysfs: class/net/IF -> the device's net/IF, device -> ../..
    mkdir -p "$d/net/$4"
    ln -s ../.. "$d/net/$4/device"
    ln -s "../../bus/pci/devices/$1/net/$4" "$fake/class/net/$4"
  fi
}
pci_dev 0000:3b:00.0 ixgbe 0x020000 sllnic0
pci_dev 0000:3b:00.1 vfio-pci 0x020000
pci_dev 0000:3b:00.2 ixgbe 0x020000 sllnic2
pci_dev 0000:5e:00.0 mlx5_core 0x020000 sllmlx0
pci_dev 0000:00:1f.2 ahci 0x010601
# sllnic2 is enslaved to the namespace's default-route interface (as a bond member would be).
mkdir -p "$fake/devices/virtual/net/sllsh-dflt"
ln -s ../../devices/virtual/net/sllsh-dflt "$fake/class/net/sllsh-dflt"
ln -s "$fake/devices/virtual/net/sllsh-dflt" "$fake/bus/pci/devices/0000:3b:00.2/net/sllnic2/master"

fake_run() { sh_run env SETUP_HOST_SYSFS="$fake" "$setup_host" --dry-run --no-packages "$@"; }

fake_run --hugepages 2G --pagesize 2M
expect_rc 0 "two nodes"
has "node 0: 1024 hugepages of 2M already reserved"
has "+ dpdk-hugepages.py --pagesize 2M --node 1 --reserve 2G"
has 'NR_2M_PAGES="1024 1024"'
ok "two nodes, 2G of 2M pages each: node 0 left as it is, node 1 reserved, NR_2M_PAGES=\"1024 1024\""

fake_run --hugepages 3G --pagesize 1G --node 1
expect_rc 0 "node 1 only"
has "node 0: 0 hugepages of 1G already reserved"
has "+ dpdk-hugepages.py --pagesize 1G --node 1 --reserve 3G"
has 'NR_1G_PAGES="0 3"'
ok "--node 1, 3G of 1G pages: NR_1G_PAGES=\"0 3\""

fake_run --hugepages 0 --nic sllnic0 --nic 3b:00.1 --nic 0000:3b:00.0
expect_rc 0 "bind"
has "vfio-pci already loaded"
has "+ ip link set dev sllnic0 down"
has "+ dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"
has "0000:3b:00.1 already bound to vfio-pci"
has "+ write 'pci	0000:3b:00.0	vfio-pci' to /etc/dpdk/interfaces"
has "+ write 'pci	0000:3b:00.1	vfio-pci' to /etc/dpdk/interfaces"
has "-a 0000:3b:00.0 -a 0000:3b:00.1"
hasnt "dpdk-devbind.py --bind=vfio-pci 0000:3b:00.1"
[ "$(grep -c 'dpdk-devbind.py' "$work/out")" = 1 ] || fail "a NIC named twice is bound twice"
ok "PCI NICs: sllnic0 taken down and bound, one already on vfio-pci left alone, both persisted, -a list printed"

fake_run --hugepages 0 --nic sllmlx0
expect_rc 1 "mlx5"
has "must stay bound to mlx5_core"
fake_run --hugepages 0 --nic 00:1f.2
expect_rc 1 "not a NIC"
has "not a network controller"
fake_run --hugepages 0 --nic sllnic2
expect_rc 1 "stacked"
has "default route (through sllsh-dflt, stacked on it)"
ok "refused: an mlx5 NIC (stays on its kernel driver), a SATA controller, a NIC enslaved to the default-route interface"

rmdir "$fake/kernel/iommu_groups/0"
fake_run --hugepages 0 --nic sllnic0
expect_rc 1 "no IOMMU"
has "iommu=pt"
has "--unsafe-noiommu"
hasnt "dpdk-devbind.py"
fake_run --hugepages 0 --nic sllnic0 --unsafe-noiommu
expect_rc 0 "no IOMMU, forced"
has "options vfio enable_unsafe_noiommu_mode=1"
has "+ dpdk-devbind.py --bind=vfio-pci 0000:3b:00.0"
ok "no IOMMU: binding refused with the kernel command line to add; --unsafe-noiommu sets vfio's no-IOMMU mode"

# ---- real interfaces in the namespace ----------------------------------------------------------
sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-dflt
expect_rc 1 "default route"
has "sllsh-dflt carries the host's default route"
has "nothing was changed"
hasnt "dpdk-devbind.py"
ok "refused: the interface carrying the default route via 192.0.2.1"

sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-dflt --force
expect_rc 1 "default route, forced, but a dummy"
has "warning: sllsh-dflt carries the host's default route"
has "sllsh-dflt is not a PCI device (veth interface)"
ok "--force passes the route check, but a veth is still not a PCI device"

sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-vb
expect_rc 1 "IPv6 default route"
has "sllsh-vb carries the host's default route"
ok "refused: the interface carrying the IPv6 default route"

sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-va
expect_rc 1 "veth"
has "sllsh-va is not a PCI device (veth interface)"
has "net_af_packet"
sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-br
expect_rc 1 "bridge"
has "sllsh-br is not a PCI device (bridge interface)"
ok "refused: a veth and a bridge (not PCI), with the net_af_packet alternative"

sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-va --mgmt 198.51.100.7
expect_rc 1 "management route"
has "sllsh-va carries the route to management address 198.51.100.7"
set +e
ip netns exec "$ns" env SSH_CONNECTION="203.0.113.9 50000 192.0.2.2 22" "$setup_host" --dry-run --no-packages \
  --hugepages 0 --nic sllsh-vc >"$work/out" 2>&1
rc=$?
set -e
expect_rc 1 "SSH client route"
has "sllsh-vc carries the route to management address 203.0.113.9"
ok "refused: the route to a --mgmt address, and the route to this SSH session's client"

sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --nic sllsh-va --nic nosuch0 --nic 0000:99:00.0
expect_rc 1 "several"
has "--nic sllsh-va: sllsh-va is not a PCI device"
has "--nic nosuch0: no such interface"
has "--nic 0000:99:00.0: no PCI device 0000:99:00.0"
ok "every bad --nic is reported at once"

# ---- the unit's installation ------------------------------------------------------------------
sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --install-unit --bin-dir "$bin_dir"
expect_rc 0 "--install-unit"
if [ ! -e /usr/local/bin/sluice ]; then has "+ install -D -m 0755 $bin_dir/sluice /usr/local/bin/sluice"; fi
if [ ! -e /etc/systemd/system/sluice.service ]; then has "/etc/systemd/system/sluice.service"; fi
has "systemctl enable --now sluice"
sh_run "$setup_host" --dry-run --no-packages --hugepages 0 --install-unit --bin-dir "$work/nothing"
expect_rc 1 "--install-unit without binaries"
has "build first"
ok "--install-unit: binaries, unit and /etc/sluice files; refused when the binaries are missing"

# ---- nothing changed --------------------------------------------------------------------------
state >"$work/after"
diff -u "$work/before" "$work/after" >&2 || fail "a dry run changed the host (diff above)"
ok "dry runs changed nothing (hugepages, mounts, /etc files, drivers, modules)"
