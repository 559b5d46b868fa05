//! The MySQL / MariaDB engine, through the sync `mysql` crate (pure Rust,
//! no TLS: the 前置库 is on the exchange host or its LAN). Rows are read
//! with the binary protocol, each column by its type: integers as numbers,
//! decimals and floats as text, date-times as `YYYY-MM-DD HH:MM:SS[.ffffff]`,
//! text (a JSON column included) as text; a binary column is refused.
//! `cd_time` must be a `DATETIME`; the source's clock is its `NOW(6)` in
//! the session's time zone; `row_guid` is compared as bytes (`BINARY`),
//! the order fepd compares positions in (docs/sql-sources.md).

use std::time::Duration;

use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value as My};
use serde_json::Value;

use super::{Engine, SourceError, SourceRow};
use crate::config::SqlSource;
use crate::state::watermark::Mark;

/// An open MySQL or MariaDB source.
pub struct Mysql {
    conn: Conn,
    src: SqlSource,
    from: String,
    time: String,
    guid: String,
    /// Mark mode: `AND (mark IS NULL OR mark = 0)`, else empty.
    unmarked: String,
}

fn db(e: mysql::Error) -> SourceError {
    // The server's own words (a wrong password is "Access denied for user
    // …", 1045), never the password.
    SourceError::Database(e.to_string())
}

/// `name` as a MySQL identifier.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl Mysql {
    /// Connects with `password` (from the configured secret, if any).
    pub fn open(src: &SqlSource, password: Option<&str>) -> Result<Mysql, SourceError> {
        let opts =
            Opts::from_url(&src.url).map_err(|e| SourceError::Database(format!("url: {e}")))?;
        let mut b = OptsBuilder::from_opts(opts)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .read_timeout(Some(Duration::from_secs(120)))
            .write_timeout(Some(Duration::from_secs(120)));
        if let Some(p) = password {
            b = b.pass(Some(p));
        }
        let conn = Conn::new(b).map_err(db)?;
        let from = match (&src.table, &src.query) {
            (Some(t), _) => quote(t),
            (None, Some(q)) => format!("({q})"),
            (None, None) => return Err(SourceError::Database("no table or query".into())),
        };
        let col = |f| format!("fepd_source.{}", quote(src.column_of(f)));
        Ok(Mysql {
            conn,
            time: col("cd_time"),
            guid: format!("CAST({} AS BINARY)", col("row_guid")),
            unmarked: super::sqlite::unmarked(src, quote),
            src: src.clone(),
            from,
        })
    }

    fn text(&mut self, sql: &str, params: Vec<My>) -> Result<String, SourceError> {
        let t: Option<Option<String>> = self.conn.exec_first(sql, params).map_err(db)?;
        t.flatten()
            .ok_or_else(|| SourceError::Row(format!("not a date-time: {sql}")))
    }
}

impl Engine for Mysql {
    fn clock(&mut self, lag_secs: u64) -> Result<(String, String), SourceError> {
        let now = self.text("SELECT CAST(NOW(6) AS CHAR)", vec![])?;
        let until = self.minus(&now, lag_secs)?;
        Ok((now, until))
    }

    fn minus(&mut self, cd_time: &str, secs: u64) -> Result<String, SourceError> {
        self.text(
            "SELECT CAST(CAST(? AS DATETIME(6)) - INTERVAL ? SECOND AS CHAR)",
            vec![cd_time.into(), secs.into()],
        )
    }

    fn page(
        &mut self,
        after: Option<&Mark>,
        until: &str,
        limit: u64,
    ) -> Result<Vec<SourceRow>, SourceError> {
        let (t, g) = (&self.time, &self.guid);
        let mut params: Vec<My> = vec![until.into()];
        let lower = match after {
            Some(m) => {
                params.extend([
                    m.cd_time.as_str().into(),
                    m.cd_time.as_str().into(),
                    m.cd_time.as_str().into(),
                    m.row_guid.as_str().into(),
                ]);
                // `{t} >= …`, implied by the rest, lets the index start at
                // the position (see `postgres`).
                format!(
                    "AND {t} >= CAST(? AS DATETIME(6))
                     AND ({t} > CAST(? AS DATETIME(6)) OR ({t} = CAST(? AS DATETIME(6)) AND {g} > CAST(? AS BINARY)))"
                )
            }
            None => String::new(),
        };
        params.push(limit.into());
        let sql = format!(
            "SELECT * FROM {} AS fepd_source WHERE {t} <= CAST(? AS DATETIME(6)) {lower} {}
             ORDER BY {t}, {g} LIMIT ?",
            self.from, self.unmarked
        );
        let rows: Vec<mysql::Row> = self.conn.exec(&sql, params).map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let columns = r.columns();
            let mut cols = Vec::with_capacity(columns.len());
            for (i, c) in columns.iter().enumerate() {
                let name = c.name_str().to_string();
                let binary = c.character_set() == 63
                    && c.flags().contains(ColumnFlags::BINARY_FLAG)
                    && matches!(
                        c.column_type(),
                        ColumnType::MYSQL_TYPE_BLOB
                            | ColumnType::MYSQL_TYPE_TINY_BLOB
                            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                            | ColumnType::MYSQL_TYPE_LONG_BLOB
                            | ColumnType::MYSQL_TYPE_VARCHAR
                            | ColumnType::MYSQL_TYPE_VAR_STRING
                            | ColumnType::MYSQL_TYPE_STRING
                    );
                let v = match r.as_ref(i).unwrap_or(&My::NULL) {
                    My::NULL => Value::Null,
                    My::Bytes(_) if binary => {
                        return Err(SourceError::Row(format!(
                            "column {name:?} holds binary data, which fepd cannot convert to a field"
                        )));
                    }
                    My::Bytes(b) => super::row::text_value(&String::from_utf8_lossy(b)),
                    My::Int(n) => Value::from(*n),
                    My::UInt(n) => Value::from(*n),
                    My::Float(f) => Value::String(f.to_string()),
                    My::Double(f) => Value::String(f.to_string()),
                    My::Date(y, mo, d, h, mi, s, us) => {
                        let mut t = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
                        if *us != 0 {
                            t.push_str(&format!(".{us:06}"));
                        }
                        Value::String(t)
                    }
                    My::Time(neg, days, h, mi, s, us) => {
                        let sign = if *neg { "-" } else { "" };
                        let h = *days * 24 + u32::from(*h);
                        let mut t = format!("{sign}{h:02}:{mi:02}:{s:02}");
                        if *us != 0 {
                            t.push_str(&format!(".{us:06}"));
                        }
                        Value::String(t)
                    }
                };
                cols.push((name, v));
            }
            out.push(SourceRow::new(&self.src, cols)?);
        }
        Ok(out)
    }

    fn mark(&mut self, rows: &[Mark]) -> Result<(), SourceError> {
        let (table, column) = super::sqlite::mark_table(&self.src)?;
        let (t, g) = (
            &self.time,
            format!("fepd_source.{}", quote(self.src.column_of("row_guid"))),
        );
        for batch in rows.chunks(super::MARK_BATCH) {
            // The pair in the index's own terms finds the rows; the bytes
            // of row_guid then match exactly (a case-insensitive collation
            // would let `a` match `A`).
            let pairs = vec!["(CAST(? AS DATETIME(6)), ?)"; batch.len()].join(", ");
            let exact = vec!["CAST(? AS BINARY)"; batch.len()].join(", ");
            let sql = format!(
                "UPDATE {} AS fepd_source SET fepd_source.{} = 1
                 WHERE ({t}, {g}) IN ({pairs}) AND CAST({g} AS BINARY) IN ({exact})",
                quote(table),
                quote(column)
            );
            let mut params: Vec<My> = Vec::with_capacity(batch.len() * 3);
            for m in batch {
                params.extend([m.cd_time.as_str().into(), m.row_guid.as_str().into()]);
            }
            params.extend(batch.iter().map(|m| m.row_guid.as_str().into()));
            self.conn
                .exec_drop(&sql, params)
                .map_err(|e| SourceError::Mark(e.to_string()))?;
        }
        Ok(())
    }
}
