//! Where an effective value came from.

use std::fmt;
use std::path::PathBuf;

/// Where an effective value came from, so operators can tell which layer to edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default from the key table.
    Default,
    /// The TOML config file at this path.
    File(PathBuf),
    /// The dotenv file at this path.
    DotEnv(PathBuf),
    /// The process environment.
    Env,
    /// A command-line flag (`--port`, `--set KEY=VALUE`, ...).
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::DotEnv(p) => write!(f, "dotenv file {}", p.display()),
            Source::Env => f.write_str("environment"),
            Source::Flag => f.write_str("flag"),
        }
    }
}
