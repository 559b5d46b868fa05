//! The 行政区划代码 table (GB/T 2260), loaded from a data file that an
//! operator can replace: codes change every year, so none are compiled in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the code table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CodeTableError {
    #[error("cannot read code table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("code table {path}, line {line}: {message}")]
    Bad {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// GB/T 2260 codes with their names.
#[derive(Debug, Clone, Default)]
pub struct CodeTable {
    names: HashMap<String, String>,
}

impl CodeTable {
    /// Loads a CSV file `code,name,level` with a header row. Every code is
    /// six digits and appears once.
    pub fn load(path: &Path) -> Result<CodeTable, CodeTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| CodeTableError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_csv(&text).map_err(|(line, message)| CodeTableError::Bad {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses the CSV text; errors carry the 1-based line.
    pub fn from_csv(text: &str) -> Result<CodeTable, (u64, String)> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let headers = rdr.headers().map_err(|e| (1, e.to_string()))?.clone();
        if headers.get(0).map(str::trim) != Some("code")
            || headers.get(1).map(str::trim) != Some("name")
        {
            return Err((1, "header must start with code,name".into()));
        }
        let mut names = HashMap::new();
        for row in rdr.records() {
            let row = row.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                (line, e.to_string())
            })?;
            let line = row.position().map_or(0, |p| p.line());
            let code = row.get(0).unwrap_or("").trim();
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err((line, format!("code {code:?} is not six digits")));
            }
            let name = row.get(1).unwrap_or("").trim().to_string();
            if names.insert(code.to_string(), name).is_some() {
                return Err((line, format!("code {code} appears twice")));
            }
        }
        if names.is_empty() {
            return Err((1, "no codes".into()));
        }
        Ok(CodeTable { names })
    }

    pub fn contains(&self, code: &str) -> bool {
        self.names.contains_key(code)
    }

    /// The place name of a code, for messages.
    pub fn name(&self, code: &str) -> Option<&str> {
        self.names.get(code).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_shipped_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/gb2260.csv");
        let t = CodeTable::load(&path).unwrap();
        assert!(t.len() > 3000);
        assert!(t.contains("110105"));
        assert_eq!(t.name("110000"), Some("北京市"));
        assert!(!t.contains("999999"));
    }

    #[test]
    fn rejects_bad_rows() {
        assert_eq!(
            CodeTable::from_csv("code,name,level\n11010,x,county\n")
                .unwrap_err()
                .0,
            2
        );
        assert!(CodeTable::from_csv("code,name,level\n110101,a,c\n110101,b,c\n").is_err());
        assert!(CodeTable::from_csv("a,b\n110101,x\n").is_err());
    }
}
