#!/usr/bin/env bash
# End-to-end benchmark of fepd: builds --release once and runs
# benches/bench.rs, which prints the table (also saved to
# target/bench-tmp/report-<mode>.md).
#   scripts/bench.sh            full run (≤ 10 min on 2 cores)
#   scripts/bench.sh --quick    reduced sizes (~1-2 min)
#   scripts/bench.sh --smoke    tiny, debug build, no release build (CI)
# Options after the mode, for the push (http) cases:
#   --latency-ms N   the round trip of the distant-library push cases (default
#                    20): the simulator delays each push answer by N ms
#   --inflight N     [sink.http] inflight (default: fepd's)
#   --only CASE      one throughput case alone: [uniform-]FMT-SINK[-Nms], FMT
#                    jsonl|csv|xml|xlsx, SINK outbox|http (realistic input
#                    unless uniform-; -20ms the round-trip case), e.g.
#                    xlsx-outbox, jsonl-http-20ms, uniform-csv-outbox; or
#                    pg-outbox (rows from a PostgreSQL source into the
#                    outbox, beside PostgreSQL's own read of the same rows),
#                    or big-file (the 2 GiB file's peak RSS and restarts)
#   --rows N         rows of the PostgreSQL case (default: 200000 full,
#                    20000 quick, 2000 smoke)
# e.g. scripts/bench.sh --quick --latency-ms 20 --inflight 1 --only jsonl-http-20ms
# Environment, to compare settings on one binary: FEPD_BENCH_CHUNK_RECORDS=N
# ([intake] chunk_records), FEPD_BENCH_CACHE_MIB=N ([state] cache_mib).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/bench.sh [--quick|--smoke] [--latency-ms N] [--inflight N] [--only CASE] [--rows N]"
mode="${1:-}"
case "$mode" in
  --smoke|--quick) shift ;;
  --latency-ms|--inflight|--only|--rows|"") mode="" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
for a in "$@"; do
  case "$a" in
    --latency-ms|--inflight|--only|--rows|[0-9]*|*-outbox|*-http|*-http-*ms|big-file) ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case "$mode" in
  --smoke) exec cargo test --locked --bench bench -- --smoke "$@" ;;
  --quick) exec cargo bench --locked --bench bench -- --quick "$@" ;;
  "")      exec cargo bench --locked --bench bench -- --full "$@" ;;
esac
