#!/usr/bin/env python3
"""History for the console's benchmarks (scripts/console-bench.sh,
scripts/console-load.sh): N sealed and delivered records over 30 days
(100 files a day, 1% of records rejected, the last 3 batches parked, the
exchange log hash-chained as fepd writes it), written straight into the
state database DB that `fepd users add` created (daemon stopped).

  console-history.py DB N
"""
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
# All of it is in record_state already: nothing for fepd's merge.
c.execute("UPDATE record_merge SET seq = (SELECT MAX(seq) FROM batch)")
c.commit()
print(f"{n} records, {files} files, {seq} exchange-log entries")
