//! Where files may be read from: the configured roots, and the lexical checks made before
//! the file system is asked anything.
//!
//! Why lexical first: a path outside the roots is refused before it is resolved, so the
//! answer never reveals whether a file outside the roots exists.

use std::path::{Component, Path, PathBuf};

use crate::rt::FileSystem;

/// `path` with `.` dropped and `..` applied to the components before it, without asking the
/// file system (links are not followed: that is the file system's `canonicalize`).
pub fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The roots, both as configured and as resolved by the file system (a root may itself be
/// reached through a link, like a home folder on another disk).
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// As configured, normalised: what a named path is compared with before resolution.
    named: Vec<PathBuf>,
    /// Resolved: what a resolved path must lie under. A root that does not exist is absent.
    resolved: Vec<PathBuf>,
}

impl Roots {
    /// Resolve each configured root once per call.
    pub async fn resolve(fs: &dyn FileSystem, roots: &[PathBuf]) -> Roots {
        let mut out = Roots::default();
        for root in roots {
            assert!(root.is_absolute(), "roots are validated absolute: {root:?}");
            out.named.push(normalise(root));
            if let Ok(real) = fs.canonicalize(root).await {
                out.resolved.push(real);
            }
        }
        out
    }

    /// Whether a normalised, not yet resolved path lies under a root as named or resolved.
    pub fn admits_named(&self, path: &Path) -> bool {
        self.named.iter().any(|root| path.starts_with(root)) || self.admits_resolved(path)
    }

    /// Whether a resolved path lies under a resolved root: the rule every read obeys.
    pub fn admits_resolved(&self, path: &Path) -> bool {
        self.resolved.iter().any(|root| path.starts_with(root))
    }
}
