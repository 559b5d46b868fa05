//! The PostgreSQL engine, which also serves Kingbase (人大金仓) in its
//! PostgreSQL-compatible mode, through the `postgres` crate (the sync
//! client; it builds beside rusqlite's bundled SQLite, where sqlx does
//! not). Each row is read as `to_json(row)` (`json`, not `jsonb`: the
//! server need not sort each row's keys): numbers, text, JSON columns
//! and date-times come back as JSON the same way whatever the column
//! types. `cd_time` must be a `timestamp` (or `timestamptz`, compared in
//! the session's time zone); the source's clock is its `LOCALTIMESTAMP`;
//! `row_guid` is compared as text in byte order (`COLLATE "C"`), the order
//! fepd compares positions in (docs/sql-sources.md).

use std::time::Duration;

use postgres::{Client, Config, NoTls};
use serde_json::Value;

use super::{Engine, SourceError, SourceRow};
use crate::config::SqlSource;
use crate::state::watermark::Mark;

/// The longest a statement may run before the poll fails and is retried.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// An open PostgreSQL source.
pub struct Postgres {
    client: Client,
    src: SqlSource,
    from: String,
    time: String,
    guid: String,
    /// Mark mode: `AND (mark IS NULL OR mark = 0)`, else empty.
    unmarked: String,
}

fn db(e: postgres::Error) -> SourceError {
    // The server's own words (a wrong password is "password authentication
    // failed for user …", SQLSTATE 28P01), never the password; for a lost
    // connection, the cause.
    if let Some(d) = e.as_db_error() {
        return SourceError::Database(format!(
            "{} {}: {}",
            d.severity(),
            d.code().code(),
            d.message()
        ));
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    SourceError::Database(text)
}

impl Postgres {
    /// Connects with `password` (from the configured secret, if any).
    pub fn open(src: &SqlSource, password: Option<&str>) -> Result<Postgres, SourceError> {
        let mut cfg: Config = src
            .url
            .parse()
            .map_err(|e| SourceError::Database(format!("url: {e}")))?;
        if let Some(p) = password {
            cfg.password(p);
        }
        cfg.connect_timeout(Duration::from_secs(10));
        cfg.application_name("fepd");
        let mut client = cfg.connect(NoTls).map_err(db)?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                STATEMENT_TIMEOUT.as_millis()
            ))
            .map_err(db)?;
        let from = match (&src.table, &src.query) {
            (Some(t), _) => super::sqlite::quote(t),
            (None, Some(q)) => format!("({q})"),
            (None, None) => return Err(SourceError::Database("no table or query".into())),
        };
        let col = |f| format!("fepd_source.{}", super::sqlite::quote(src.column_of(f)));
        Ok(Postgres {
            client,
            time: format!("{}::timestamp", col("cd_time")),
            guid: format!("{}::text COLLATE \"C\"", col("row_guid")),
            unmarked: super::sqlite::unmarked(src, super::sqlite::quote),
            src: src.clone(),
            from,
        })
    }

    fn text(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<String, SourceError> {
        let row = self.client.query_one(sql, params).map_err(db)?;
        let json: String = row.try_get(0).map_err(db)?;
        match serde_json::from_str(&json) {
            Ok(Value::String(s)) => Ok(s),
            _ => Err(SourceError::Row(format!("not a date-time: {json}"))),
        }
    }
}

impl Engine for Postgres {
    fn clock(&mut self, lag_secs: u64) -> Result<(String, String), SourceError> {
        let now = self.text("SELECT to_jsonb(LOCALTIMESTAMP)::text", &[])?;
        let until = self.text(
            "SELECT to_jsonb($1::text::timestamp - make_interval(secs => $2))::text",
            &[&now, &(lag_secs as f64)],
        )?;
        Ok((now, until))
    }

    fn minus(&mut self, cd_time: &str, secs: u64) -> Result<String, SourceError> {
        self.text(
            "SELECT to_jsonb($1::text::timestamp - make_interval(secs => $2))::text",
            &[&cd_time, &(secs as f64)],
        )
    }

    fn page(
        &mut self,
        after: Option<&Mark>,
        until: &str,
        limit: u64,
    ) -> Result<Vec<SourceRow>, SourceError> {
        let (t, g) = (&self.time, &self.guid);
        let lower = match after {
            // `{t} >= $2` is implied by the rest: it is there for the
            // planner, which then starts the index scan at the position
            // instead of filtering every row before it.
            Some(_) => format!(
                "AND {t} >= $2::text::timestamp
                 AND ({t} > $2::text::timestamp OR ({t} = $2::text::timestamp AND {g} > $3::text))"
            ),
            None => "AND $2::text IS NULL AND $3::text IS NULL".to_string(),
        };
        let sql = format!(
            "SELECT to_json(fepd_source)::text FROM {} AS fepd_source
             WHERE {t} <= $1::text::timestamp {lower} {} ORDER BY {t}, {g} LIMIT $4",
            self.from, self.unmarked
        );
        let (at, guid) = match after {
            Some(m) => (Some(m.cd_time.as_str()), Some(m.row_guid.as_str())),
            None => (None, None),
        };
        let rows = self
            .client
            .query(&sql, &[&until, &at, &guid, &(limit as i64)])
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let json: String = r.try_get(0).map_err(db)?;
            let Ok(Value::Object(cols)) = serde_json::from_str::<Value>(&json) else {
                return Err(SourceError::Row("a row is not a JSON object".into()));
            };
            let cols = cols
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, super::row::text_value(&s)),
                    v => (k, v),
                })
                .collect();
            out.push(SourceRow::new(&self.src, cols)?);
        }
        Ok(out)
    }

    fn mark(&mut self, rows: &[Mark]) -> Result<(), SourceError> {
        let (table, column) = super::sqlite::mark_table(&self.src)?;
        let (t, g) = (&self.time, &self.guid);
        // One statement for the page: the positions as two arrays.
        let sql = format!(
            "UPDATE {} AS fepd_source SET {} = 1
             FROM unnest($1::text[], $2::text[]) AS fepd_taken(cd_time, row_guid)
             WHERE {t} = fepd_taken.cd_time::timestamp AND {g} = fepd_taken.row_guid",
            super::sqlite::quote(table),
            super::sqlite::quote(column)
        );
        let times: Vec<&str> = rows.iter().map(|m| m.cd_time.as_str()).collect();
        let guids: Vec<&str> = rows.iter().map(|m| m.row_guid.as_str()).collect();
        self.client
            .execute(&sql, &[&times, &guids])
            .map_err(|e| match db(e) {
                SourceError::Database(text) => SourceError::Mark(text),
                other => other,
            })?;
        Ok(())
    }
}
