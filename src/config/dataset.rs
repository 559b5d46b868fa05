//! `[[dataset]]`: one dataset's spool folder, schema, route and the
//! per-dataset settings that override `[intake]`.

use serde::Deserialize;

use super::values::{Checked, EncodingLabel, Schedule};
use super::{Ready, SendWindow};

/// One dataset: its spool folder, schema and route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// = spool folder name = `schemas/<name>.schema.json`.
    pub name: String,
    /// Route: docs/protocol.md `{category}/{resource}`.
    pub category: String,
    pub resource: String,
    /// Overrides `[intake] ready` for this dataset.
    #[serde(default)]
    pub ready: Option<Ready>,
    /// Overrides `[intake] default_encoding` for this dataset.
    #[serde(default)]
    pub default_encoding: Option<Checked<EncodingLabel>>,
    /// When the inbox is collected by a rescan: cron with seconds
    /// (`sec min hour day month weekday`) in `timezone`. Replaces the
    /// periodic `rescan_secs` rescan for this dataset; files the watcher
    /// saw complete are still taken at once.
    #[serde(default)]
    pub schedule: Option<Checked<Schedule>>,
    /// Push mode: the times of day (`"22:00-06:00"`, in `timezone`) when
    /// this dataset's batches may be sent; they wait in the outbox outside.
    #[serde(default)]
    pub send_window: Option<SendWindow>,
    /// Push mode: batches of this dataset's route in flight at once,
    /// instead of `[sink.http] inflight` (`1`: strict seal order).
    #[serde(default)]
    pub inflight: Option<usize>,
    /// `"reversed"`: this source rates `satisfaction` on the reversed
    /// GB/T 39046 A.8 scale (1 = 非常满意); values are converted to the
    /// standard scale before validation (docs/datasets.md). Never guessed.
    #[serde(default)]
    pub satisfaction_scale: Scale,
    /// CSV line / XLSX sheet row (1-based) of the header, for files with a
    /// title row above it; default: the first non-empty row.
    #[serde(default)]
    pub header_row: Option<u32>,
    /// XLSX: the sheet holding the data, by name or 1-based position;
    /// default: the first sheet.
    #[serde(default)]
    pub sheet: Option<crate::parse::SheetRef>,
    /// Extra column titles (title → field name), for templates that use
    /// other titles than the schema's.
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, String>,
}

/// How a source numbers the 1–5 satisfaction scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Standard,
    Reversed,
}

impl DatasetConfig {
    pub fn route(&self) -> String {
        format!("{}/{}", self.category, self.resource)
    }
}
