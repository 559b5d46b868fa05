//! A test deployment's config as a TOML table: tests change settings by
//! key (`env.set("batch.max_records", 10)`), never by editing the text, so
//! an edit cannot silently miss (a `replace` whose pattern no longer
//! occurs changes nothing) and the file is always valid TOML unless a test
//! writes broken text on purpose.

use toml::{Table, Value};

use crate::harness::{DATASETS, Env, repo};

/// The config every deployment starts from: outbox mode, quick rescans,
/// small batch age, and every dataset of [`DATASETS`].
pub fn base_config() -> Table {
    let mut t = parse_toml(&format!(
        r#"spool_dir = "spool"
state_dir = "state"
schemas_dir = "{schemas}"
sender = "230000-zwfw"
timezone = "+08:00"

[intake]
rescan_secs = 1
settle_secs = 1

[sink]
mode = "outbox"
outbox_dir = "spool/outbox"

[batch]
max_records = 1000
max_bytes = 4000000
max_age_ms = 1000

# The hourly canary probe (on by default) would add a probe and a
# `selftest` entry to any test that runs across the hour; the canary test
# sets its own schedule.
[alerts]
canary = "off"
"#,
        schemas = repo().join("schemas").display()
    ));
    let datasets = DATASETS
        .iter()
        .map(|(name, cat)| {
            let mut d = Table::new();
            d.insert("name".into(), (*name).into());
            d.insert("category".into(), (*cat).into());
            d.insert("resource".into(), (*name).into());
            Value::Table(d)
        })
        .collect();
    t.insert("dataset".into(), Value::Array(datasets));
    t
}

/// `text` as a TOML table; panics naming the text if it is not TOML.
pub fn parse_toml(text: &str) -> Table {
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("test config is not TOML: {e}\n{text}"))
}

/// Merges `from` into `into`: tables key by key, anything else replaced.
pub fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

impl Env {
    /// Writes the table out to the config file.
    pub fn write_config(&self) {
        let text = toml::to_string(&*self.cfg.borrow()).unwrap();
        std::fs::write(&self.config, text).unwrap();
    }

    /// Edits the config table, then writes it out.
    pub fn edit_config(&self, f: impl FnOnce(&mut Table)) {
        f(&mut self.cfg.borrow_mut());
        self.write_config();
    }

    /// Sets the key at a dotted `path` (`"batch.max_records"`), creating
    /// the tables on the way.
    pub fn set(&self, path: &str, value: impl Into<Value>) {
        let value = value.into();
        self.edit_config(|t| {
            let (tables, key) = path.rsplit_once('.').unwrap_or(("", path));
            let mut at = t;
            for name in tables.split('.').filter(|n| !n.is_empty()) {
                at = at
                    .entry(name)
                    .or_insert_with(|| Value::Table(Table::new()))
                    .as_table_mut()
                    .unwrap_or_else(|| panic!("{name} in {path} is not a table"));
            }
            at.insert(key.into(), value);
        });
    }

    /// The value at a dotted `path`; panics if it is not set.
    pub fn get(&self, path: &str) -> Value {
        let cfg = self.cfg.borrow();
        let mut at = cfg.get(path.split('.').next().unwrap_or_default());
        for name in path.split('.').skip(1) {
            at = at.and_then(|v| v.get(name));
        }
        at.unwrap_or_else(|| panic!("{path} is not set")).clone()
    }

    /// Removes the key at a dotted `path`; panics if it was not set.
    pub fn unset(&self, path: &str) {
        self.edit_config(|t| {
            let (tables, key) = path.rsplit_once('.').unwrap_or(("", path));
            let mut at = t;
            for name in tables.split('.').filter(|n| !n.is_empty()) {
                at = at[name].as_table_mut().unwrap();
            }
            assert!(at.remove(key).is_some(), "{path} was not set");
        });
    }

    /// Sets `key` in the `[intake]` table.
    pub fn set_intake(&self, key: &str, value: impl Into<Value>) {
        self.set(&format!("intake.{key}"), value);
    }

    /// Sets `key` in the `[[dataset]]` table named `dataset`.
    pub fn set_dataset(&self, dataset: &str, key: &str, value: impl Into<Value>) {
        let value = value.into();
        self.edit_config(|t| {
            let d = t["dataset"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .filter_map(Value::as_table_mut)
                .find(|d| d.get("name").and_then(Value::as_str) == Some(dataset))
                .unwrap_or_else(|| panic!("no dataset {dataset} in the config"));
            d.insert(key.into(), value);
        });
    }

    /// Appends a `[[dataset]]` table given as TOML keys (`name = …`).
    pub fn add_dataset(&self, keys: &str) {
        let d = parse_toml(keys);
        self.edit_config(|t| {
            t["dataset"].as_array_mut().unwrap().push(Value::Table(d));
        });
    }
}
