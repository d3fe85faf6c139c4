#!/usr/bin/env bash
# Side-by-side figures against an earlier build: the core's per-frame benches and the
# simulator's 50-node mesh hour (wall time, interleaved runs; instruction count, noise-free).
#
#   scripts/compare.sh BASE_REV [ROUNDS]
#
# Builds BASE_REV in a git worktree with its own target directory (under /tmp), then runs
# baseline and current builds alternately, ROUNDS times each (default 3 for the benches, 2×
# that for the mesh), and prints every figure and the median ratio. Needs valgrind for the
# instruction count (skipped with a note when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=${1:?usage: scripts/compare.sh BASE_REV [ROUNDS]}
rounds=${2:-3}
base_dir=/tmp/timed-compare-base
base_target=/tmp/timed-compare-base-target

if [ -d "$base_dir" ]; then git worktree remove --force "$base_dir"; fi
git worktree add --detach "$base_dir" "$base_rev" >/dev/null
trap 'git worktree remove --force "$base_dir" >/dev/null 2>&1 || true' EXIT

echo "building baseline $base_rev and current $(git rev-parse --short HEAD)" >&2
(cd "$base_dir" && CARGO_TARGET_DIR=$base_target cargo build -q --release -p timed-sim)
# The ping-pong instruction count needs the example in the baseline too (any wire-v2 build).
[ -f "$base_dir/core/examples/ping_pong.rs" ] || { mkdir -p "$base_dir/core/examples"; cp core/examples/ping_pong.rs "$base_dir/core/examples/"; }
(cd "$base_dir" && CARGO_TARGET_DIR=$base_target cargo build -q --release -p timed-core --example ping_pong) 2>/dev/null || echo "baseline: ping_pong example does not build there; its instruction count is skipped" >&2
cargo build -q --release -p timed-core --example ping_pong
(cd "$base_dir" && CARGO_TARGET_DIR=$base_target cargo bench -q -p timed-core --bench frames --no-run) 2>/dev/null
cargo build -q --release -p timed-sim
cargo bench -q -p timed-core --bench frames --no-run 2>/dev/null
bench_bin() { # newest frames bench binary under target dir $1
  ls -t "$1"/release/deps/frames-* | grep -v '\.d$' | head -1
}
base_bench=$(bench_bin "$base_target")
cur_bench=$(bench_bin target)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Criterion's middle estimate, in µs, for each benchmark id of one run.
bench_once() {
  "$1" --bench --warm-up-time 1 --measurement-time 3 2>/dev/null |
    awk '/^[a-z_0-9]+\/[a-z_0-9]+/ {id=$1} /time:/ {
      for (i = 1; i <= NF; i++) if ($i == "time:") break
      v = $(i + 3); u = $(i + 4)
      # The "change:" block repeats "time:" with percentages: only durations count.
      if (u == "ns") v /= 1000; else if (u == "ms") v *= 1000; else if (u != "µs" && u != "us") next
      print id, v }'
}
declare -A B C
for r in $(seq "$rounds"); do
  while read -r id v; do B[$id]+="$v "; done < <(bench_once "$base_bench")
  while read -r id v; do C[$id]+="$v "; done < <(bench_once "$cur_bench")
done
echo
echo "core, µs per 10 000 pings ($rounds interleaved rounds)"
printf '%-70s %-28s %-28s %s\n' benchmark baseline current ratio
for id in "${!C[@]}"; do
  b=$(echo ${B[$id]:-} | tr ' ' '\n' | median); c=$(echo ${C[$id]} | tr ' ' '\n' | median)
  printf '%-70s %-28s %-28s %.2f\n' "$id" "${B[$id]:-}" "${C[$id]}" "$(echo "$c / $b" | bc -l)"
done | sort

mesh() { "$1" run --scenario mesh --nodes 50 --duration 1h --seed 1 --json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["wall_secs"])'; }
bw=(); cw=()
for r in $(seq $((rounds * 2))); do
  bw+=("$(mesh "$base_target/release/timed-sim")")
  cw+=("$(mesh target/release/timed-sim)")
done
bm=$(printf '%s\n' "${bw[@]}" | median); cm=$(printf '%s\n' "${cw[@]}" | median)
echo
echo "simulator, 50-node mesh hour, wall seconds ($((rounds * 2)) interleaved runs)"
echo "baseline: ${bw[*]} (median $bm)"
echo "current:  ${cw[*]} (median $cm)"
printf 'ratio: %.3f\n' "$(echo "$cm / $bm" | bc -l)"

if command -v valgrind >/dev/null; then
  instr() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
      "$1" run --scenario mesh --nodes 50 --duration 1h --seed 1 --json 2>&1 >/dev/null |
      awk '/I *refs/ {gsub(",", "", $NF); print $NF}'; }
  bi=$(instr "$base_target/release/timed-sim"); ci=$(instr target/release/timed-sim)
  echo "instructions, mesh hour: baseline $bi, current $ci, ratio $(echo "scale=4; $ci / $bi" | bc -l)"
  pp() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 |
      awk '/I *refs/ {gsub(",", "", $NF); print $NF}'; }
  if [ -x "$base_target/release/examples/ping_pong" ]; then
    for arg in drop recycle; do
      bp=$(pp "$base_target/release/examples/ping_pong" $arg); cp_=$(pp target/release/examples/ping_pong $arg)
      echo "instructions, 100 000 pings ($arg): baseline $bp, current $cp_, ratio $(echo "scale=4; $cp_ / $bp" | bc -l)"
    done
  fi
else
  echo "instructions: valgrind not installed, skipped"
fi
