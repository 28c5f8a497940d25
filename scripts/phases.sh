# Phase timing for scripts/test.sh (sourced): each phase's wall time in one table at the end,
# and, when something fails, the phase it failed in. Cargo's output is passed through unchanged
# and also kept with a timestamp per line (target/test-phases/*.log), from which the compile step
# is split into dependencies and the workspace's crates, and the test step into its executables.
# Each link's time comes from scripts/linker.sh (SAAD_LINK_LOG).

phase_dir=target/test-phases
mkdir -p "$phase_dir"
phase_rows=()
phase_current=""
phase_total_start=$EPOCHREALTIME

# Seconds from $1 to $2 (EPOCHREALTIME values), one decimal.
phase_seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Adds a row: name, seconds.
phase_row() { phase_rows+=("$(printf '%-64s %8s' "$1" "$2")"); }

# Starts a command as a phase that runs beside the following ones (its own process group, so
# that a failed run can stop all of it; its output in target/test-phases/background.log);
# wait_background ends it.
bg_pid=""
bg_name=""
bg_started=""
bg_log=$phase_dir/background.log
background() {
  bg_name=$1
  shift
  bg_started=$EPOCHREALTIME
  # Job control for this one start: the command gets a process group of its own.
  set -m
  "$@" >"$bg_log" 2>&1 &
  bg_pid=$!
  set +m
}

# Waits for the background phase: a row for its wall time and one for how long the run waited.
wait_background() {
  [ -n "$bg_pid" ] || return 0
  local waited=$EPOCHREALTIME rc=0
  phase_current=$bg_name
  wait "$bg_pid" || rc=$?
  bg_pid=""
  if [ "$rc" -ne 0 ]; then
    cat "$bg_log" >&2
    return "$rc"
  fi
  tail -n 12 "$bg_log" >&2
  phase_row "$bg_name" "$(phase_seconds "$bg_started" "$EPOCHREALTIME")"
  phase_row "  of which the run waited for it at the end" "$(phase_seconds "$waited" "$EPOCHREALTIME")"
  phase_current=""
}

# Runs a command as one phase.
phase() {
  local name=$1 start=$EPOCHREALTIME
  shift
  phase_current=$name
  "$@"
  phase_row "$name" "$(phase_seconds "$start" "$EPOCHREALTIME")"
  phase_current=""
}

# Copies standard input to standard output and, with a timestamp per line, to file $1.
phase_stamp() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    printf '%s %s\n' "$EPOCHREALTIME" "$line" >>"$1"
  done
}

# The test build: dependencies until the first workspace crate starts compiling, then the
# workspace's crates and test executables; linking (mold or cc) is counted inside that.
compile_tests() {
  local log=$phase_dir/compile.log links=$phase_dir/links.log start=$EPOCHREALTIME
  : >"$log"
  : >"$links"
  phase_current="compile (cargo test --no-run)"
  SAAD_LINK_LOG=$PWD/$links cargo test --workspace --no-run "$@" 2>&1 | phase_stamp "$log"
  local end=$EPOCHREALTIME
  # A workspace crate is compiled from a local path: "Compiling saad-core v0.1.0 (/…/core)".
  local first
  first=$(awk '$2 == "Compiling" && $5 ~ /^\(\// { print $1; exit }' "$log")
  [ -n "$first" ] || first=$start
  phase_row "compile: dependencies (burn, cubecl, wgpu, ...)" "$(phase_seconds "$start" "$first")"
  phase_row "compile: workspace crates and test executables (clippy)" "$(phase_seconds "$first" "$end")"
  # Wall time during which at least one link ran (two may overlap on 2 cores), and the count.
  phase_row "  of which linking: $(awk -v s="$first" '$1 >= s' "$links" | wc -l) executables (wall)" \
    "$(awk -v s="$first" '$1 >= s { print $1, $2 }' "$links" | sort -n | awk '
      { if (NR == 1 || $1 > e) { t += (NR == 1 ? 0 : e - b); b = $1; e = $2 } else if ($2 > e) e = $2 }
      END { if (NR) t += e - b; printf "%.1f", t }')"
  phase_current=""
}

# Runs the built tests; one row per test executable (unit tests, integration tests, doc tests).
run_tests() {
  local log=$phase_dir/run.log start=$EPOCHREALTIME
  : >"$log"
  phase_current="tests (cargo test)"
  cargo test --workspace "$@" 2>&1 | phase_stamp "$log"
  while IFS=$'\t' read -r name seconds; do
    phase_row "  run $name" "$seconds"
  done < <(awk '
    # "Running unittests src/lib.rs (target/debug/deps/saad_core-0a1b…)", "Running tests/cli.rs (…)"
    $2 == "Running" { exe = $NF; sub(/^\(/, "", exe); sub(/\)$/, "", exe); n = split(exe, p, "/");
                      name = p[n]; sub(/-[0-9a-f]+$/, "", name);
                      if ($3 == "unittests") name = name " (unit tests, " $4 ")";
                      t = $1; next }
    $2 == "Doc-tests" { name = "doc tests of " $3; t = $1; next }
    $2 == "test" && $3 == "result:" && name != "" { printf "%s\t%.1f\n", name, $1 - t; name = "" }
  ' "$log")
  phase_row "tests (cargo test): all executables" "$(phase_seconds "$start" "$EPOCHREALTIME")"
  phase_current=""
}

phase_report() {
  local rc=$?
  if [ -n "$bg_pid" ]; then
    # Stopped early: the background phase (its whole process group) goes too.
    kill -TERM -- "-$bg_pid" 2>/dev/null || true
    echo "scripts/test.sh: stopped the background phase: $bg_name (log: $bg_log)" >&2
  fi
  {
    echo
    printf '%-64s %8s\n' "phase (scripts/test.sh)" "seconds"
    printf '%s\n' "${phase_rows[@]}"
    printf '%-64s %8s\n' "total" "$(phase_seconds "$phase_total_start" "$EPOCHREALTIME")"
  } | tee "$phase_dir/../test-phases.txt" >&2
  if [ "$rc" -ne 0 ]; then
    echo "scripts/test.sh: FAILED in phase: ${phase_current:-unknown} (exit $rc)" >&2
    if [ "$phase_current" = "tests (cargo test)" ]; then
      # cargo names the failing executable ("error: test failed, to rerun pass `--test cli`") and
      # libtest the failing tests ("---- name stdout ----", "failures:").
      sed 's/^[0-9.]* //' "$phase_dir/run.log" 2>/dev/null | awk '
        /^error: test failed/ { print; next }
        /^failures:$/ { list = 1; next }
        list && /^    [A-Za-z_][A-Za-z0-9_:]*$/ { print "  failed: " $1; next }
        { list = 0 }' | sort -u >&2 || true
    fi
  fi
  exit "$rc"
}
trap phase_report EXIT
