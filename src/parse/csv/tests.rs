//! Unit tests of the CSV parser.

use super::super::testing::{collect, fields, limits};
use super::*;

fn parse(text: &str, max: usize) -> (Vec<Item>, Option<FileFault>) {
    collect(&mut CsvStream::new(
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        limits(max),
    ))
}

fn bad(item: &Item) -> (&Position, &str) {
    match item {
        Item::Bad(b) => (&b.pos, &b.message),
        other => panic!("not bad: {other:?}"),
    }
}

#[test]
fn chinese_header_and_values() {
    let (items, fault) = parse(
        " 姓名 ,受理部门,备注\n张三,市政务服务中心,\n李四,\"区,县\",\"说\"\"好\"\"\"\n",
        1 << 20,
    );
    assert_eq!(fault, None);
    assert_eq!(items.len(), 2);
    assert_eq!(
        fields(&items[0]),
        vec![("姓名", "张三"), ("受理部门", "市政务服务中心")]
    );
    assert_eq!(
        fields(&items[1]),
        vec![
            ("姓名", "李四"),
            ("受理部门", "区,县"),
            ("备注", "说\"好\"")
        ]
    );
    let Item::Record(r) = &items[1] else { panic!() };
    assert_eq!(r.pos, Position::Line { line: 3, record: 2 });
}

#[test]
fn multiline_quoted_field_positions() {
    let text = "a,b\r\n1,\"x\r\ny\"\r\n2,\"p\nq\nr\"\r\n3,z";
    let (items, fault) = parse(text, 1 << 20);
    assert_eq!(fault, None);
    let positions: Vec<_> = items
        .iter()
        .map(|i| match i {
            Item::Record(r) => r.pos,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        positions,
        vec![
            Position::Line { line: 2, record: 1 },
            Position::Line { line: 4, record: 2 },
            Position::Line { line: 7, record: 3 },
        ]
    );
    assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "x\r\ny")]);
    assert_eq!(fields(&items[1]), vec![("a", "2"), ("b", "p\nq\nr")]);
    assert_eq!(fields(&items[2]), vec![("a", "3"), ("b", "z")]);
}

#[test]
fn ragged_and_badly_quoted_rows_are_bad_and_others_go_on() {
    let text = "a,b,c\n1,2,3\n1,2\n1,x\"y,3\n1,\"x\"y,3\n\n7,8,9\n";
    let (items, fault) = parse(text, 1 << 20);
    assert_eq!(fault, None);
    assert_eq!(items.len(), 5);
    assert_eq!(
        bad(&items[1]),
        (
            &Position::Line { line: 3, record: 2 },
            "CSV 行的字段数为 2，表头为 3"
        )
    );
    assert_eq!(
        bad(&items[2]),
        (&Position::Line { line: 4, record: 3 }, BAD_QUOTE_IN_FIELD)
    );
    assert_eq!(
        bad(&items[3]),
        (&Position::Line { line: 5, record: 4 }, BAD_AFTER_QUOTE)
    );
    let Item::Record(r) = &items[4] else { panic!() };
    assert_eq!(r.pos, Position::Line { line: 7, record: 5 });
}

#[test]
fn unclosed_quote_reports_every_line_it_swallowed() {
    // Issue 11: one unterminated quote in a 10-record CSV. Before, the
    // report said 3 received; now all 10 data lines are accounted for.
    let mut text = String::from("no,name\n1,a\n2,b\n3,\"oops\n");
    for i in 4..=10 {
        text.push_str(&format!("{i},x\n"));
    }
    let (items, fault) = parse(&text, 1 << 20);
    assert_eq!(fault, None);
    assert_eq!(items.len(), 10);
    assert_eq!(fields(&items[1]), vec![("no", "2"), ("name", "b")]);
    let (pos, message) = bad(&items[2]);
    assert_eq!(*pos, Position::Line { line: 4, record: 3 });
    assert!(message.starts_with(UNCLOSED_QUOTE), "{message}");
    assert!(message.contains("从第 4 行延续到第 11 行"), "{message}");
    assert!(message.contains("共 8 行"), "{message}");
    for (k, item) in items[3..].iter().enumerate() {
        let (pos, message) = bad(item);
        let line = 5 + k as u64;
        assert_eq!(
            *pos,
            Position::Line {
                line,
                record: line - 1
            }
        );
        assert!(message.contains("第 4 行开始的记录吞没"), "{message}");
    }
}

#[test]
fn swallowed_lines_skip_blank_ones_and_end_where_the_quote_closes() {
    // A quote closed by a later stray quote swallows up to that line;
    // the rows after it are read normally. Blank lines are not records.
    let text = "a,b\n1,\"x\n\n3,y\r\n\r\n5,\"z\n6,7\n";
    let (items, fault) = parse(text, 1 << 20);
    assert_eq!(fault, None);
    assert_eq!(items.len(), 4, "{items:?}");
    let lines: Vec<_> = items[..3].iter().map(|i| bad(i).0.row()).collect();
    assert_eq!(lines, vec![2, 4, 6]);
    assert!(bad(&items[0]).1.starts_with(BAD_AFTER_QUOTE));
    assert!(bad(&items[0]).1.contains("第 2 行延续到第 6 行"));
    assert!(bad(&items[0]).1.contains("共 3 行"));
    let (pos, message) = bad(&items[2]);
    assert_eq!(*pos, Position::Line { line: 6, record: 3 });
    assert!(message.contains("第 2 行开始的记录吞没"), "{message}");
    let Item::Record(r) = &items[3] else { panic!() };
    assert_eq!(r.pos, Position::Line { line: 7, record: 4 });
    // Trailing blank lines inside an unclosed quote are not counted.
    let (items, _) = parse("a,b\n1,\"x\n2,y\n\n\n", 1 << 20);
    assert_eq!(items.len(), 2);
    // An oversized unclosed quote is still reported as unclosed, with
    // the lines it swallowed, none of them buffered.
    let text = format!("a,b\n1,\"{}\n", "长\n".repeat(1000));
    let (items, _) = parse(&text, 100);
    assert_eq!(items.len(), 1000);
    assert!(bad(&items[0]).1.starts_with(UNCLOSED_QUOTE));
}

#[test]
fn too_many_columns() {
    let mut l = limits(1 << 20);
    l.max_columns = 3;
    let run = |text: &str| {
        collect(&mut CsvStream::new(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            l,
        ))
    };
    let (items, fault) = run("a,b,c\n1,2,3\n1,2,3,4\n");
    assert_eq!(fault, None);
    assert_eq!(fields(&items[0]).len(), 3);
    assert_eq!(bad(&items[1]).1, TOO_MANY_COLUMNS);
    let (_, fault) = run("a,b,c,d\n1,2,3,4\n");
    assert!(fault.unwrap().message.contains("max_columns"));
    // A header of a million empty names is refused, not allocated.
    let (_, fault) = run(&",".repeat(1_000_000));
    assert!(fault.unwrap().message.contains("max_columns"));
}

#[test]
fn oversized_record_is_bad_and_not_buffered() {
    let text = format!("a,b\n1,2\n3,\"{}\"\n5,6\n", "长".repeat(10_000));
    let (items, fault) = parse(&text, 100);
    assert_eq!(fault, None);
    assert_eq!(items.len(), 3);
    assert_eq!(
        bad(&items[1]),
        (
            &Position::Line { line: 3, record: 2 },
            "CSV 记录超过 max_record_bytes 上限"
        )
    );
    assert_eq!(fields(&items[2]), vec![("a", "5"), ("b", "6")]);
    // A record of exactly the limit passes: "12,34" is 5 bytes.
    let (items, _) = parse("a,b\n12,34\n", 5);
    assert_eq!(fields(&items[0]), vec![("a", "12"), ("b", "34")]);
    let (items, _) = parse("a,b\n12,345\n", 5);
    assert!(matches!(items[0], Item::Bad(_)));
}

#[test]
fn a_line_of_delimiters_is_bounded() {
    let text = format!("a,b\n{}\n1,2\n", ",".repeat(100_000));
    let mut stream = CsvStream::new(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        limits(100),
    );
    let first = stream.next_item().unwrap().unwrap();
    assert_eq!(bad(&first).1, "CSV 记录超过 max_record_bytes 上限");
    let (items, _) = collect(&mut stream);
    assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "2")]);
}

#[test]
fn header_only_and_empty_files_have_no_records() {
    assert_eq!(parse("", 100), (vec![], None));
    assert_eq!(parse("姓名,年龄\n", 100), (vec![], None));
    assert_eq!(parse("姓名,年龄", 100), (vec![], None));
    assert_eq!(parse("\n\n姓名,年龄\r\n\r\n", 100), (vec![], None));
}

#[test]
fn other_delimiter_and_lone_cr() {
    let mut l = limits(100);
    l.csv_delimiter = b';';
    let mut s = CsvStream::new(
        Box::new(std::io::Cursor::new(b"a;b\r1;x,y\r2;3".to_vec())),
        l,
    );
    let (items, fault) = collect(&mut s);
    assert_eq!(fault, None);
    assert_eq!(fields(&items[0]), vec![("a", "1"), ("b", "x,y")]);
    let Item::Record(r) = &items[1] else { panic!() };
    assert_eq!(r.pos, Position::Line { line: 3, record: 2 });
}

#[test]
fn small_buffers_give_same_result() {
    let text = "姓名,备注\r\n张三,\"多\r\n行\"\r\n李四,\"a\"\"b\"\r\n王五,x\"y\r\n";
    let whole = parse(text, 1 << 20);
    for cap in 1..8 {
        let input =
            std::io::BufReader::with_capacity(cap, std::io::Cursor::new(text.as_bytes().to_vec()));
        assert_eq!(
            collect(&mut CsvStream::new(Box::new(input), limits(1 << 20))),
            whole,
            "cap {cap}"
        );
    }
}
