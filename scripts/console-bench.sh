#!/usr/bin/env bash
# Page-render benchmark of the web console (README "Web console"): a state
# database with 1,000,000 sealed and delivered records over 30 days (100
# files a day, 1% of records rejected, the exchange log hash-chained as
# fepd writes it) is generated in a temp folder, the daemon is started on
# it with the console on loopback, and each page is fetched as a logged-in
# operator (the auditor for 对账 and 系统's reader), 1 warm-up then RUNS
# times; the median and worst times are printed in ms.
#
#   scripts/console-bench.sh [--records N] [--runs N] [--release]
#
# The debug binary by default (what `cargo build` made; slower than the
# shipped one, so its figures are an upper bound); --release builds and
# uses target/release/fepd.
set -euo pipefail
cd "$(dirname "$0")/.."
records=1000000
runs=5
profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --release) profile=release; shift ;;
    *) echo "usage: scripts/console-bench.sh [--records N] [--runs N] [--release]" >&2; exit 2 ;;
  esac
done
if [ "$profile" = release ]; then cargo build --release --locked --bin fepd; else cargo build --locked --bin fepd; fi
fepd="$PWD/target/$profile/fepd"
dir="$(mktemp -d)"
daemon=""
cleanup() { [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$dir/fepd.toml" <<EOF
spool_dir   = "spool"
state_dir   = "state"
schemas_dir = "$PWD/schemas"
sender      = "230000-zwfw"
timezone    = "+08:00"
[sink]
mode       = "outbox"
outbox_dir = "spool/outbox"
[console]
listen = "127.0.0.1:$port"
[[dataset]]
name     = "case_accept"
category = "zwfw"
resource = "case_accept"
[[dataset]]
name     = "evaluation"
category = "zwfw"
resource = "evaluation"
EOF
printf 'Bench-Console-2026\n' > "$dir/pw"
for u in op:operator au:auditor; do
  "$fepd" --config "$dir/fepd.toml" users add "${u%%:*}" --role "${u##*:}" --password-file "$dir/pw" >/dev/null
done

echo "== generating $records records over 30 days"
started=$(date +%s)
python3 scripts/console-history.py "$dir/state/fepd.db" "$records"
echo "   generated in $(( $(date +%s) - started )) s; $(du -h "$dir/state/fepd.db" | cut -f1) state database"

FEPD_LOG=warn "$fepd" --config "$dir/fepd.toml" run >"$dir/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/login" && break
  sleep 0.2
done
base="http://127.0.0.1:$port"
login() { # $1 user → cookie jar $dir/$1.jar
  local jar="$dir/$1.jar" token
  token=$(curl -fs -c "$jar" "$base/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
  curl -fs -b "$jar" -c "$jar" -o /dev/null --data-urlencode "csrf=$token" --data-urlencode "username=$1" \
    --data-urlencode "password=Bench-Console-2026" "$base/login"
}
login op
login au
day=$(date -d "+8 hours" -u +%F)
printf '%-48s %10s %10s\n' page median_ms worst_ms
measure() { # $1 user, $2 path
  local times=() t
  curl -fs -b "$dir/$1.jar" -o /dev/null "$base$2"
  for _ in $(seq 1 "$runs"); do
    t=$(curl -fs -b "$dir/$1.jar" -o /dev/null -w '%{time_total}' "$base$2")
    times+=("$(python3 -c "print(round($t*1000))")")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  printf '%-48s %10s %10s\n' "$2" "$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")" "$(echo "$sorted" | tail -1)"
}
for p in / "/batches" "/batches?state=parked" "/files" "/files?day=$day" "/files/1500" \
         "/rejections" "/rejections?dataset=case_accept&day=$day" "/log" \
         "/log?event=file_done&dataset=evaluation" "/log?key=K1500-7"; do
  measure op "$p"
done
for p in "/reconcile?day=$day" "/system" "/log?verify=1"; do
  measure au "$p"
done
