//! Which config file a command uses: `--config`, then `FEPD_CONFIG`, then
//! `./config/fepd.toml`, then `/etc/fepd/fepd.toml`.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// The config looked for in the working directory, then system-wide.
pub const LOCAL_CONFIG: &str = "./config/fepd.toml";
pub const SYSTEM_CONFIG: &str = "/etc/fepd/fepd.toml";

/// Where the config file in use was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Flag,
    Env,
    WorkingDir,
    System,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigSource::Flag => "--config",
            ConfigSource::Env => "FEPD_CONFIG",
            ConfigSource::WorkingDir => "the working directory",
            ConfigSource::System => "the system default",
        })
    }
}

/// The config file to use: `--config`, then `FEPD_CONFIG`, then
/// `./config/fepd.toml`, then `/etc/fepd/fepd.toml` (the first two are
/// taken as given, even if missing, so a typo is reported, not skipped).
pub fn locate(
    flag: Option<&Path>,
    env: Option<std::ffi::OsString>,
) -> Result<(PathBuf, ConfigSource), ConfigError> {
    if let Some(p) = flag {
        return Ok((p.to_owned(), ConfigSource::Flag));
    }
    if let Some(p) = env.filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(p), ConfigSource::Env));
    }
    for (p, src) in [
        (LOCAL_CONFIG, ConfigSource::WorkingDir),
        (SYSTEM_CONFIG, ConfigSource::System),
    ] {
        if Path::new(p).exists() {
            return Ok((PathBuf::from(p), src));
        }
    }
    Err(ConfigError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_variable_even_when_missing() {
        let (p, s) = locate(Some(Path::new("/x/a.toml")), Some("/y/b.toml".into())).unwrap();
        assert_eq!(
            (p.as_path(), s),
            (Path::new("/x/a.toml"), ConfigSource::Flag)
        );
        let (p, s) = locate(None, Some("/y/b.toml".into())).unwrap();
        assert_eq!(
            (p.as_path(), s),
            (Path::new("/y/b.toml"), ConfigSource::Env)
        );
        // An empty FEPD_CONFIG counts as unset.
        match locate(None, Some("".into())) {
            Ok((_, s)) => assert_ne!(s, ConfigSource::Env),
            Err(e) => assert!(e.to_string().contains("FEPD_CONFIG not set"), "{e}"),
        }
    }
}
