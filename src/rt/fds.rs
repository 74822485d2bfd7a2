//! The open-file limit, raised at start-up (production side of the seam; `operator::fds`
//! shares what it gives out between the two ports).
//!
//! Why: Linux starts a process at a soft limit of 1024 descriptors whatever its hard limit,
//! and every socket is one. Left there, 1,100 silent sockets to the HTTP port made accept
//! fail on both ports.

/// The open-file limit before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit (the most an unprivileged process may ask for).
    pub hard: u64,
}

/// Raise the soft open-file limit to `wanted`, within the hard limit (never lowering it).
pub fn raise_open_files(wanted: u64) -> Result<OpenFiles, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let before = limit.rlim_cur;
    let want = limit.rlim_max.min(wanted.max(limit.rlim_cur));
    if want > limit.rlim_cur {
        limit.rlim_cur = want;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(OpenFiles {
        before,
        now: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_limit() {
        let first = raise_open_files(0).unwrap();
        assert_eq!(first.before, first.now);
        assert!(first.now <= first.hard);
    }
}
