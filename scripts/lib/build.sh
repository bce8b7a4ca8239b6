# Sourced by the scripts that build this tree's binaries when they run without given ones.
#
#   build_quietly DIR [TARGET...]
#
# Sets DIR up with Meson when it holds no build.ninja yet (a fresh clone, or a set-up that
# stopped half-way), then runs ninja on the targets (all by default). Prints nothing when they
# are up to date, and its progress on stderr while it builds; when a step fails, prints what
# Meson or ninja said (both streams: Meson writes its errors to standard output, ninja the
# compiler's) and returns that step's status.
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
    if ninja -C "$dir" -n "$@" 2>/dev/null | grep -q "no work to do"; then
      :  # up to date: say nothing
    else
      # Progress on stderr, so a first build (minutes) is not a silent wait.
      echo "$(basename "$0"): building ${*:-everything} in $dir (a first build takes a few minutes)" >&2
      local t0=$SECONDS next=$((SECONDS + 10)) now pid
      ninja -C "$dir" "$@" >>"$log" 2>&1 &
      pid=$!
      while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        [ "$SECONDS" -ge "$next" ] || continue  # at most one line in 10 s
        next=$((SECONDS + 10))
        now=$(grep -o '^\[[0-9]*/[0-9]*\]' "$log" | tail -1)
        [ -z "$now" ] || echo "  ... $now after $((SECONDS - t0)) s" >&2
      done
      wait "$pid" || rc=$?
      [ "$rc" != 0 ] || echo "$(basename "$0"): built in $((SECONDS - t0)) s" >&2
    fi
  fi
  if [ "$rc" != 0 ]; then
    echo "$(basename "$0"): \`$step\` failed (exit status $rc); its output:" >&2
    sed 's/^/  | /' "$log" >&2
  fi
  rm -f "$log"
  return "$rc"
}
