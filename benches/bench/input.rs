//! The benchmark's input: records like a real export (the figures that
//! count, README.md "Benchmarks"), and the uniform template the benchmark
//! used to run on, kept as a second, labelled line.
//!
//! A business platform's export is not one template with increasing keys:
//! its keys come in no particular order (so each new key lands somewhere
//! else in the state database's B-tree), every applicant is different,
//! departments and matters vary, data staff write datetimes in three
//! forms, and some values carry padding. `realistic` makes such records,
//! deterministically from their number, so a case can be generated in
//! pieces and run again on the same bytes.

use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::data;

/// Which records a case runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Input {
    /// Like a real export (the default, and what the targets are judged on).
    Realistic,
    /// The old template: increasing keys, the same names and dates.
    Uniform,
}

impl Input {
    pub fn label(self) -> &'static str {
        match self {
            Input::Realistic => "realistic",
            Input::Uniform => "uniform",
        }
    }
}

/// Input formats of the throughput cases.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fmt {
    Jsonl,
    Csv,
    Xml,
    Xlsx,
}

impl Fmt {
    pub fn ext(self) -> &'static str {
        match self {
            Fmt::Jsonl => "jsonl",
            Fmt::Csv => "csv",
            Fmt::Xml => "xml",
            Fmt::Xlsx => "xlsx",
        }
    }

    /// The outbox target of the format, records/s (README.md "Benchmarks").
    pub fn target(self) -> f64 {
        match self {
            Fmt::Jsonl | Fmt::Csv => 100_000.0,
            Fmt::Xml => 60_000.0,
            Fmt::Xlsx => 30_000.0,
        }
    }
}

const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN: &str = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彩春菊凤洁梅琳素云莲真环雪荣爱妹香月莺媛瑞凡佳嘉琼勤珍贞莉娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思";
const TASKS: [&str; 8] = [
    "对《政府信息公开》申请的受理",
    "企业设立登记",
    "个体工商户注册登记",
    "食品经营许可",
    "建设工程规划许可证核发",
    "城镇职工基本养老保险关系转移接续",
    "居民身份证换领",
    "社会团体成立登记",
];
const DISTRICTS: [&str; 6] = ["东城区", "西城区", "朝阳区", "丰台区", "石景山区", "海淀区"];
const UNITS: [&str; 4] = [
    "政务服务管理局",
    "市场监督管理局",
    "人力资源和社会保障局",
    "规划和自然资源委员会分局",
];
const AREAS: [&str; 6] = ["110101", "110102", "110105", "110106", "110107", "110108"];

/// Keys are `i` scrambled by a bijection of 0..10^15 (multiplication by a
/// number prime to 10): unique, and in no order a B-tree likes.
fn scrambled(i: u64) -> u64 {
    const M: u128 = 1_000_000_000_000_000;
    ((i as u128 * 748_317_286_413_977 + 91_733_651) % M) as u64
}

fn pick(rng: &mut StdRng, chars: &str) -> char {
    let n = chars.chars().count();
    chars.chars().nth(rng.random_range(0..n)).unwrap_or('王')
}

/// A 公民身份号码 with a valid check digit, for anyone born 1950–2005.
fn id_card(rng: &mut StdRng) -> String {
    data::with_id_check(format!(
        "{}{}{:02}{:02}{:03}",
        AREAS[rng.random_range(0..AREAS.len())],
        rng.random_range(1950..=2005),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
        rng.random_range(0..1000)
    ))
}

/// Unix seconds `t` at UTC+8 in one of the forms data staff write.
fn written(rng: &mut StdRng, t: i64) -> String {
    let tz = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let d = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&tz);
    match rng.random_range(0..3) {
        0 => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        1 => d.format("%Y%m%d%H%M%S").to_string(),
        _ => d.format("%Y-%m-%dT%H:%M:%S+08:00").to_string(),
    }
}

/// One value in five padded with spaces, as exports from forms carry them.
fn padded(rng: &mut StdRng, v: String) -> String {
    if rng.random_range(0..5) == 0 {
        format!("  {v} ")
    } else {
        v
    }
}

/// Record number `i` of a realistic case_accept export (~570 bytes as JSON).
pub fn realistic(i: u64) -> data::Record {
    let mut rng = StdRng::seed_from_u64(i ^ 0x5eed_fe9d);
    let base: i64 = 1_767_196_800; // 2026-01-01
    let apply = base + rng.random_range(0..330 * 86_400);
    let accept = apply + rng.random_range(0..3 * 86_400);
    let promise = accept + rng.random_range(1..20) * 86_400;
    let org = rng.random_range(0..24usize);
    let task = TASKS[rng.random_range(0..TASKS.len())];
    let name_len = rng.random_range(1..=2);
    let mut name = String::new();
    name.push(pick(&mut rng, SURNAMES));
    for _ in 0..name_len {
        name.push(pick(&mut rng, GIVEN));
    }
    let org_name = format!(
        "北京市{}{}",
        DISTRICTS[org % DISTRICTS.len()],
        UNITS[org % UNITS.len()]
    );
    vec![
        ("project_no", key(Input::Realistic, i)),
        (
            "task_code",
            format!(
                "11110105MB0000000X40001100{:07}",
                rng.random_range(0..10_000_000)
            ),
        ),
        ("task_name", padded(&mut rng, task.to_string())),
        ("task_version", rng.random_range(1..=9).to_string()),
        (
            "project_type",
            ["1", "2", "9"][rng.random_range(0..3)].to_string(),
        ),
        ("applyer_type", "1".into()),
        ("applyer_name", padded(&mut rng, name)),
        ("applyer_page_type", "111".into()),
        ("applyer_page_code", id_card(&mut rng)),
        (
            "contact_mobile",
            format!(
                "1{}{:09}",
                ['3', '5', '7', '8'][rng.random_range(0..4)],
                rng.random_range(0..1_000_000_000)
            ),
        ),
        ("apply_date", written(&mut rng, apply)),
        ("accept_date", written(&mut rng, accept)),
        ("promise_date", written(&mut rng, promise)),
        ("org_name", padded(&mut rng, org_name)),
        ("org_code", data::uscc(1000 + org as u64)),
        ("area_code", AREAS[rng.random_range(0..AREAS.len())].into()),
    ]
}

fn record(input: Input, i: u64) -> data::Record {
    match input {
        Input::Realistic => realistic(i),
        Input::Uniform => data::case_accept(i),
    }
}

/// Writes `n` records numbered from `start` in `fmt`, or as many as reach
/// `min_bytes` when `n` is 0; returns (records, bytes). XLSX is written
/// whole (a workbook is not streamed), so it needs `n`.
pub fn generate(
    path: &Path,
    fmt: Fmt,
    input: Input,
    start: u64,
    n: u64,
    min_bytes: u64,
) -> (u64, u64) {
    if fmt == Fmt::Xlsx {
        assert!(n > 0, "an XLSX case needs a record count");
        let recs: Vec<data::Record> = (start..start + n).map(|i| record(input, i)).collect();
        data::xlsx(&recs, path);
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        return (n, bytes);
    }
    const CHUNK: u64 = 5_000;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut count = 0u64;
    let emit = |f: &mut std::io::BufWriter<std::fs::File>, written: &mut u64, b: &[u8]| {
        f.write_all(b).unwrap();
        *written += b.len() as u64;
    };
    if fmt == Fmt::Xml {
        emit(
            &mut f,
            &mut written,
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n",
        );
    }
    loop {
        let done = if n > 0 {
            count >= n
        } else {
            written >= min_bytes
        };
        if done {
            break;
        }
        let take = if n > 0 { CHUNK.min(n - count) } else { CHUNK };
        let recs: Vec<data::Record> = (start + count..start + count + take)
            .map(|i| record(input, i))
            .collect();
        match fmt {
            Fmt::Jsonl => emit(&mut f, &mut written, &data::jsonl(&recs, data::Enc::Utf8)),
            Fmt::Csv => {
                let b = data::csv(&recs, false, data::Enc::Utf8);
                let body = if count == 0 {
                    &b[..]
                } else {
                    let nl = b.iter().position(|&c| c == b'\n').unwrap();
                    &b[nl + 1..]
                };
                emit(&mut f, &mut written, body);
            }
            Fmt::Xml => {
                let b = data::xml(&recs, data::Enc::Utf8);
                let s = std::str::from_utf8(&b).unwrap();
                let from = s.find("<records>\n").unwrap() + "<records>\n".len();
                let to = s.rfind("</records>").unwrap();
                emit(&mut f, &mut written, &s.as_bytes()[from..to]);
            }
            Fmt::Xlsx => unreachable!("written whole above"),
        }
        count += take;
    }
    if fmt == Fmt::Xml {
        emit(&mut f, &mut written, b"</records>\n");
    }
    f.flush().unwrap();
    (count, written)
}

/// The key of record `i` (`project_no`), without making the record.
pub fn key(input: Input, i: u64) -> String {
    match input {
        Input::Realistic => format!("11110105MB0000000X4000110012026{:015}", scrambled(i)),
        Input::Uniform => data::case_accept(i).swap_remove(0).1,
    }
}
