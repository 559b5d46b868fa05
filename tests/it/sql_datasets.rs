//! A dataset is a schema file plus config, no code (docs/sql-sources.md):
//! the two seed datasets beyond the six, `service_stats` (服务数据) and
//! `event_report` (城市管理 信息上报, with its nested `medias` array), fed
//! from SQL sources — `medias` from a PostgreSQL `jsonb` column and from a
//! MariaDB `JSON` column — and, for comparison, `event_report` from a JSON
//! Lines file, all reaching `fepd simulate-library` with the array intact.

use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use mysql::prelude::Queryable;
use serde_json::{Value, json};

use crate::harness::*;
use crate::mariadb::Maria;
use crate::pg::{PASSWORD, Pg};

/// Event `i`: every field of the schema, `medias` with `i % 3 + 1` items.
fn event(i: u64) -> Value {
    let usages = ["上报", "核查", "核实", "处置"];
    let types = ["IMAGE", "VIDEO", "VOICE", "ATTACH"];
    let medias: Vec<Value> = (0..i % 3 + 1)
        .map(|m| {
            json!({
                "media_name": format!("e{i}-{m}.jpg"),
                "media_url": format!("https://cg.example.gov.cn/m/e{i}-{m}.jpg"),
                "media_usage": usages[((i + m) % 4) as usize],
                "media_type": types[((i * 3 + m) % 4) as usize],
            })
        })
        .collect();
    json!({
        "other_task_num": format!("EV{i:06}"),
        "event_desc": format!("井盖缺失，第 {i} 号\n请尽快处置"),
        "address": format!("和平区南京路 {} 号", i + 1),
        "coordinate_x": 512_000.25 + i as f64,
        "coordinate_y": 4_331_000.5 - i as f64,
        "longitude": 117.2,
        "latitude": 39.12,
        "event_src_id": 3,
        "district_code": "120101",
        "rec_type_id": 1,
        "event_level_id": 1 + i % 3,
        "event_type_code": "01",
        "human_name": "张三",
        "cellphone": "13800138000",
        "create_time": "2026-11-30T09:15:00",
        "medias": medias,
    })
}

/// `service_stats` of platform `p` on day `d` of November 2026.
fn stats(p: u64, d: u64) -> Value {
    let views = 1000 + 37 * d + 101 * p;
    json!({
        "platform_code": format!("WHY{p:03}"),
        "platform_name": format!("文化云平台{p}"),
        "stat_date": format!("2026-11-{d:02}"),
        "page_views": views,
        "unique_visitors": views / 3,
        "unique_ips": views / 4,
        "new_activities": d % 5,
        "new_venues": p % 2,
    })
}

/// The control columns of a source row.
fn controlled(mut v: Value, guid: &str) -> Value {
    let o = v.as_object_mut().unwrap();
    o.insert("row_guid".into(), guid.into());
    o.insert("cd_operation".into(), "i".into());
    o.insert("cd_batch".into(), "B1".into());
    v
}

/// `dataset` reads `table` of the source at `url` every second.
fn source(env: &Env, dataset: &str, engine: &str, url: &str, table: &str) {
    let pw = env.root.join("qzk_password");
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.set_dataset(dataset, "poll_secs", 1);
    let sql = crate::config::parse_toml(&format!(
        "engine = \"{engine}\"\nurl = \"{url}\"\npassword_file = \"{}\"\ntable = \"{table}\"\nlag_secs = 0\n",
        pw.display()
    ));
    env.set_dataset(dataset, "sql", toml::Value::Table(sql));
}

/// What the library holds of `dataset`, by key: each record's data.
fn delivered(lib: &Library, dataset: &str, n: usize) -> Vec<Value> {
    wait_for("every record delivered", Duration::from_secs(60), || {
        lib.get(&format!("/sim/records?dataset={dataset}"))
            .as_array()
            .unwrap()
            .len()
            >= n
    });
    std::thread::sleep(Duration::from_secs(2));
    let recs = lib.get(&format!("/sim/records?dataset={dataset}"));
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), n, "each record once");
    assert_eq!(lib.stats()["records_delivered_more_than_once"], 0);
    assert_eq!(lib.stats()["keys_out_of_order"], 0);
    recs.iter().map(|r| r["data"].clone()).collect()
}

/// The events arrived with their `medias` arrays as written.
fn medias_intact(got: &[Value], n: u64) {
    for i in 0..n {
        let want = event(i);
        let g = got
            .iter()
            .find(|d| d["other_task_num"] == want["other_task_num"])
            .unwrap_or_else(|| panic!("event {i} missing"));
        assert_eq!(g["medias"], want["medias"], "event {i}");
        assert_eq!(g["event_desc"], want["event_desc"]);
    }
}

const EVENTS: u64 = 12;

#[test]
fn event_report_and_service_stats_from_postgres_reach_the_library_with_medias_intact() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    pg.sql(
        "qzk",
        "CREATE TABLE up_event (other_task_num text, event_desc text, address text,
           coordinate_x double precision, coordinate_y double precision, longitude numeric,
           latitude numeric, event_src_id integer, district_code text, rec_type_id integer,
           event_level_id integer, event_type_code text, human_name text, cellphone text,
           create_time timestamp, medias jsonb,
           row_guid text, cd_operation char(1), cd_time timestamp, cd_batch text);
         CREATE TABLE up_stats (platform_code text, platform_name text, stat_date date,
           page_views bigint, unique_visitors bigint, unique_ips bigint, new_activities integer,
           new_venues integer, row_guid text, cd_operation char(1), cd_time timestamp, cd_batch text);",
    );
    let mut c = pg.connect("qzk").unwrap();
    for i in 0..EVENTS {
        let row = controlled(event(i), &format!("e{i:03}"));
        c.execute(
            "INSERT INTO up_event SELECT * FROM jsonb_populate_record(NULL::up_event,
               $1::text::jsonb || jsonb_build_object('cd_time', LOCALTIMESTAMP(0) - make_interval(secs => $2)))",
            &[&row.to_string(), &(60.0 - i as f64)],
        )
        .unwrap();
    }
    let mut days = 0;
    for p in 0..3 {
        for d in 1..=10 {
            let row = controlled(stats(p, d), &format!("s{p}-{d:02}"));
            c.execute(
                "INSERT INTO up_stats SELECT * FROM jsonb_populate_record(NULL::up_stats,
                   $1::text::jsonb || jsonb_build_object('cd_time', LOCALTIMESTAMP(0) - make_interval(secs => $2)))",
                &[&row.to_string(), &30.0],
            )
            .unwrap();
            days += 1;
        }
    }
    source(&env, "event_report", "postgres", &pg.url("qzk"), "up_event");
    source(
        &env,
        "service_stats",
        "postgres",
        &pg.url("qzk"),
        "up_stats",
    );
    let _d = env.start_ready();
    medias_intact(&delivered(&lib, "event_report", EVENTS as usize), EVENTS);
    let got = delivered(&lib, "service_stats", days);
    let s = got
        .iter()
        .find(|d| d["platform_code"] == "WHY002" && d["stat_date"] == "2026-11-07")
        .unwrap();
    assert_eq!(s["page_views"], stats(2, 7)["page_views"]);
    assert_eq!(s["unique_ips"], stats(2, 7)["unique_ips"]);
}

#[test]
fn event_report_from_a_mariadb_json_column_reaches_the_library_with_medias_intact() {
    let db = Maria::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let mut c = db.connect();
    c.query_drop(
        "CREATE TABLE up_event (other_task_num varchar(64), event_desc text, address text,
           coordinate_x double, coordinate_y double, longitude decimal(9,6), latitude decimal(9,6),
           event_src_id int, district_code varchar(12), rec_type_id int, event_level_id int,
           event_type_code varchar(8), human_name varchar(50), cellphone varchar(11),
           create_time datetime, medias JSON,
           row_guid varchar(64), cd_operation char(1), cd_time datetime, cd_batch varchar(32))",
    )
    .unwrap();
    for i in 0..EVENTS {
        let row = controlled(event(i), &format!("e{i:03}"));
        let o = row.as_object().unwrap();
        let cols: Vec<&str> = o.keys().map(String::as_str).collect();
        let params: Vec<mysql::Value> = o
            .values()
            .map(|v| match v {
                Value::String(s) => s.as_str().into(),
                Value::Number(n) => n.to_string().into(),
                other => other.to_string().into(),
            })
            .chain([(60 - i as i64).into()])
            .collect();
        c.exec_drop(
            format!(
                "INSERT INTO up_event ({}, cd_time) VALUES ({}, NOW() - INTERVAL ? SECOND)",
                cols.join(", "),
                vec!["?"; cols.len()].join(", ")
            ),
            params,
        )
        .unwrap();
    }
    source(&env, "event_report", "mysql", &db.url(), "up_event");
    let _d = env.start_ready();
    medias_intact(&delivered(&lib, "event_report", EVENTS as usize), EVENTS);
}

#[test]
fn event_report_from_a_json_lines_file_reaches_the_library_with_medias_intact() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::start(&dir.path().join("lib.db"), &[]);
    let env = Env::http(&lib.base_url, "");
    let mut text = String::new();
    for i in 0..EVENTS {
        text.push_str(&event(i).to_string());
        text.push('\n');
    }
    let _d = env.start_ready();
    env.drop_file("event_report", "events.jsonl", text.as_bytes());
    medias_intact(&delivered(&lib, "event_report", EVENTS as usize), EVENTS);
}
