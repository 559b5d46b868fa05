//! The config with its schemas, code table and per-dataset read options
//! loaded: what `fepd run`, a reload and `fepd validate` start from. Every
//! problem is found before anything starts.

use std::sync::Arc;

use super::read::ReadOptions;
use crate::config::Config;
use crate::validate::{Catalog, CodeTable, DatasetSchema};

/// Config with its schemas loaded: everything `run` and `validate` need.
pub struct Loaded {
    pub cfg: Config,
    pub catalog: Catalog,
}

impl Loaded {
    pub fn schema(&self, dataset: &str) -> Option<Arc<DatasetSchema>> {
        self.catalog.get(dataset)
    }

    pub fn read_options(&self, dataset: Option<&str>) -> ReadOptions {
        let label = dataset
            .and_then(|d| self.cfg.dataset(d))
            .and_then(|d| d.default_encoding.as_ref())
            .or(self.cfg.intake.default_encoding.as_ref())
            .and_then(|e| e.ok().copied());
        let ds = dataset.and_then(|d| self.cfg.dataset(d));
        let mut limits = self.cfg.parse_limits();
        limits.header_row = ds.and_then(|d| d.header_row).unwrap_or(0);
        ReadOptions {
            sheet: ds.and_then(|d| d.sheet.clone()),
            limits,
            max_file_bytes: self.cfg.intake.max_file_bytes,
            default_encoding: label.map(|l| l.encoding()),
        }
    }
}

/// Why a config cannot be started: every problem, one line each (config
/// values, the spool's group, the code table, each schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Problems(pub Vec<String>);

/// Loads config problems, the code table and the schemas; every problem is
/// listed in the error.
pub fn load(cfg: Config) -> Result<Loaded, Problems> {
    let mut problems = cfg.problems();
    problems.extend(super::access::config_problems(&cfg));
    let codes = match CodeTable::load(&cfg.area_codes_path()) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            problems.push(format!(
                "area code table {}: {e}",
                cfg.area_codes_path().display()
            ));
            None
        }
    };
    let catalog = match codes {
        Some(codes) => match Catalog::load(&cfg.schemas_dir, codes, cfg.validate_options()) {
            Ok(mut c) => {
                for d in &cfg.datasets {
                    if d.satisfaction_scale == crate::config::Scale::Reversed
                        && c.get(&d.name).is_some()
                        && let Err(e) = c.reverse_scale(&d.name, "satisfaction")
                    {
                        problems.push(format!("dataset {}: satisfaction_scale: {e}", d.name));
                    }
                    if !d.aliases.is_empty()
                        && c.get(&d.name).is_some()
                        && let Err(e) = c.add_aliases(
                            &d.name,
                            d.aliases.iter().map(|(t, f)| (t.as_str(), f.as_str())),
                        )
                    {
                        problems.push(format!("dataset {}: aliases: {e}", d.name));
                    }
                }
                Some(c)
            }
            Err(errs) => {
                problems.extend(errs);
                None
            }
        },
        None => None,
    };
    if let Some(c) = &catalog {
        for d in &cfg.datasets {
            if c.get(&d.name).is_none() {
                problems.push(format!(
                    "dataset {}: no schema {}",
                    d.name,
                    cfg.schemas_dir
                        .join(format!("{}.schema.json", d.name))
                        .display()
                ));
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
