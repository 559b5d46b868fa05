//! `fepd audit`: the exchange log for auditors — verify, show, trace,
//! report, export. Reads the state database read-only (works while the
//! daemon runs); only `export --prune` writes, through the one pruning
//! path in `state::log`.

use std::io::Write;
use std::path::PathBuf;

use crate::audit::{self, End, report, retention, show, trace, verify};
use crate::cli::Exit;
use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Read this state database instead of the configured one (for
    /// example a copy handed to the auditor).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Json,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Recompute the hash chain; name the first bad entry.
    ///
    /// Detects an edited, deleted, inserted or reordered entry. With
    /// --witness, also checks the heads the library kept (JSON lines of
    /// {"seq":…,"hash":…}, e.g. from the simulator's /sim/audit-heads), so a
    /// truncated and rewritten tail is caught. With --archive (oldest
    /// first), checks the archives written by `export` and the log as one
    /// chain.
    ///
    /// Exit codes: 0 the chain is intact (and the witness agrees); 1 the
    /// chain is broken or the witness disagrees; 3 the check could not run
    /// (unreadable config, database or file).
    Verify {
        /// Witness heads exported from the library.
        #[arg(long, value_name = "FILE")]
        witness: Option<PathBuf>,
        /// An archive written by `fepd audit export` (repeat, oldest first).
        #[arg(long, value_name = "FILE")]
        archive: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Verify every node's chain as the cluster's stream `FEPD_LOG`
        /// holds it (cluster mode, docs/cluster.md), instead of this
        /// node's database.
        #[arg(long, conflicts_with_all = ["witness", "archive", "json"])]
        cluster: bool,
    },
    /// List entries, oldest first (a table, or JSON lines with --json).
    ///
    /// Dates are days in the configured timezone (--until includes the
    /// whole day); date-times take an offset, e.g. 2026-11-20T08:00:00+08:00.
    Show {
        #[arg(long, value_name = "DATE|DATETIME")]
        since: Option<String>,
        #[arg(long, value_name = "DATE|DATETIME")]
        until: Option<String>,
        #[arg(long)]
        dataset: Option<String>,
        /// An event name, e.g. batch_delivered.
        #[arg(long)]
        event: Option<String>,
        /// A file's name as dropped in the inbox.
        #[arg(long)]
        file: Option<String>,
        /// A batch id.
        #[arg(long)]
        batch: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Every node's entries as the cluster's stream `FEPD_LOG` holds
        /// them (cluster mode, docs/cluster.md), one JSON line each.
        #[arg(long, conflicts_with_all = ["since", "until", "dataset", "event", "file", "batch", "limit"])]
        cluster: bool,
    },
    /// One record's history by its key (e.g. 办件编号): files, verdicts,
    /// batches, deliveries with receipts, library refusals.
    ///
    /// Exit codes: 0 found; 1 the key appears nowhere; 3 cannot run.
    Trace {
        key: String,
        #[arg(long)]
        dataset: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Daily reconciliation per dataset: received, rejected, skipped,
    /// sealed, delivered, library-rejected, parked, pending.
    ///
    /// Counts the files finished that day (configured timezone) and the
    /// batches sealed from them, in their delivery state now. Checks
    /// received = rejected + skipped + sealed and sealed = delivered +
    /// library-rejected + parked + pending. Exit codes: 0 both hold; 1 one
    /// does not; 3 cannot run.
    Report {
        #[arg(long, value_name = "YYYY-MM-DD")]
        day: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write the entries up to a date (JSON lines, with their hashes) to an
    /// archive; --prune then deletes them, leaving a checkpoint entry so
    /// the rest still verifies.
    ///
    /// Exit codes: 0 done; 1 refused (the chain is broken: nothing is
    /// pruned); 3 cannot run.
    Export {
        /// Last day (or date-time) to include.
        #[arg(long, value_name = "DATE|DATETIME")]
        until: String,
        /// The archive file (never overwritten); stdout if absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Delete the exported entries afterwards (needs --out).
        #[arg(long, requires = "out")]
        prune: bool,
    },
}

pub fn run(cfg: anyhow::Result<Config>, a: &Args) -> anyhow::Result<Exit> {
    // With --db the config is only needed for the timezone (and the
    // report's dataset list): an auditor may hold just the database.
    match &a.command {
        Command::Show { cluster: true, .. } => return super::cluster::log(&cfg?),
        Command::Verify { cluster: true, .. } => return super::cluster::verify(&cfg?),
        _ => {}
    }
    let cfg = match (cfg, &a.db) {
        (Ok(c), _) => Some(c),
        (Err(_), Some(_)) => None,
        (Err(e), None) => return Err(e),
    };
    let tz = cfg
        .as_ref()
        .map_or_else(|| crate::config::Timezone::default().offset(), Config::tz);
    let db = match (&a.db, &cfg) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.state_db(),
        (None, None) => unreachable!("no config and no --db returned above"),
    };
    if !db.exists() {
        anyhow::bail!("state database {} does not exist", db.display());
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    match &a.command {
        Command::Verify {
            witness,
            archive,
            json,
            cluster: _,
        } => {
            let conn = crate::state::open_read_only(&db)?;
            let heads = witness.as_deref().map(verify::read_witness).transpose()?;
            let v = verify::verify(&conn, archive, heads.as_deref())?;
            if *json {
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                print_verification(&mut out, &v)?;
            }
            Ok(if v.ok() { Exit::Ok } else { Exit::Findings })
        }
        Command::Show {
            since,
            until,
            dataset,
            event,
            file,
            batch,
            limit,
            json,
            cluster: _,
        } => {
            let conn = crate::state::open_read_only(&db)?;
            let f = show::Filter {
                since: since
                    .as_deref()
                    .map(|s| audit::parse_bound(s, End::Start, tz))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|s| audit::parse_bound(s, End::End, tz))
                    .transpose()?,
                dataset: dataset.clone(),
                event: event.clone(),
                file: file.clone(),
                batch: batch.clone(),
            };
            if !*json {
                writeln!(out, "{}", show::table_header())?;
            }
            show::entries(&conn, &f, *limit, |e| {
                if *json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string(e).expect("entries serialise")
                    )
                } else {
                    writeln!(out, "{}", show::table_row(e))
                }
            })?;
            Ok(Exit::Ok)
        }
        Command::Trace { key, dataset, json } => {
            let conn = crate::state::open_read_only(&db)?;
            let steps = trace::trace(&conn, key, dataset.as_deref())?;
            if steps.is_empty() {
                eprintln!("no record with key {key} in the state database");
                return Ok(Exit::Findings);
            }
            if *json {
                for s in &steps {
                    writeln!(out, "{}", serde_json::to_string(s)?)?;
                }
            } else {
                writeln!(out, "{}", trace::table_header())?;
                for s in &steps {
                    writeln!(out, "{}", trace::table_row(s))?;
                }
            }
            Ok(Exit::Ok)
        }
        Command::Report { day, format } => {
            let conn = crate::state::open_read_only(&db)?;
            let day = audit::parse_day(day)?;
            let names: Vec<String> = cfg
                .as_ref()
                .map(|c| c.datasets.iter().map(|d| d.name.clone()).collect())
                .unwrap_or_default();
            let r = report::report(&conn, day, tz, &names)?;
            match format {
                Format::Text => write!(out, "{}", report::to_text(&r))?,
                Format::Csv => write!(out, "{}", report::to_csv(&r))?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?,
            }
            Ok(if r.balances() {
                Exit::Ok
            } else {
                Exit::Findings
            })
        }
        Command::Export {
            until,
            out: file,
            prune,
        } => {
            let end = audit::parse_bound(until, End::End, tz)?;
            let Some(path) = file else {
                let conn = crate::state::open_read_only(&db)?;
                retention::export(&conn, end, &mut out)?;
                return Ok(Exit::Ok);
            };
            let mut conn = if *prune {
                crate::state::open(&db)?
            } else {
                crate::state::open_read_only(&db)?
            };
            let ex = retention::export_to_file(&conn, end, path)?;
            eprintln!(
                "exported {} entries (seq {}–{}) to {} (sha256 {})",
                ex.entries,
                ex.first_seq.unwrap_or(0),
                ex.head.as_ref().map_or(0, |h| h.seq),
                path.display(),
                ex.sha256
            );
            if !*prune {
                return Ok(Exit::Ok);
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match retention::prune(
                &mut conn,
                tz,
                &ex,
                &name,
                until,
                crate::cli::operator::name(),
            )? {
                retention::Pruned::Done { pruned, checkpoint } => {
                    eprintln!(
                        "pruned entries up to {} (hash {}); checkpoint entry {} carries that head",
                        pruned.seq, pruned.hash, checkpoint.seq
                    );
                    Ok(Exit::Ok)
                }
                retention::Pruned::Nothing => {
                    eprintln!("nothing to prune");
                    Ok(Exit::Ok)
                }
                retention::Pruned::ChainBroken { message, .. } => {
                    eprintln!(
                        "refusing to prune: the chain is broken ({message}); nothing deleted"
                    );
                    Ok(Exit::Findings)
                }
                retention::Pruned::Changed => {
                    eprintln!(
                        "refusing to prune: the archived entries changed meanwhile; nothing deleted"
                    );
                    Ok(Exit::Findings)
                }
            }
        }
    }
}

fn print_verification(out: &mut impl Write, v: &verify::Verification) -> std::io::Result<()> {
    let chain = |out: &mut dyn Write, what: &str, c: &verify::ChainCheck| -> std::io::Result<()> {
        match &c.broken {
            None => writeln!(
                out,
                "✓ {what}: {} entries (seq {}–{}), chain intact; head hash {}",
                c.entries,
                c.first_seq.unwrap_or(0),
                c.head.as_ref().map_or(0, |h| h.seq),
                c.head.as_ref().map_or("-", |h| h.hash.as_str())
            ),
            Some(f) => writeln!(
                out,
                "✗ {what}: chain broken at seq {}: {}",
                f.seq, f.message
            ),
        }
    };
    chain(out, "exchange log", &v.log)?;
    if let Some(a) = &v.with_archives {
        chain(out, "archives + exchange log", a)?;
    }
    if let Some(w) = &v.witness {
        if w.mismatches.is_empty() {
            writeln!(
                out,
                "✓ witness: {} head(s) match{}{}",
                w.matched,
                w.witnessed_through
                    .map_or(String::new(), |s| format!(" (through seq {s})")),
                if w.unverifiable > 0 {
                    format!(
                        "; {} name pruned entries (give --archive to check them)",
                        w.unverifiable
                    )
                } else {
                    String::new()
                }
            )?;
        } else {
            let first = &w.mismatches[0];
            writeln!(
                out,
                "✗ witness: {} head(s) contradict the log; first: {first}",
                w.mismatches.len()
            )?;
            for m in &w.mismatches[1..] {
                writeln!(out, "  {m}")?;
            }
        }
    }
    Ok(())
}
