//! The operational log: `tracing` to stderr (journald) and, when a folder
//! is configured, to daily-rotated files with retention.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::{Log, LogFormat};

/// Installs the global subscriber; keep the guard alive to flush on exit.
pub fn init(cfg: &Log) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = EnvFilter::try_from_env("FEPD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(cfg.level.as_deref().unwrap_or("info")));
    let (file, guard) = match &cfg.dir {
        Some(dir) => {
            let mut b = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("fepd")
                .filename_suffix("log");
            if cfg.retention_days > 0 {
                b = b.max_log_files(cfg.retention_days);
            }
            let appender = b.build(dir)?;
            let (nb, guard) = tracing_appender::non_blocking(appender);
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
