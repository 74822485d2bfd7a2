//! Sharing the open-file limit between the two ports.
//!
//! Why: a socket is a descriptor, and once the process runs out, accept fails on both ports
//! at once. At start-up (after `rt::fds` raised the soft limit toward the hard one) both
//! ports' connection limits, with a reserve for the state file, provider sockets and logs,
//! must fit in the limit; if they do not they are lowered to fit, in proportion and with a
//! warning naming the keys, so that a flood on one port can never starve the other.

use crate::config::{Config, key};

/// Descriptors both ports may use at their limits, the reserve included.
pub fn descriptors_needed(config: &Config) -> u64 {
    let ws = u64::from(config.connections.connections_max)
        + u64::from(config.connections.pending_hellos_max);
    let http = if config.server.http_port == 0 {
        0
    } else {
        u64::from(config.server.http_connections_max)
    };
    ws + http + u64::from(config.server.fd_reserve)
}

/// Lower the ports' connection limits to fit in `open_files` descriptors, in proportion, and
/// say what was lowered. `None`: they fit as configured.
pub fn fit_connection_limits(config: &mut Config, open_files: u64) -> Option<String> {
    let needed = descriptors_needed(config);
    if needed <= open_files {
        return None;
    }
    let reserve = u64::from(config.server.fd_reserve);
    let room = open_files.saturating_sub(reserve).max(3);
    let scale = |value: u32| -> u32 {
        let scaled = u64::from(value) * room / (needed - reserve).max(1);
        scaled.clamp(1, u64::from(value)) as u32
    };
    let connections = &mut config.connections;
    connections.connections_max = scale(connections.connections_max);
    connections.pending_hellos_max = scale(connections.pending_hellos_max);
    config.server.http_connections_max = scale(config.server.http_connections_max);
    assert!(descriptors_needed(config) <= open_files.max(reserve + 3));
    Some(format!(
        "the open-file limit is {open_files} but the connection limits need {needed} with {}={reserve} kept in reserve; \
         lowered to {}={}, {}={}, {}={} (raise the hard limit, ulimit -Hn, or lower them yourself)",
        key::EXAI_FD_RESERVE,
        key::EXAI_WS_MAX_CONNECTIONS,
        config.connections.connections_max,
        key::EXAI_WS_MAX_PENDING_HELLOS,
        config.connections.pending_hellos_max,
        key::EXAI_HTTP_MAX_CONNECTIONS,
        config.server.http_connections_max,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_fit_are_left_alone_and_others_are_lowered_in_proportion() {
        let mut config = Config::defaults();
        let needed = descriptors_needed(&config);
        assert_eq!(needed, 1000 + 64 + 256 + 128);
        assert_eq!(fit_connection_limits(&mut config, needed), None);
        let warning = fit_connection_limits(&mut config, 1024).expect("1024 is too few");
        assert!(warning.contains("EXAI_WS_MAX_CONNECTIONS="), "{warning}");
        assert!(descriptors_needed(&config) <= 1024, "{config:?}");
        assert!(config.connections.connections_max > config.server.http_connections_max);
        assert!(config.connections.pending_hellos_max >= 1);
    }
}
