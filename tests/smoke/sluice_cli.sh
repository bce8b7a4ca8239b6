#!/usr/bin/env bash
# The sluice binary's command line without DPDK: --help, --version and --check-config work
# with no EAL options, and a bad option or config file names the offending value and exits
# non-zero before the EAL starts (no DPDK runtime directory is created).
#   sluice_cli.sh SLUICE
set -euo pipefail
sluice=$1
work=$(mktemp -d /tmp/sluice-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Output captured first: grep -q closing the pipe early would SIGPIPE the binary under pipefail.
help=$("$sluice" --help)
grep -q -- "--vip" <<<"$help" || fail "--help does not describe --vip"
[ "$("$sluice" --version)" = "sluice 0.1.0" ] || fail "--version"

cat > "$work/good.conf" <<'CONF'
# a nat VIP with two backends
vip = web,203.0.113.10:80/tcp,nat
backend = web,198.51.100.11:8080,weight=2
backend = web,198.51.100.12:8080
neighbor = 198.51.100.11,02:00:00:00:b1:01
neighbor = 198.51.100.12,02:00:00:00:b1:02
CONF
summary=$("$sluice" --config "$work/good.conf" --check-config)
grep -q "1 VIP" <<<"$summary" || fail "--check-config summary"

expect_error() {  # expected-substring args...
  local want=$1; shift
  local out rc=0
  out=$("$sluice" -l 0 --no-huge --no-pci --file-prefix "sluice-cli-$$" -- "$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "'$*' was accepted"
  grep -qF -- "$want" <<<"$out" || fail "'$*': error does not mention '$want': $out"
  # Its own runtime directory only: other DPDK processes may come and go meanwhile.
  [ ! -e "/var/run/dpdk/sluice-cli-$$" ] || fail "'$*': DPDK was started (runtime directory created)"
}
expect_error "99999" --vip 'web,203.0.113.10:99999/tcp,nat' --backend web,198.51.100.11
expect_error "sctp" --vip 'web,203.0.113.10:80/sctp,nat'
expect_error "--no-such-option" --no-such-option 1
expect_error "nobody" --backend 'nobody,198.51.100.11:80'
printf 'vip = web,203.0.113.10:80/tcp,nat\nbackend = web,198.51.100.11:8080,weight=70000\n' > "$work/bad.conf"
expect_error "70000" --config "$work/bad.conf"
expect_error "missing.conf" --config "$work/missing.conf"

# Without hugepages (and without --no-huge) EAL fails with "Permission denied"; Sluice must say
# what is missing and how to fix it. Judged only where no hugepages are reserved.
reserved=0
for f in /sys/kernel/mm/hugepages/*/nr_hugepages; do [ -r "$f" ] && reserved=$((reserved + $(cat "$f"))); done
if [ "$reserved" = 0 ]; then
  rc=0
  out=$("$sluice" -l 0 --no-pci --file-prefix "sluice-cli-huge-$$" --vdev net_null0 -- --config "$work/good.conf" \
        --control-socket none 2>&1) || rc=$?
  rm -rf "/var/run/dpdk/sluice-cli-huge-$$"
  [ "$rc" -ne 0 ] || fail "started without hugepages"
  grep -q "no hugepages are reserved" <<<"$out" || fail "no hint about hugepages: $(tail -2 <<<"$out")"
  grep -q -- "--no-huge" <<<"$out" || fail "the hint does not mention --no-huge"
  echo "ok: missing hugepages named, with how to reserve them"
else
  echo "skip: hugepages are reserved here ($reserved), the no-hugepage message cannot be checked"
fi
echo "ok: --help, --version, --check-config without EAL; bad options rejected before DPDK starts"
