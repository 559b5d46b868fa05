#!/usr/bin/env bash
# Instructions per record, counted by valgrind's callgrind: a measure of
# the hot path that does not depend on what else the machine is doing
# (wall-clock figures from scripts/bench.sh do). For before/after
# comparisons of a change on a busy machine.
#
#   scripts/instructions.sh [FEPD_BINARY...]    default: target/release/fepd
#   FORMATS="jsonl" KEEP_PROFILES=DIR scripts/instructions.sh …
#       only those formats; keep each callgrind profile in DIR (for
#       callgrind_annotate, to see where the instructions go)
#
# Each binary runs `fepd run` under callgrind on the same three inputs
# (20,000 realistic case_accept records as JSON Lines, CSV and XML, made once by the
# benchmark driver, `benches/bench.rs --quick`), in outbox mode; a file is
# renamed into the inbox once the daemon is ready, and SIGTERM follows its
# receipt. Printed: total instructions of the whole run (start-up, the
# file, the drain) and per record. Needs valgrind (Debian: valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
[ $# -gt 0 ] || set -- "$repo/target/release/fepd"
inputs="$repo/target/instructions-inputs"
if [ ! -f "$inputs/bench.xml" ]; then
    mkdir -p "$inputs"
    cargo bench --locked --bench bench --no-run
    for fmt in jsonl csv xml; do
        out=$(FEPD_BENCH_KEEP=1 cargo bench --locked --bench bench -- --quick --only "$fmt-outbox" 2>&1)
        kept=$(ls -td "$repo"/target/bench-tmp/.tmp*/tput-"$fmt"-outbox | head -n1)
        cp "$kept/spool/case_accept/done/bench.$fmt" "$inputs/bench.$fmt"
        cp "$kept/fepd.toml" "$inputs/fepd.toml"
        rm -rf "$(dirname "$kept")"
    done
fi
records=20000
printf '%-40s %-6s %16s %12s\n' binary format instructions per-record
for bin in "$@"; do
    bin=$(realpath "$bin")
    for fmt in ${FORMATS:-jsonl csv xml}; do
        d=$(mktemp -d "$repo/target/instructions.XXXXXX")
        sed "s|^schemas_dir = .*|schemas_dir = \"$repo/schemas\"|" "$inputs/fepd.toml" > "$d/fepd.toml"
        mkdir -p "$d/spool/case_accept/inbox"
        cp "$inputs/bench.$fmt" "$d/staged.$fmt"
        FEPD_LOG=info valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
            "$bin" run --config "$d/fepd.toml" 2> "$d/daemon.log" &
        pid=$!
        for _ in $(seq 1 600); do grep -q "fepd ready" "$d/daemon.log" && break; sleep 0.5; done
        mv "$d/staged.$fmt" "$d/spool/case_accept/inbox/bench.$fmt"
        for _ in $(seq 1 1200); do [ -f "$d/spool/case_accept/done/bench.$fmt.receipt.json" ] && break; sleep 0.5; done
        [ -f "$d/spool/case_accept/done/bench.$fmt.receipt.json" ] || { echo "no receipt for $fmt ($d)" >&2; kill "$pid"; exit 1; }
        kill -TERM "$pid"; wait "$pid" || true
        total=$(sed -n 's/^summary: //p' "$d/cg.out" | head -n1)
        printf '%-40s %-6s %16s %12s\n' "$(basename "$(dirname "$(dirname "$(dirname "$bin")")")")/${bin##*/}" "$fmt" "$total" "$((total / records))"
        if [ -n "${KEEP_PROFILES:-}" ]; then
            mkdir -p "$KEEP_PROFILES"
            cp "$d/cg.out" "$KEEP_PROFILES/$(basename "$(dirname "$(dirname "$(dirname "$bin")")")")-$fmt.cg"
        fi
        rm -rf "$d"
    done
done
