#!/usr/bin/env bash
# The pipeline's throughput with the web console in use (README "Web
# console"): the same intake workload runs twice on the release binary —
# once without [console], once with it while logged-in clients fetch the
# heaviest pages (总览 /, 拒收记录 /rejections, 对账 /reconcile, the
# whole chain's verification /log?verify=1) one after another in a loop —
# and each run prints records/s from the drop to the last receipt and the
# daemon's CPU-seconds per million records (its console included).
#
#   scripts/console-load.sh [--records N] [--files F] [--history H] [--clients C]
#       defaults: 200000 case_accept records in 20 JSON Lines files, dropped
#       at once into a daemon in outbox mode whose state database already
#       holds H = 200000 records of 30 days' history (scripts/console-history.py,
#       so the pages have something to read); C = 2 clients
#
# Needs python3 and curl. Prints the pages fetched and their mean time.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
records=200000
files=20
history=200000
clients=2
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    --history) history=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
cargo build --release --locked --bin fepd
fepd="$repo/target/release/fepd"
work=$(mktemp -d)
daemon=""
loops=()
cleanup() {
  for p in "${loops[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

config() { # DIR CONSOLE(0|1)
  cat > "$1/fepd.toml" <<EOF
spool_dir   = "spool"
state_dir   = "state"
schemas_dir = "$repo/schemas"
sender      = "230000-zwfw"
timezone    = "+08:00"
[intake]
rescan_secs = 30
settle_secs = 0
[sink]
mode       = "outbox"
outbox_dir = "spool/outbox"
[batch]
max_records = 1000
max_bytes   = 4000000
max_age_ms  = 1000
[backpressure]
high_water_records = 0
high_water_bytes   = 0
[[dataset]]
name     = "case_accept"
category = "zwfw"
resource = "case_accept"
[[dataset]]
name     = "evaluation"
category = "zwfw"
resource = "evaluation"
EOF
  if [ "$2" = 1 ]; then printf '[console]\nlisten = "127.0.0.1:%s"\n' "$port" >> "$1/fepd.toml"; fi
}

echo "== history: $history records; workload: $records records in $files files"
base="$work/base"
mkdir -p "$base"
config "$base" 1
printf 'Load-Console-2026\n' > "$work/pw"
"$fepd" --config "$base/fepd.toml" users add au --role auditor --password-file "$work/pw" >/dev/null
python3 scripts/console-history.py "$base/state/fepd.db" "$history"
mkdir -p "$work/input"
python3 - "$work/input" "$records" "$files" <<'PY'
# Valid case_accept records, each key new: 身份证号 with their GB 11643
# check digit, 统一社会信用代码 with their GB 32100 one.
import json, os, sys
out, total, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ID_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
def id_card(n):
    s = f"110105198001{1 + n % 28:02}{n % 1000:03}"
    return s + "10X98765432"[sum(int(c) * w for c, w in zip(s, ID_W)) % 11]
def uscc(n):
    s = f"9111010{n % 10**10:010}"[:17]
    return s + USCC[(31 - sum(USCC.index(c) * w for c, w in zip(s, USCC_W)) % 31) % 31]
per = total // files
for f in range(files):
    with open(os.path.join(out, f"load{f:03}.jsonl"), "w", encoding="utf-8") as fh:
        for j in range(per):
            i = f * per + j
            fh.write(json.dumps({
                "project_no": f"11110105MB0000000X4000110012026{i:09}",
                "task_code": "11110105MB0000000X400011001000001",
                "task_name": "对《政府信息公开》申请的受理",
                "task_version": "3", "project_type": "2", "applyer_type": "1",
                "applyer_name": f"张三{i}", "applyer_page_type": "111",
                "applyer_page_code": id_card(i), "contact_mobile": f"138{i % 10**8:08}",
                "apply_date": "2026-11-20 09:30:00", "accept_date": "2026-11-20 10:15:30",
                "promise_date": "2026-11-27 17:00:00", "org_name": "北京市东城区政务服务管理局",
                "org_code": uscc(1000 + i % 50), "area_code": "110101",
            }, ensure_ascii=False) + "\n")
PY
records=$(( records / files * files ))

tck=$(getconf CLK_TCK)
printf '\n%-12s %9s %8s %9s %8s %8s %12s %12s\n' console records secs 'rec/s' user-s sys-s 'cpu-s/M' 'pages(ms)'
for on in 0 1; do
  run="$work/run$on"
  mkdir -p "$run"
  cp -r "$base/state" "$run/state"
  config "$run" "$on"
  mkdir -p "$run/spool/case_accept/inbox"
  cp "$work"/input/*.jsonl "$run/"
  (cd "$run" && exec "$fepd" run --config fepd.toml 2> daemon.log) &
  daemon=$!
  for _ in $(seq 1 600); do grep -q "fepd ready" "$run/daemon.log" && break; sleep 0.2; done
  loops=()
  if [ "$on" = 1 ]; then
    base_url="http://127.0.0.1:$port"
    jar="$run/au.jar"
    token=$(curl -fs -c "$jar" "$base_url/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
    curl -fs -b "$jar" -c "$jar" -o /dev/null --data-urlencode "csrf=$token" --data-urlencode "username=au" \
      --data-urlencode "password=Load-Console-2026" "$base_url/login"
    for c in $(seq 1 "$clients"); do
      (
        while true; do
          for p in / /rejections /reconcile "/log?verify=1"; do
            curl -fs -b "$jar" -o /dev/null -w '%{http_code} %{time_total}\n' "$base_url$p" >> "$run/pages.$c" || true
          done
        done
      ) &
      loops+=($!)
    done
  fi
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  t0=$(date +%s.%N)
  mv "$run"/*.jsonl "$run/spool/case_accept/inbox/"
  for _ in $(seq 1 36000); do
    [ "$(find "$run/spool/case_accept/done" -name '*.jsonl.receipt.json' 2>/dev/null | wc -l)" -ge "$files" ] && break
    if [ -n "$(find "$run/spool/case_accept/rejected" -name '*.report.json' 2>/dev/null)" ]; then
      echo "console-load: records were rejected — see $run/spool/case_accept/rejected" >&2
      exit 1
    fi
    sleep 0.1
  done
  t1=$(date +%s.%N)
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  for p in "${loops[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  loops=()
  kill -TERM "$daemon"; wait "$daemon" || true
  daemon=""
  pages="—"
  if [ "$on" = 1 ]; then
    pages=$(cat "$run"/pages.* | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
ok = [float(t) for c, t in rows if c == "200"]
print(f"{len(ok)}({1000 * sum(ok) / max(1, len(ok)):.0f})" + ("" if len(ok) == len(rows) else f" {len(rows) - len(ok)} failed"))')
  fi
  python3 - "$on" "$records" "$t0" "$t1" "$u0" "$s0" "$u1" "$s1" "$tck" "$pages" <<'PY'
import sys
on, n, t0, t1, u0, s0, u1, s1, tck, pages = sys.argv[1:]
n = int(n); secs = float(t1) - float(t0)
user = (int(u1) - int(u0)) / int(tck); sys_ = (int(s1) - int(s0)) / int(tck)
name = "on, in use" if on == "1" else "off"
print(f"{name:<12} {n:>9,} {secs:>8.1f} {n / secs:>9,.0f} {user:>8.1f} {sys_:>8.1f} {(user + sys_) / n * 1e6:>12.1f} {pages:>12}")
PY
  rm -rf "$run"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
