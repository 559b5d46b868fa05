#!/usr/bin/env bash
# Cluster mode against single-host push (docs/cluster.md, "Sizing"): the
# same N realistic case records (benches/bench/input.rs, `--write-records`:
# the benchmark's own realistic input), split into F JSON Lines files and
# dropped at once, pushed to `fepd simulate-library` on loopback by
#   single   one fepd in push mode (no [cluster]);
#   cluster  three fepd nodes on one shared spool, with three nats-servers
#            (JetStream, stream_replicas = 3) that this script starts on
#            loopback and stops by pid.
# Printed per mode: records at the library, seconds from the drop to the
# last record at the library, records/s, and CPU-seconds (user + system of
# every fepd, and in cluster mode of every nats-server) per million records.
#
#   scripts/cluster-bench.sh [--records N] [--files F] [BINARY]
#       defaults: --records 200000, --files 8, BINARY target/release/fepd
#       (built if missing). Needs nats-server (Debian's package) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
records=200000
files=8
bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --records) records=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) bin=$(realpath "$1"); shift ;;
    esac
done
if [ -z "$bin" ]; then
    [ -x target/release/fepd ] || cargo build --release --locked
    bin="$repo/target/release/fepd"
fi
nats_server=/usr/sbin/nats-server
[ -x "$nats_server" ] || { echo "cluster-bench: $nats_server missing (apt-get install nats-server)" >&2; exit 1; }
work="$repo/target/cluster-bench"
mkdir -p "$work"
input="$work/records-$records.jsonl"
[ -f "$input" ] || cargo bench --locked --bench bench -- --write-records "$input" "$records"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # WHAT TRIES TEST...
    local what=$1 tries=$2; shift 2
    for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
    echo "cluster-bench: timed out waiting for $what" >&2
    return 1
}

ready() { grep -q "fepd ready" "$1"; }

has_leader() { # MONITOR-PORT
    curl -s "http://127.0.0.1:$1/jsz" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("meta_cluster",{}).get("leader") else 1)' 2>/dev/null
}

# CPU ticks (user + system) of the given pids.
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }

at_library() { # ADDR: records the library holds
    python3 - "$1" <<'EOF'
import json, sys, urllib.request
r = urllib.request.Request(f"http://{sys.argv[1]}/sim/stats", headers={"Authorization": "Bearer bench"})
print(json.load(urllib.request.urlopen(r))["records"])
EOF
}

# Every file has its receipt or report (in done/ or rejected/).
verdicts() { # SPOOL
    [ "$(find "$1/case_accept/done" "$1/case_accept/rejected" -name '*.json' 2>/dev/null | wc -l)" -ge "$files" ]
}

# The records sealed from every file (their receipts' and reports' counts).
sealed() { # SPOOL
    python3 - "$1" <<'EOF'
import glob, json, sys
print(sum(json.load(open(p))["counts"]["sealed"]
          for p in glob.glob(f"{sys.argv[1]}/case_accept/*/*.json")))
EOF
}

all_there() { [ "$(at_library "$lib_addr" 2>/dev/null)" = "$want" ]; }

listening() { grep -q "listening on" "$1"; }

library() { # DIR: starts the simulator, sets lib_addr
    "$bin" simulate-library --listen 127.0.0.1:0 --db "$1/library.db" --inspect-token bench \
        > "$1/lib.out" 2>/dev/null &
    pids+=($!)
    wait_for "the library" 300 listening "$1/lib.out"
    local line
    line=$(head -n1 "$1/lib.out")
    lib_addr=${line##* }
}

config() { # DIR NODE-TOML
    cat > "$1/fepd.toml" <<EOF
spool_dir = "$2"
state_dir = "state"
schemas_dir = "$repo/schemas"
sender = "230000-zwfw"
timezone = "+08:00"

[intake]
rescan_secs = 5
settle_secs = 0

[sink]
mode = "http"

[sink.http]
base_url = "http://$lib_addr"
client_id = "fep-001"
client_secret_env = "FEPD_BENCH_SECRET"

[batch]
max_records = 1000
max_bytes = 4000000
max_age_ms = 1000

[backpressure]
high_water_records = 0
high_water_bytes = 0

[[dataset]]
name = "case_accept"
category = "zwfw"
resource = "case_accept"
$3
EOF
}

# The input as F files, staged beside the inbox (moved in at once).
stage() { # SPOOL
    mkdir -p "$1/case_accept/inbox" "$1/staged"
    split -n "l/$files" -d --additional-suffix=.jsonl "$input" "$1/staged/part-"
}

run() { # MODE
    local mode=$1 dir spool node_pids=() all=()
    dir=$(mktemp -d "$work/$mode.XXXXXX")
    spool="$dir/spool"
    library "$dir"
    stage "$spool"
    local n=1 cluster=""
    if [ "$mode" = cluster ]; then
        n=3
        local client=() route=() mon=() urls=""
        for i in 0 1 2; do client+=("$(port)"); route+=("$(port)"); mon+=("$(port)"); done
        for i in 0 1 2; do
            local routes=""
            for j in 0 1 2; do [ "$j" = "$i" ] || routes+="${routes:+,}nats://127.0.0.1:${route[$j]}"; done
            "$nats_server" -a 127.0.0.1 -p "${client[$i]}" -m "${mon[$i]}" -n "n$i" -js -sd "$dir/nats-$i" \
                --cluster_name fepd-bench --cluster "nats://127.0.0.1:${route[$i]}" --routes "$routes" \
                > /dev/null 2> "$dir/nats-$i.log" &
            pids+=($!); all+=($!)
            urls+="${urls:+, }\"nats://127.0.0.1:${client[$i]}\""
        done
        wait_for "a JetStream meta leader" 300 has_leader "${mon[0]}"
        cluster="[cluster]
nats = [$urls]
stream_replicas = 3"
    fi
    for i in $(seq 1 "$n"); do
        mkdir -p "$dir/node$i"
        config "$dir/node$i" "$spool" "${cluster:+$cluster
node = \"node$i\"}"
        (cd "$dir/node$i" && FEPD_BENCH_SECRET=secret exec "$bin" run --config fepd.toml 2> daemon.log) &
        pids+=($!); node_pids+=($!); all+=($!)
    done
    for i in $(seq 1 "$n"); do wait_for "node$i ready" 600 ready "$dir/node$i/daemon.log"; done
    local c0 t0 t1 c1 got want
    c0=$(ticks "${all[@]}")
    t0=$(date +%s.%N)
    for f in "$spool"/staged/*.jsonl; do mv "$f" "$spool/case_accept/inbox/"; done
    wait_for "every file's verdict" 36000 verdicts "$spool"
    want=$(sealed "$spool")
    wait_for "every sealed record at the library" 36000 all_there
    t1=$(date +%s.%N)
    c1=$(ticks "${all[@]}")
    got=$(at_library "$lib_addr")
    python3 - "$mode" "$got" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'EOF'
import sys
mode, n, t0, t1, c0, c1, tck = sys.argv[1:]
n = int(n); secs = float(t1) - float(t0); cpu = (int(c1) - int(c0)) / int(tck)
print(f"{mode:<8} {n:>9,} {secs:>8.1f} {n / secs:>9,.0f} {cpu / n * 1e6:>10.1f}")
EOF
    cleanup
    pids=()
    rm -rf "$dir"
}

printf '%-8s %9s %8s %9s %10s\n' mode records secs rec/s cpu-s/M
run single
run cluster
echo "input: $records realistic records in $files files; machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
