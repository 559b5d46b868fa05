#!/usr/bin/env bash
# End-to-end benchmark of fepd (issue 6): builds --release once and runs
# benches/bench.rs, which prints the table (also saved to
# target/bench-tmp/report-<mode>.md).
#   scripts/bench.sh            full run (≤ 10 min on 2 cores)
#   scripts/bench.sh --quick    reduced sizes (~1-2 min)
#   scripts/bench.sh --smoke    tiny, debug build, no release build (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --smoke) exec cargo test --locked --bench bench -- --smoke ;;
  --quick) exec cargo bench --locked --bench bench -- --quick ;;
  "")      exec cargo bench --locked --bench bench -- --full ;;
  *) echo "usage: scripts/bench.sh [--quick|--smoke]" >&2; exit 2 ;;
esac
