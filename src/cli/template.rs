//! `fepd template`: write a dataset's Excel template.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::Exit;
use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset whose schema the template is built from.
    #[arg(long)]
    dataset: String,
    /// Where to write it (default: `<dataset>.xlsx` in the current folder).
    #[arg(long, value_name = "FILE.xlsx")]
    out: Option<PathBuf>,
}

pub fn run(cfg: Config, a: &Args) -> anyhow::Result<Exit> {
    let loaded = crate::config::load(cfg)?;
    let Some(schema) = loaded.schema(&a.dataset) else {
        anyhow::bail!("unknown dataset {:?} (no schema loaded for it)", a.dataset);
    };
    let bytes = crate::template::build(&schema)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.xlsx", a.dataset)));
    std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: 数据集「{}」（{}）的填报模板",
        out.display(),
        schema.title,
        schema.name
    );
    Ok(Exit::Ok)
}
