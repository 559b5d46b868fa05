#!/usr/bin/env bash
# Disk use over a long run with retention on (issue 12): drops ROUNDS rounds
# of FILES files of RECORDS case_accept records each into a pull-mode
# deployment whose collector (this script) acknowledges every batch, with
# [retention] set to seconds, and prints the state DB (+ WAL) and spool
# sizes after every round and at the end. Keys cycle through KEYSPACE
# distinct values with changed content each round (upserts), as a real
# source re-sends its cases; dedupe memory is then bounded too.
#
#   scripts/retention-run.sh [ROUNDS=20] [FILES=3] [RECORDS=2000] [KEEP_SECS=20]
#
# Debug build, nice'd; a few minutes on 2 cores. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-20}"
FILES="${2:-3}"
RECORDS="${3:-2000}"
KEEP="${4:-20}"
KEYSPACE="${KEYSPACE:-20000}"
PAUSE="${PAUSE:-5}"

nice -n 5 cargo build --quiet
FEPD="$PWD/target/debug/fepd"
W="$(mktemp -d "${TMPDIR:-/tmp}/fepd-retention.XXXXXX")"
mkdir -p "$W/gen"
cat >"$W/fepd.toml" <<EOF
spool_dir = "spool"
state_dir = "state"
schemas_dir = "$PWD/schemas"
sender = "230000-zwfw"
[intake]
rescan_secs = 1
settle_secs = 1
[sink]
mode = "outbox"
outbox_dir = "spool/outbox"
[retention]
batch_bodies = "${KEEP}s"
done_files = "${KEEP}s"
rejected_files = "${KEEP}s"
delivered_files = "${KEEP}s"
record_rows = "$((KEEP * 2))s"
interval = "5s"
[[dataset]]
name = "case_accept"
category = "zwfw"
resource = "case_accept"
EOF

FEPD_LOG=info nice -n 5 "$FEPD" run --config "$W/fepd.toml" 2>"$W/daemon.log" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
INBOX="$W/spool/case_accept/inbox"
OUT="$W/spool/outbox/case_accept"
for _ in $(seq 100); do [ -d "$INBOX" ] && break; sleep 0.1; done

# The library's collector: acknowledge every exported batch.
collect() {
  [ -d "$OUT" ] || return 0
  for f in "$OUT"/*.json; do
    [ -e "$f" ] || continue
    local id
    id="$(basename "$f" .json)"
    [ -e "$OUT/$id.ack" ] && continue
    printf '{"receiptId":"R-%s","rejected":[]}' "$id" >"$OUT/.$id.ack.tmp"
    mv "$OUT/.$id.ack.tmp" "$OUT/$id.ack"
  done
}

bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
measure() {
  local db wal spool bodies
  db="$(bytes "$W/state/fepd.db")"
  wal="$(bytes "$W/state/fepd.db-wal")"
  spool="$(bytes "$W/spool")"
  bodies="$(python3 - "$W/state/fepd.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(c.execute("SELECT COUNT(*) FROM batch_body").fetchone()[0],
      c.execute("SELECT COUNT(*) FROM batch WHERE state = 'delivered'").fetchone()[0],
      c.execute("SELECT COUNT(*) FROM record_state").fetchone()[0])
PY
)"
  printf '%6s %7s %9d %12d %10d %12d  %s\n' "$1" "$(( $(date +%s) - T0 ))" "$2" "$db" "$wal" "$spool" "$bodies"
}

gen() { # gen ROUND FILE PATH
  python3 - "$@" "$RECORDS" "$KEYSPACE" "$FILES" <<'PY'
import json, sys
rnd, f, path, n, space, files = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                 int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
UC = "0123456789ABCDEFGHJKLMNPQRTUWXY"
UW = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
IW = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
def uscc(k):
    s = f"9111010{k % 10**10:010d}"[:17]
    return s + UC[(31 - sum(UC.index(c) * w for c, w in zip(s, UW)) % 31) % 31]
def idc(k):
    s = f"110105198001{1 + k % 28:02d}{k % 1000:03d}"
    return s + "10X98765432"[sum(int(c) * w for c, w in zip(s, IW)) % 11]
with open(path, "w", encoding="utf-8") as out:
    for j in range(n):
        i = (((rnd - 1) * files + f - 1) * n + j) % space
        out.write(json.dumps({
            "project_no": f"11110105MB0000000X4000110012026112{i:06d}",
            "task_code": "11110105MB0000000X400011001000001",
            "task_name": f"对《政府信息公开》申请的受理 第{rnd}轮",
            "task_version": "3", "project_type": "2", "applyer_type": "1",
            "applyer_name": f"张三{i}", "applyer_page_type": "111",
            "applyer_page_code": idc(i), "contact_mobile": f"138{i % 10**8:08d}",
            "apply_date": "2026-11-20 09:30:00", "accept_date": "2026-11-20 10:15:30",
            "promise_date": "2026-11-27 17:00:00", "org_name": "北京市东城区政务服务管理局",
            "org_code": uscc(1000 + i % 50), "area_code": "110101",
        }, ensure_ascii=False) + "\n")
PY
}

T0=$(date +%s)
echo "retention ${KEEP}s (record rows $((KEEP * 2))s), pass every 5s; $ROUNDS rounds × $FILES files × $RECORDS records, $KEYSPACE keys"
printf '%6s %7s %9s %12s %10s %12s  %s\n' round secs records db_bytes wal_bytes spool_bytes "bodies delivered keys"
measure start 0
dropped=0
for r in $(seq 1 "$ROUNDS"); do
  for f in $(seq 1 "$FILES"); do
    gen "$r" "$f" "$W/gen/r$r-$f.jsonl"
    mv "$W/gen/r$r-$f.jsonl" "$INBOX/"
    dropped=$((dropped + RECORDS))
  done
  end=$(( $(date +%s) + PAUSE ))
  while [ "$(date +%s)" -lt "$end" ]; do collect; sleep 0.5; done
  measure "$r" "$dropped"
done
# Let the last batches be acknowledged and aged out.
end=$(( $(date +%s) + KEEP * 2 + 15 ))
while [ "$(date +%s)" -lt "$end" ]; do collect; sleep 1; done
measure end "$dropped"
passes="$(grep -c 'retention pass' "$W/daemon.log" || true)"
echo "retention passes: $passes; inbox left: $(ls "$INBOX" | wc -l); errors in log: $(grep -c ' ERROR ' "$W/daemon.log" || true)"
# What the one-time switch of an older database costs: a VACUUM of a copy.
cp "$W/state/fepd.db" "$W/copy.db"
python3 - "$W/copy.db" <<'PY'
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
size = os.path.getsize(sys.argv[1])
t = time.time()
c.execute("PRAGMA auto_vacuum = NONE"); c.execute("VACUUM")
print(f"one-time VACUUM of a {size / 1e6:.1f} MB database: {time.time() - t:.2f} s")
PY
