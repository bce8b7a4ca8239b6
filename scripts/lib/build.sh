# Sourced by the scripts that build this tree's binaries when they run without given ones.
#
#   build_quietly DIR [TARGET...]
#
# Sets DIR up with Meson when it holds no build.ninja yet (a fresh clone, or a set-up that
# stopped half-way), then runs ninja on the targets (all by default). Prints nothing when both
# work; when one fails, prints what Meson or ninja said (both streams: Meson writes its errors
# to standard output, ninja the compiler's) and returns that step's status.
build_quietly() {
  local dir=$1 log rc=0 step
  shift
  log=$(mktemp /tmp/sluice-build-log.XXXXXX)
  if [ ! -f "$dir/build.ninja" ]; then
    step="meson setup $dir"
    meson setup "$dir" >"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" = 0 ]; then
    step="ninja -C $dir${*:+ $*}"
    ninja -C "$dir" "$@" >>"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" != 0 ]; then
    echo "$(basename "$0"): \`$step\` failed (exit status $rc); its output:" >&2
    sed 's/^/  | /' "$log" >&2
  fi
  rm -f "$log"
  return "$rc"
}
