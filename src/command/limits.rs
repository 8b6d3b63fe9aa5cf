//! The open-file limit: raising it as far as allowed, and refusing a run that cannot fit
//! under it. Shared by `wsoak run` and `wsoak serve`.

use anyhow::bail;

/// Raises the open-file limit as far as allowed, and refuses a run that cannot fit.
pub(crate) fn ensure_open_files(needed: u64, embedded: bool) -> anyhow::Result<()> {
    let limit = raise_open_files_limit();
    if let Some(limit) = limit {
        if needed > limit {
            let hint = if embedded {
                "The embedded server's sockets count too: run `wsoak serve` separately and \
                 pass --target, or raise the limit (ulimit -n)."
            } else {
                "Raise the limit (ulimit -n), or split the load over several processes."
            };
            bail!(
                "this run needs about {needed} open files but this process may open {limit}. {hint}"
            );
        }
    }
    Ok(())
}

/// Sets the soft open-file limit to the hard limit; returns the limit now in force.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
