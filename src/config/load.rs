//! The config with its schemas and code table loaded: what `fepd run`, a
//! reload, `fepd validate` and `check-config` start from. Every problem is
//! found before anything starts, and each is a [`Problem`] naming what is
//! wrong and where.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Config, Scale};
use crate::validate::{Catalog, CodeTable, CodeTableError, DatasetSchema};

/// Config with its schemas loaded: everything `run` and `validate` need.
pub struct Loaded {
    pub cfg: Config,
    pub catalog: Catalog,
}

impl Loaded {
    pub fn schema(&self, dataset: &str) -> Option<Arc<DatasetSchema>> {
        self.catalog.get(dataset)
    }
}

/// One reason a config cannot start; its text is the line `check-config`
/// prints and a refused reload records.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A value in the config file (see `problems.rs`).
    #[error("{0}")]
    Value(String),
    /// `[spool] group` names no group on this host.
    #[error(
        "spool.group: no group {group:?} on this host (groupadd --system {group}; the packages create fepd-data)"
    )]
    NoGroup { group: String },
    /// Looking up `[spool] group` failed.
    #[error("spool.group: looking up group {group:?} failed: {source}")]
    GroupLookup {
        group: String,
        source: std::io::Error,
    },
    /// The area code table the schemas check against.
    #[error("area code table {path}: {source}")]
    CodeTable {
        path: PathBuf,
        source: CodeTableError,
    },
    /// A schema file in the schemas folder (the catalog names the file).
    #[error("{0}")]
    Schema(String),
    /// A dataset option its schema cannot take (`satisfaction_scale`,
    /// `aliases`).
    #[error("dataset {dataset}: {key}: {problem}")]
    Option {
        dataset: String,
        key: &'static str,
        problem: String,
    },
    /// A configured dataset with no schema file.
    #[error("dataset {dataset}: no schema {}", path.display())]
    NoSchema { dataset: String, path: PathBuf },
}

/// Why a config cannot be started: every problem, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Each problem as the line shown to the operator.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(Problem::to_string).collect()
    }
}

/// Loads config problems, the code table and the schemas; every problem is
/// listed in the error.
pub fn load(cfg: Config) -> Result<Loaded, Problems> {
    let mut problems: Vec<Problem> = cfg.problems().into_iter().map(Problem::Value).collect();
    if let Some(group) = &cfg.spool.group {
        match super::spool::gid_of(group) {
            Ok(Some(_)) => {}
            Ok(None) => problems.push(Problem::NoGroup {
                group: group.clone(),
            }),
            Err(source) => problems.push(Problem::GroupLookup {
                group: group.clone(),
                source,
            }),
        }
    }
    let codes = match CodeTable::load(&cfg.area_codes_path()) {
        Ok(c) => Some(Arc::new(c)),
        Err(source) => {
            problems.push(Problem::CodeTable {
                path: cfg.area_codes_path(),
                source,
            });
            None
        }
    };
    let catalog = match codes {
        Some(codes) => match Catalog::load(&cfg.schemas_dir, codes, cfg.validate_options()) {
            Ok(mut c) => {
                for d in &cfg.datasets {
                    if c.get(&d.name).is_none() {
                        continue;
                    }
                    if d.satisfaction_scale == Scale::Reversed
                        && let Err(e) = c.reverse_scale(&d.name, "satisfaction")
                    {
                        problems.push(Problem::Option {
                            dataset: d.name.clone(),
                            key: "satisfaction_scale",
                            problem: e.to_string(),
                        });
                    }
                    if !d.aliases.is_empty()
                        && let Err(e) = c.add_aliases(
                            &d.name,
                            d.aliases.iter().map(|(t, f)| (t.as_str(), f.as_str())),
                        )
                    {
                        problems.push(Problem::Option {
                            dataset: d.name.clone(),
                            key: "aliases",
                            problem: e.to_string(),
                        });
                    }
                }
                Some(c)
            }
            Err(errs) => {
                problems.extend(errs.into_iter().map(Problem::Schema));
                None
            }
        },
        None => None,
    };
    if let Some(c) = &catalog {
        for d in &cfg.datasets {
            if c.get(&d.name).is_none() {
                problems.push(Problem::NoSchema {
                    dataset: d.name.clone(),
                    path: cfg.schemas_dir.join(format!("{}.schema.json", d.name)),
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    Ok(Loaded {
        cfg,
        catalog: catalog.expect("no problems means the catalog loaded"),
    })
}
