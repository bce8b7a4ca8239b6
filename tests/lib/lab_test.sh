# The common start of the end-to-end tests that run on `scripts/lab` (lab_e2e.sh,
# lab_tunnel.sh, lab_cluster.sh, lab_cluster_sync.sh). Sourced after `set -euo pipefail` and
# the test's own usage check:
#
#   . "$(dirname "$0")/../lib/lab_test.sh" NAME [SLUICE SLUICECTL]
#
# Exports SLUICE_BIN and SLUICECTL when given (`meson test` passes its build's; without them
# scripts/lab takes them from the environment, or build/apps/ in this tree). Sets root (the
# tree), lab (scripts/lab), state (the lab's run directory) and work (a fresh directory,
# /tmp/sluice-NAME.XXXXXX); at exit the lab goes down and work is removed. Defines ms (the
# time in milliseconds).
# shellcheck shell=bash
lab_test_name=$1
shift
if [ $# = 2 ]; then
  SLUICE_BIN=$(realpath "$1") SLUICECTL=$(realpath "$2")
  export SLUICE_BIN SLUICECTL
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lab=$root/scripts/lab
state=/run/sluice-lab
work=$(mktemp -d "/tmp/sluice-$lab_test_name.XXXXXX")
lab_test_cleanup() { "$lab" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap lab_test_cleanup EXIT
trap 'exit 130' INT TERM
ms() { date +%s%3N; }
