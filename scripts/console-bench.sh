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
python3 - "$dir/state/fepd.db" "$records" <<'PY'
import hashlib, json, sqlite3, sys, datetime
db, total = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
tz = datetime.timezone(datetime.timedelta(hours=8))
today = datetime.datetime.now(tz).replace(hour=8, minute=0, second=0, microsecond=0)
files = 30 * 100
per = max(1, total // files)
head = c.execute("SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1").fetchone() or (0, "")
seq, prev = head
def jtext(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
def log(time, event, dataset=None, file=None, batch=None, counts=None, details=None):
    global seq, prev
    seq += 1
    e = {"seq": seq, "time": time, "event": event}
    for k, v in (("dataset", dataset), ("file", file), ("batch", batch), ("counts", counts), ("details", details)):
        if v is not None:
            e[k] = v
    h = hashlib.sha256((prev + jtext(e)).encode()).hexdigest()
    c.execute("INSERT INTO exchange_log (seq, time, event, dataset, file, batch, counts, details, hash) VALUES (?,?,?,?,?,?,?,?,?)",
              (seq, time, event, dataset, file, batch,
               None if counts is None else jtext(counts), None if details is None else jtext(details), h))
    prev = h
n = 0
for f in range(files):
    day = today - datetime.timedelta(days=29 - f // 100)
    t = (day + datetime.timedelta(seconds=(f % 100) * 300)).isoformat()
    ds = "case_accept" if f % 4 else "evaluation"
    name = f"f{f:05d}.csv"
    bad = per // 100
    fid = f + 1
    c.execute("INSERT INTO file (id, dataset, name, work_name, sha256, size, format, encoding, state, records_done, received, sealed, rejected, final_name, claimed_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              (fid, ds, name, f"W{f:05d}~{name}", "%064x" % f, per * 600, "csv", "UTF-8", "rejected" if bad else "done", per, per, per - bad, bad, name, t, t))
    for r in range(bad):
        c.execute("INSERT INTO rejection (file_id, ordinal, position, row, key, field, title, value, rule, message, warning) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                  (fid, r * 100 + 1, f"第 {r*100+2} 行", r * 100 + 2, f"K{f}-{r}", "area_code", "行政区划代码", "999999", "GB/T 2260", "行政区划代码不在 GB/T 2260 代码表中"))
    bid = f"01B{f:023d}"
    state = "parked" if f >= files - 3 else "delivered"
    c.execute("INSERT INTO batch (seq, sort_key, batch_id, dataset, route, file_id, count, bytes, digest, state, accepted, sealed_at, delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
              (fid, "%020d" % fid, bid, ds, "zwfw/" + ds, fid, per - bad, (per - bad) * 600, "%064x" % f, state,
               per - bad if state == "delivered" else None, t, t if state == "delivered" else None))
    rows = [(bid, i, f"K{f}-{i}", "%064x" % (n + i), "upsert") for i in range(per - bad)]
    c.executemany("INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES (?,?,?,?,?)", rows)
    c.executemany("INSERT INTO record_state (dataset, key, hash, version, op, batch_id) VALUES (?,?,?,NULL,?,?)",
                  [(ds, k, h, op, b) for (b, _, k, h, op) in rows])
    n += per
    log(t, "file_claimed", ds, name, details={"fileId": fid, "workName": f"W{f:05d}~{name}", "sha256": "%064x" % f, "size": per * 600, "format": "csv", "encoding": "UTF-8"})
    log(t, "batch_sealed", ds, batch=bid, counts={"records": per - bad, "bytes": (per - bad) * 600}, details={"digest": "%064x" % f, "route": "zwfw/" + ds, "fileId": fid})
    log(t, "file_rejected" if bad else "file_done", ds, name, counts={"received": per, "sealed": per - bad, "rejected": bad})
    if state == "delivered":
        log(t, "batch_delivered", ds, batch=bid, counts={"accepted": per - bad, "rejected": 0})
    else:
        log(t, "batch_parked", ds, batch=bid, details={"reason": "bench", "by": "bench"})
    if f % 100 == 99:
        c.commit()
c.commit()
print(f"{n} records, {files} files, {seq} exchange-log entries")
PY
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
