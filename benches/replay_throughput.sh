#!/usr/bin/env bash
# End-to-end replay throughput: wall time, route entries/s and peak RSS of `routewatch replay`
# over one MRT file, median of N runs. Figures are recorded in BENCHMARKS.md.
#
# usage: benches/replay_throughput.sh CONFIG MRT_FILE [RUNS]
#   e.g. benches/replay_throughput.sh config/demo.toml fixtures/mrt/updates/ripe-bgpdump__updates.et-header.2015.gz 5
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1 file=$2 runs=${3:-5}
cargo build --release --quiet
bin=target/release/routewatch
entries=$("$bin" replay -c "$config" --format json "$file" 2>/dev/null |
  python3 -c 'import json,sys; print(sum(f["processed"] for f in json.load(sys.stdin)["files"]))')
results=()
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for _ in $(seq "$runs"); do
  /usr/bin/time -o "$tmp" -f '%e %M' "$bin" replay -c "$config" "$file" >/dev/null 2>&1
  results+=("$(tail -1 "$tmp")")
done
printf '%s\n' "${results[@]}" | sort -n | awk -v n="$runs" -v e="$entries" -v f="$file" '
  { t[NR]=$1; m[NR]=$2 } END {
    med=t[int((n+1)/2)]; if (med == 0) med = 0.005;
    maxm=0; for (i=1;i<=n;i++) if (m[i]>maxm) maxm=m[i];
    printf "%s: %d entries, median %.3f s over %d runs, %.2f M entries/s, peak RSS %.1f MiB\n",
      f, e, med, n, e/med/1e6, maxm/1024 }'
