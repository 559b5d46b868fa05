//! The header check: a tabular file's header row judged once, before any
//! record, so that a misspelt or missing column is one clear verdict
//! naming the column rather than the same error on every row.
//!
//! Verdicts (docs/zh/数据专员指南.md, “表头”):
//! - no column is a field of the dataset → the file is refused as
//!   "表头无法识别" (a headerless CSV, a title row read as the header, the
//!   wrong sheet) and nothing in it is read as data;
//! - a required column is missing → the file is refused naming each
//!   missing column once, with the unknown column that looks like it;
//! - two columns for one field → refused, naming both;
//! - unknown columns otherwise → ignored, named in the receipt with the
//!   closest known title as a suggestion.

use crate::parse::Header;

use super::schema::DatasetSchema;

/// A column that is not a field of the dataset (ignored, named in the
/// receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredColumn {
    pub title: String,
    /// The closest known title, when one is close enough to be a typo.
    pub suggestion: Option<String>,
}

impl IgnoredColumn {
    /// "申请人证件号（是否应为「申请人证件号码」？）".
    pub fn describe(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("{}（是否应为「{s}」？）", self.title),
            None => self.title.clone(),
        }
    }
}

/// How alike two titles must be (normalised Levenshtein over characters)
/// for one to be offered as the other: one wrong or missing character in a
/// Chinese title of six is 0.83; unrelated titles score below 0.4.
const SUGGEST_AT: f64 = 0.6;

impl DatasetSchema {
    /// Judges a header row. `Ok` carries the ignored columns; `Err` the
    /// verdict that refuses the file, in Chinese.
    pub fn check_header(&self, h: &Header) -> Result<Vec<IgnoredColumn>, String> {
        // A file without any row has no header to judge: it is empty.
        if h.row == 0 {
            return Ok(Vec::new());
        }
        let mut mapped: Vec<Option<usize>> = Vec::with_capacity(h.names.len());
        let mut ignored = Vec::new();
        for name in &h.names {
            let i = self
                .lookup
                .get(name.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}'))
                .copied();
            mapped.push(i);
            if i.is_none() && !name.trim().is_empty() {
                ignored.push(IgnoredColumn {
                    title: name.clone(),
                    suggestion: self.closest_title(name),
                });
            }
        }
        let place = self.header_place(h);
        if mapped.iter().all(Option::is_none) {
            return Err(self.unrecognised(h, &place));
        }

        let mut problems = Vec::new();
        for (a, ia) in mapped.iter().enumerate() {
            let Some(ia) = ia else { continue };
            if let Some(b) = (0..a).find(|&b| mapped[b] == Some(*ia)) {
                problems.push(format!(
                    "「{}」与「{}」两列是同一字段 {}，请删除其中一列",
                    h.names[b], h.names[a], self.fields[*ia].name
                ));
            }
        }
        // A file of deletions carries only its key (with the operation and
        // other control fields): such a header needs nothing else.
        let has_op = self.op_idx.is_some_and(|op| mapped.contains(&Some(op)));
        let only_keys = mapped
            .iter()
            .flatten()
            .all(|&i| self.key_idx.contains(&i) || self.fields[i].control);
        let required: Vec<usize> = if has_op && only_keys {
            self.key_idx.clone()
        } else {
            self.required.clone()
        };
        for i in required {
            if mapped.contains(&Some(i)) {
                continue;
            }
            let f = &self.fields[i];
            let near = ignored
                .iter()
                .find(|c| c.suggestion.as_deref() == Some(f.title.as_str()));
            problems.push(match near {
                Some(c) => format!(
                    "缺少必填列「{}」（{}）——表头中的「{}」是否就是它？请把列名改为「{}」",
                    f.title, f.name, c.title, f.title
                ),
                None => format!("缺少必填列「{}」（{}）", f.title, f.name),
            });
        }
        if problems.is_empty() {
            return Ok(ignored);
        }
        let mut msg = format!("表头有误（{place}）：{}", problems.join("；"));
        let others: Vec<String> = ignored
            .iter()
            .filter(|c| {
                !problems
                    .iter()
                    .any(|p| p.contains(&format!("「{}」是否", c.title)))
            })
            .map(IgnoredColumn::describe)
            .collect();
        if !others.is_empty() {
            msg.push_str(&format!("。另有不属于本数据集的列：{}", others.join("、")));
        }
        Err(msg)
    }

    /// "第 3 行" or "工作表「数据」第 3 行".
    fn header_place(&self, h: &Header) -> String {
        match &h.sheet {
            Some(s) => format!("工作表「{s}」第 {} 行", h.row),
            None => format!("第 {} 行", h.row),
        }
    }

    /// The "表头无法识别" verdict, saying what a header looks like and
    /// what to change.
    fn unrecognised(&self, h: &Header, place: &str) -> String {
        // The row's cells are not quoted: a row that is not a header is
        // usually data, and may hold personal values.
        let filled = h.names.iter().filter(|n| !n.trim().is_empty()).count();
        let example: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| !f.control)
            .take(4)
            .map(|f| f.title.as_str())
            .collect();
        let mut msg = format!(
            "表头无法识别：{place}的 {filled} 列中没有一列是数据集「{}」（{}）的字段名或中文名称，整个文件未读取。表头行应为字段的中文名称或字段名，例如 {}…",
            self.title,
            self.name,
            example.join("，")
        );
        if h.sheets.len() > 1 {
            msg.push_str(&format!(
                "。工作簿中的工作表为 {}：数据不在这个工作表时，请把数据工作表移到第一个，或在配置中设置 sheet",
                h.sheets.join("、")
            ));
        }
        msg.push_str("。文件没有表头行时请在第一行加上表头；表头上方有标题行时请在配置中设置 header_row（表头所在的行号）");
        msg
    }

    /// The known title (or name) closest to `name`, if it is close enough.
    fn closest_title(&self, name: &str) -> Option<String> {
        let name = name.trim();
        self.fields
            .iter()
            .flat_map(|f| [(&f.title, &f.title), (&f.name, &f.title)])
            .map(|(candidate, title)| (strsim::normalized_levenshtein(name, candidate), title))
            .filter(|(score, _)| *score >= SUGGEST_AT)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, title)| title.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> DatasetSchema {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let codes =
            std::sync::Arc::new(crate::validate::CodeTable::load(&dir.join("gb2260.csv")).unwrap());
        DatasetSchema::load(
            &dir.join("case_accept.schema.json"),
            codes,
            crate::validate::ValidateOptions::default(),
        )
        .unwrap()
    }

    fn header(names: &[&str]) -> Header {
        Header {
            names: names.iter().map(|s| s.to_string()).collect(),
            row: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_misspelt_required_column_is_named_once_with_its_likely_meaning() {
        let s = schema();
        let mut names: Vec<&str> = s.fields().map(|(_, t)| t).collect();
        let at = names.iter().position(|t| *t == "申请人证件号码").unwrap();
        names[at] = "申请人证件号";
        let err = s.check_header(&header(&names)).unwrap_err();
        assert!(err.contains("缺少必填列「申请人证件号码」"), "{err}");
        assert!(err.contains("「申请人证件号」是否就是它"), "{err}");
        assert_eq!(err.matches("申请人证件号码").count(), 2, "{err}");
    }

    #[test]
    fn extra_columns_are_ignored_and_named_with_a_suggestion() {
        let s = schema();
        let mut names: Vec<&str> = s.fields().map(|(_, t)| t).collect();
        names.push("备注");
        names.push("受理部门编号");
        let ignored = s.check_header(&header(&names)).unwrap();
        assert_eq!(ignored.len(), 2);
        assert_eq!(ignored[0].title, "备注");
        assert_eq!(ignored[0].suggestion, None);
        assert_eq!(ignored[1].suggestion.as_deref(), Some("受理部门编码"));
    }

    #[test]
    fn a_data_row_read_as_header_is_unrecognised() {
        let s = schema();
        let err = s
            .check_header(&header(&["11010520261125000001", "1", "张三"]))
            .unwrap_err();
        assert!(err.starts_with("表头无法识别"), "{err}");
        assert!(err.contains("header_row"), "{err}");
        // The row was data: none of it is quoted back.
        assert!(
            !err.contains("张三") && !err.contains("11010520261125000001"),
            "{err}"
        );
    }

    #[test]
    fn two_columns_for_one_field_are_refused() {
        let s = schema();
        let mut names: Vec<&str> = s.fields().map(|(_, t)| t).collect();
        names.push("project_no");
        let err = s.check_header(&header(&names)).unwrap_err();
        assert!(
            err.contains("「办件编号」与「project_no」两列是同一字段"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_has_no_header_verdict() {
        let s = schema();
        assert_eq!(s.check_header(&Header::default()), Ok(vec![]));
    }
}
