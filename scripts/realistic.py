#!/usr/bin/env python3
"""A year of history for scripts/history-bench.sh (README.md,
"Benchmarks"). The records dropped on top of it are the benchmark's own
realistic input (benches/bench/input.rs, `--write-records`).

  realistic.py history DB N [--seed S]
      Gives the state database DB (made by `fepd run`, daemon stopped) N
      keys of case_accept history, as a year of delivery leaves it: per
      key its last sealed version and where it went (`record_state`, with
      its `history`) and its per-record row (`batch_record`), in delivered batches of 1,000 whose bodies
      retention has deleted. Keys are random, like the records' keys, so
      new records land all over the tree. Written straight into SQLite
      (fepd would take hours to seal as many); nothing else is touched.
"""

import hashlib
import random
import sqlite3
import sys


def key(rng):
    return f"11110105MB0000000X4000110012026{rng.randrange(10**15):015}"


def history(db, n, rng):
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    (seq0,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM batch").fetchone()
    batch_size = 1000
    keys = set()
    made = 0
    while made < n:
        take = min(batch_size, n - made)
        seq = seq0 + made // batch_size + 1
        batch_id = f"01H{seq:023}"
        sealed = "2026-01-02T03:04:05+08:00"
        rows = []
        while len(rows) < take:
            k = key(rng)
            if k in keys:
                continue
            keys.add(k)
            h = hashlib.sha256(k.encode()).hexdigest()
            rows.append((k, h))
        conn.execute(
            "INSERT INTO batch (seq, sort_key, batch_id, dataset, route, count, bytes, digest, state, "
            "receipt_id, accepted, sealed_at, delivered_at) "
            "VALUES (?, ?, ?, 'case_accept', 'default', ?, ?, ?, 'delivered', ?, ?, ?, ?)",
            (seq, f"{seq:020}", batch_id, take, take * 600, "0" * 64, f"R-{seq}", take, sealed, sealed),
        )
        conn.executemany(
            "INSERT INTO record_state (dataset, key, hash, version, op, batch_id, history) "
            "VALUES ('case_accept', ?, ?, NULL, 'upsert', ?, ?)",
            [(k, h, batch_id, f"{batch_id}:{i}") for i, (k, h) in enumerate(rows)],
        )
        conn.executemany(
            "INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES (?, ?, ?, ?, 'upsert')",
            [(batch_id, i, k, h) for i, (k, h) in enumerate(rows)],
        )
        made += take
        if made % 1_000_000 == 0:
            conn.commit()
            print(f"history: {made:,} keys", file=sys.stderr)
    # All of it is in record_state already: nothing for fepd's merge.
    conn.execute("UPDATE record_merge SET seq = (SELECT MAX(seq) FROM batch)")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def main():
    args = sys.argv[1:]
    seed = 7
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 3 or args[0] != "history":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path, n = args[1], int(args[2].replace(",", "").replace("_", ""))
    history(path, n, random.Random(seed + 1_000_003))


if __name__ == "__main__":
    main()
