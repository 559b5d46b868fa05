#!/usr/bin/env python3
"""Inputs like real exports, for scripts/history-bench.sh (README.md,
"Benchmarks"): the benchmark's own records are one template with
increasing keys; a business platform's export is not.

  realistic.py records OUT.jsonl N [--seed S]
      N case_accept records as JSON Lines: keys in no particular order,
      every applicant different (name, 身份证号 with a valid check digit,
      phone), 24 different departments, datetimes in the three forms data
      staff write (`yyyy-MM-dd HH:mm:ss`, `yyyyMMddHHmmss`, ISO 8601 with
      an offset) and one value in five padded with spaces.

  realistic.py history DB N [--seed S]
      Gives the state database DB (made by `fepd run`, daemon stopped) N
      keys of case_accept history, as a year of delivery leaves it: per
      key its last sealed version (`record_state`) and its per-record row
      (`batch_record`), in delivered batches of 1,000 whose bodies
      retention has deleted. Keys are random, like the records' keys, so
      new records land all over the tree. Written straight into SQLite
      (fepd would take hours to seal as many); nothing else is touched.
"""

import hashlib
import json
import random
import sqlite3
import sys

ID_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
AREAS = ["110101", "110102", "110105", "110106", "110107", "110108"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬芳燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
TASKS = [
    "对《政府信息公开》申请的受理",
    "企业设立登记",
    "个体工商户注册登记",
    "食品经营许可",
    "建设工程规划许可证核发",
    "城镇职工基本养老保险关系转移接续",
    "居民身份证换领",
    "社会团体成立登记",
]
ORGS = [f"北京市{d}政务服务管理局" for d in ["东城区", "西城区", "朝阳区", "丰台区", "石景山区", "海淀区"]] + [
    f"北京市{d}{u}" for d in ["东城区", "西城区", "朝阳区"] for u in ["市场监督管理局", "人力资源和社会保障局", "规划和自然资源委员会分局"]
]
ORGS = (ORGS * 2)[:24]


def id_card(rng):
    area = rng.choice(AREAS)
    birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02}{rng.randint(1, 28):02}"
    s = f"{area}{birth}{rng.randint(0, 999):03}"
    total = sum(int(c) * w for c, w in zip(s, ID_W))
    return s + "10X98765432"[total % 11]


def uscc(n):
    s = f"9111010{n:010}"[:17]
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(s, USCC_W))
    return s + USCC_CHARS[(31 - total % 31) % 31]


def when(rng, t):
    """Unix seconds `t` in one of the forms data staff write (UTC+8)."""
    import datetime

    d = datetime.datetime.fromtimestamp(t, datetime.timezone(datetime.timedelta(hours=8)))
    form = rng.randrange(3)
    if form == 0:
        return d.strftime("%Y-%m-%d %H:%M:%S")
    if form == 1:
        return d.strftime("%Y%m%d%H%M%S")
    return d.strftime("%Y-%m-%dT%H:%M:%S+08:00")


def pad(rng, v):
    return f"  {v} " if rng.randrange(5) == 0 else v


def key(rng):
    return f"11110105MB0000000X4000110012026{rng.randrange(10**15):015}"


def records(out, n, rng):
    seen = set()
    base = 1767196800  # 2026-01-01
    with open(out, "w", encoding="utf-8") as f:
        while len(seen) < n:
            k = key(rng)
            if k in seen:
                continue
            seen.add(k)
            apply = base + rng.randrange(330 * 86400)
            accept = apply + rng.randrange(3 * 86400)
            promise = accept + rng.randrange(1, 20) * 86400
            org = rng.randrange(len(ORGS))
            rec = {
                "project_no": k,
                "task_code": f"11110105MB0000000X40001100{rng.randrange(10**7):07}",
                "task_name": pad(rng, rng.choice(TASKS)),
                "task_version": str(rng.randint(1, 9)),
                "project_type": rng.choice(["1", "2", "9"]),
                "applyer_type": "1",
                "applyer_name": pad(rng, rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))),
                "applyer_page_type": "111",
                "applyer_page_code": id_card(rng),
                "contact_mobile": f"1{rng.choice('3578')}{rng.randrange(10**9):09}",
                "apply_date": when(rng, apply),
                "accept_date": when(rng, accept),
                "promise_date": when(rng, promise),
                "org_name": pad(rng, ORGS[org]),
                "org_code": uscc(1000 + org),
                "area_code": rng.choice(AREAS),
            }
            f.write(json.dumps(rec, ensure_ascii=False))
            f.write("\n")


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
            "INSERT INTO record_state (dataset, key, hash, version, op, batch_id) VALUES ('case_accept', ?, ?, NULL, 'upsert', ?)",
            [(k, h, batch_id) for k, h in rows],
        )
        conn.executemany(
            "INSERT INTO batch_record (batch_id, idx, key, hash, op) VALUES (?, ?, ?, ?, 'upsert')",
            [(batch_id, i, k, h) for i, (k, h) in enumerate(rows)],
        )
        made += take
        if made % 1_000_000 == 0:
            conn.commit()
            print(f"history: {made:,} keys", file=sys.stderr)
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
    if len(args) != 3 or args[0] not in ("records", "history"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    what, path, n = args[0], args[1], int(args[2].replace(",", "").replace("_", ""))
    # History and records draw keys from different streams: a record's
    # key is new, landing at a random place among the history's.
    rng = random.Random(seed if what == "records" else seed + 1_000_003)
    (records if what == "records" else history)(path, n, rng)


if __name__ == "__main__":
    main()
