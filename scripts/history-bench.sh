#!/usr/bin/env bash
# Sealing rate on realistic input over a year of history (README.md,
# "Benchmarks"): the case the benchmark's own records flatter. Records like
# a real export (keys in no particular order, every applicant different,
# mixed datetime forms, padded values; benches/bench/input.rs, the
# benchmark's own realistic input) are dropped as
# one JSON Lines file into a daemon in outbox mode whose state database
# already holds N keys of history in random order.
#
#   scripts/history-bench.sh [--history N] [--records M] [--cache-mib C] [BINARY...]
#       defaults: --history 10000000, --records 200000; --cache-mib sets
#       [state] cache_mib (the sealing connection's page cache; unset: the
#       binary's default, and a config older binaries also read),
#       BINARY target/release/fepd (built if missing)
#
# The history database is made once per N under target/history-bench/ and
# copied for each binary, so several builds (before/after a change) run on
# the same bytes. Printed per binary: records/s from drop to receipt, the
# daemon's user and system CPU-seconds over that span, CPU-seconds per
# million records, peak RSS, and the state database's size before and
# after. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
history=10000000
records=200000
state_section=""
bins=()
while [ $# -gt 0 ]; do
    case "$1" in
        --history) history=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        --cache-mib) state_section=$(printf '[state]\ncache_mib = %s\n' "$2"); shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) bins+=("$(realpath "$1")"); shift ;;
    esac
done
if [ ${#bins[@]} -eq 0 ]; then
    [ -x target/release/fepd ] || cargo build --release --locked
    bins=("$repo/target/release/fepd")
fi
work="$repo/target/history-bench"
mkdir -p "$work"
input="$work/records-$records.jsonl"
[ -f "$input" ] || cargo bench --locked --bench bench -- --write-records "$input" "$records"
base="$work/history-$history"

config() { # DIR
    cat > "$1/fepd.toml" <<EOF
spool_dir = "spool"
state_dir = "state"
schemas_dir = "$repo/schemas"
sender = "230000-zwfw"
timezone = "+08:00"

[intake]
rescan_secs = 30
settle_secs = 0

[sink]
mode = "outbox"
outbox_dir = "spool/outbox"

[batch]
max_records = 1000
max_bytes = 4000000
max_age_ms = 1000

[backpressure]
high_water_records = 0
high_water_bytes = 0

$state_section

[[dataset]]
name = "case_accept"
category = "zwfw"
resource = "case_accept"
EOF
}

wait_for() { # WHAT TRIES TEST...
    local what=$1 tries=$2; shift 2
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
    echo "history-bench: timed out waiting for $what" >&2
    return 1
}

ready() { grep -q "fepd ready" "$1/daemon.log"; }

if [ ! -f "$base/state/fepd.db" ]; then
    rm -rf "$base"; mkdir -p "$base"
    config "$base"
    (cd "$base" && exec "${bins[0]}" run --config fepd.toml 2> daemon.log) &
    pid=$!
    wait_for "the daemon to make its database" 300 ready "$base"
    kill -TERM "$pid"; wait "$pid" || true
    echo "history-bench: writing $history keys of history…" >&2
    python3 scripts/realistic.py history "$base/state/fepd.db" "$history"
fi

printf '%-34s %9s %9s %8s %8s %10s %8s %10s %10s %8s %10s\n' \
    binary records rec/s user-s sys-s cpu-s/M rss-MiB db-before db-after merge-s cpu-s/M+m
for bin in "${bins[@]}"; do
    run=$(mktemp -d "$work/run.XXXXXX")
    cp -r "$base/state" "$run/state"
    config "$run"
    mkdir -p "$run/spool/case_accept/inbox"
    cp "$input" "$run/staged.jsonl"
    db_before=$(du -m "$run/state/fepd.db" | cut -f1)
    (cd "$run" && exec "$bin" run --config fepd.toml 2> daemon.log) &
    pid=$!
    wait_for "fepd ready" 600 ready "$run"
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    t0=$(date +%s.%N)
    mv "$run/staged.jsonl" "$run/spool/case_accept/inbox/bench.jsonl"
    receipt="$run/spool/case_accept/done/bench.jsonl.receipt.json"
    rejected="$run/spool/case_accept/rejected/bench.jsonl.report.json"
    wait_for "the receipt" 36000 test -f "$receipt" -o -f "$rejected"
    t1=$(date +%s.%N)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    # The keys sealed go into record_state once intake has been idle a
    # second (src/state/recent.rs): its cost is reported beside the rate.
    wait_for "the merge of the sealed keys" 36000 grep -q "sealed keys merged into record_state" "$run/daemon.log"
    t2=$(date +%s.%N)
    read -r u2 s2 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid" || true
    db_after=$(du -m "$run/state/fepd.db" | cut -f1)
    if [ -f "$rejected" ]; then
        echo "history-bench: records were rejected — see $rejected" >&2
        exit 1
    fi
    sealed=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['sealed'])" "$receipt")
    tck=$(getconf CLK_TCK)
    python3 - "$bin" "$sealed" "$t0" "$t1" "$u0" "$s0" "$u1" "$s1" "$tck" "$rss" "$db_before" "$db_after" "$t2" "$u2" "$s2" <<'EOF'
import sys
bin_, n, t0, t1, u0, s0, u1, s1, tck, rss, b, a, t2, u2, s2 = sys.argv[1:]
n = int(n); secs = float(t1) - float(t0)
user = (int(u1) - int(u0)) / int(tck); sys_ = (int(s1) - int(s0)) / int(tck)
merge_cpu = (int(u2) + int(s2) - int(u1) - int(s1)) / int(tck)
name = bin_ if len(bin_) <= 34 else "…" + bin_[-33:]
print(f"{name:<34} {n:>9,} {n / secs:>9,.0f} {user:>8.1f} {sys_:>8.1f} {(user + sys_) / n * 1e6:>10.1f} {rss:>8} {b:>10} {a:>10} {merge_cpu:>8.1f} {(user + sys_ + merge_cpu) / n * 1e6:>10.1f}")
EOF
    rm -rf "$run"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
