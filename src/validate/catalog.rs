//! All dataset schemas of a deployment, loaded once from `schemas_dir`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::ValidateOptions;
use super::codes::CodeTable;
use super::schema::DatasetSchema;

/// The dataset schemas by name. Reloading builds a new catalog (with a new
/// code table, if one was replaced); records in flight keep their `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    schemas: BTreeMap<String, Arc<DatasetSchema>>,
}

impl Catalog {
    /// Loads every `*.schema.json` in `schemas_dir`. Every problem in every
    /// file is listed, so that `check-config` can show them all at once.
    pub fn load(
        schemas_dir: &Path,
        codes: Arc<CodeTable>,
        opts: ValidateOptions,
    ) -> Result<Catalog, Vec<String>> {
        let dir = std::fs::read_dir(schemas_dir)
            .map_err(|e| vec![format!("{}: cannot list: {e}", schemas_dir.display())])?;
        let mut paths = Vec::new();
        let mut errs = Vec::new();
        for entry in dir {
            match entry {
                Ok(e) => {
                    let p = e.path();
                    if p.to_str().is_some_and(|s| s.ends_with(".schema.json")) {
                        paths.push(p);
                    }
                }
                Err(e) => errs.push(format!("{}: {e}", schemas_dir.display())),
            }
        }
        paths.sort();
        if paths.is_empty() && errs.is_empty() {
            errs.push(format!("{}: no *.schema.json files", schemas_dir.display()));
        }
        let mut schemas = BTreeMap::new();
        for p in paths {
            match DatasetSchema::load(&p, Arc::clone(&codes), opts.clone()) {
                Ok(s) => {
                    schemas.insert(s.name.clone(), Arc::new(s));
                }
                Err(e) => errs.extend(e),
            }
        }
        if errs.is_empty() {
            Ok(Catalog { schemas })
        } else {
            Err(errs)
        }
    }

    /// Declares that `dataset`'s source uses the reversed 1–5 scale for
    /// `field` (before the catalog is shared).
    pub fn reverse_scale(&mut self, dataset: &str, field: &str) -> Result<(), String> {
        let s = self
            .schemas
            .get_mut(dataset)
            .ok_or_else(|| format!("no schema for dataset {dataset}"))?;
        Arc::get_mut(s)
            .ok_or_else(|| format!("schema of {dataset} already in use"))?
            .reverse_scale(field)
    }

    /// Adds `[dataset.aliases]` column titles to `dataset` (before the
    /// catalog is shared).
    pub fn add_aliases<'a>(
        &mut self,
        dataset: &str,
        aliases: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), String> {
        let s = self
            .schemas
            .get_mut(dataset)
            .ok_or_else(|| format!("no schema for dataset {dataset}"))?;
        Arc::get_mut(s)
            .ok_or_else(|| format!("schema of {dataset} already in use"))?
            .add_aliases(aliases)
    }

    pub fn get(&self, name: &str) -> Option<Arc<DatasetSchema>> {
        self.schemas.get(name).cloned()
    }

    /// Dataset names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.schemas.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.schemas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }
}

/// Loads one schema file (`<dataset>.schema.json`); the problems joined.
pub fn load_one(
    path: &Path,
    codes: Arc<CodeTable>,
    opts: ValidateOptions,
) -> Result<DatasetSchema, String> {
    DatasetSchema::load(path, codes, opts).map_err(|e| e.join("\n"))
}
