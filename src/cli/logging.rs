//! The operational log: `tracing` to stderr (journald) and, when a folder
//! is configured, to daily files with retention. Timestamps are in the
//! configured offset, like receipts and the exchange log, and files roll
//! at local midnight.

use chrono::FixedOffset;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::{Log, LogFormat};

/// Timestamps in a fixed offset, e.g. `2026-12-01T14:03:05.123456+08:00`.
struct LocalTime(FixedOffset);

impl FormatTime for LocalTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            chrono::Utc::now()
                .with_timezone(&self.0)
                .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
        )
    }
}

/// Installs the global subscriber; keep the guard alive to flush on exit.
/// `tz` is the configured offset (UTC when none is given or valid).
pub fn init(cfg: &Log, tz: FixedOffset) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = EnvFilter::try_from_env("FEPD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(cfg.level.as_deref().unwrap_or("info")));
    let (file, guard) = match &cfg.dir {
        Some(dir) => {
            let daily = super::logfile::DailyFile::new(dir.clone(), tz, cfg.retention_days)
                .map_err(|e| anyhow::anyhow!("log.dir {}: {e}", dir.display()))?;
            let (nb, guard) = tracing_appender::non_blocking(daily);
            (Some(nb), Some(guard))
        }
        None => (None, None),
    };
    // Colours only for a person at a terminal; journald and files get plain
    // text (NO_COLOR is honoured too).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(LocalTime(tz))
        .with_ansi(ansi);
    let res = match (cfg.format, file) {
        (LogFormat::Text, None) => builder
            .fmt_fields(one_line_fields())
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Json, None) => builder.json().with_writer(std::io::stderr).try_init(),
        (LogFormat::Text, Some(f)) => builder
            .fmt_fields(one_line_fields())
            .with_ansi(false)
            .with_writer(std::io::stderr.and(f))
            .try_init(),
        (LogFormat::Json, Some(f)) => builder
            .json()
            .with_writer(std::io::stderr.and(f))
            .try_init(),
    };
    // A subscriber already installed (tests) is not an error.
    let _ = res;
    Ok(guard)
}

/// Text-log fields with control characters escaped: a file name holding a
/// newline (or a value, or a library's message) cannot forge a log line.
/// The JSON format needs no help: its encoder escapes.
fn one_line_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = crate::oneline::escape(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}
