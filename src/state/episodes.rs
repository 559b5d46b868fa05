//! The alert episodes still open, read back from the exchange log: every
//! `alert_raised` without a later `alert_resolved` of the same kind and
//! subject. A restarted daemon goes on with them instead of raising them
//! again (docs/zh/安装与运维手册.md §10).

use std::collections::BTreeMap;

use rusqlite::Connection;

/// An open episode: its kind, subject and since when (as logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEpisode {
    pub kind: String,
    pub subject: String,
    pub since: String,
}

pub fn open(conn: &Connection) -> rusqlite::Result<Vec<OpenEpisode>> {
    let mut stmt = conn.prepare(
        "SELECT event, details FROM exchange_log
         WHERE event IN ('alert_raised', 'alert_resolved') ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut open: BTreeMap<(String, String), String> = BTreeMap::new();
    for row in rows {
        let (event, details) = row?;
        let Some(d) = details.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            continue;
        };
        let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        let key = (text("kind"), text("subject"));
        if event == "alert_raised" {
            open.insert(key, text("since"));
        } else {
            open.remove(&key);
        }
    }
    Ok(open
        .into_iter()
        .map(|((kind, subject), since)| OpenEpisode {
            kind,
            subject,
            since,
        })
        .collect())
}
