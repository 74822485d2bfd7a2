//! Browser origins (`scheme://host[:port]`, RFC 6454): the ones the HTTP port serves.
//!
//! Why: a web page the user visits can reach a daemon on loopback through DNS rebinding; the
//! browser then sends that page's `Origin`. The MCP specification (2025-11-25, transports)
//! says a server MUST answer 403 to an invalid `Origin`. Loopback origins are exaid's own
//! (an editor's webview, a local tool); `EXAI_HTTP_ALLOWED_ORIGINS` names more.
//!
//! Parsing is pure and kept here, below every layer that uses it: the configuration checks
//! each configured origin with it, and the HTTP port classifies each request's header.

use std::fmt;
use std::net::IpAddr;

/// Longest origin accepted, in bytes: a scheme, a DNS name (253) and a port.
pub const ORIGIN_BYTES_MAX: usize = 300;

/// One origin: scheme, host and port, all lower case, the port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    scheme: String,
    /// A DNS name, an IPv4 address, or an IPv6 address without its brackets.
    host: String,
    /// The port, the scheme's default when the text names none.
    port: u16,
}

impl Origin {
    /// Parse `text` as an origin, or say what is wrong with it.
    pub fn parse(text: &str) -> Result<Origin, String> {
        if text.len() > ORIGIN_BYTES_MAX {
            return Err(format!("longer than {ORIGIN_BYTES_MAX} bytes"));
        }
        let lower = text.trim().to_ascii_lowercase();
        let (scheme, rest) = lower
            .split_once("://")
            .ok_or_else(|| "no scheme (expected http://host or https://host)".to_string())?;
        let port_default = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("scheme {scheme:?} is not http or https")),
        };
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '@'])
            || rest.contains(char::is_whitespace)
        {
            return Err(
                "an origin is scheme://host[:port], with no path, query or user".to_string(),
            );
        }
        let (host, port) = split_port(rest)?;
        if host.is_empty() {
            return Err("no host".to_string());
        }
        Ok(Origin {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port: port.unwrap_or(port_default),
        })
    }

    /// A loopback origin: `localhost` (and its subdomains, which resolve to loopback),
    /// `127.0.0.0/8` or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// `host[:port]` or `[v6][:port]` into host and port.
fn split_port(rest: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| "an IPv6 host lacks its closing ]".to_string())?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("[{host}] is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| "text after the IPv6 host".to_string())?,
                ),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {port:?} is not 1 to 65535"))?,
        ),
    };
    Ok((host, port))
}

/// What the HTTP port makes of a request's `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    /// No header (not a browser), a loopback origin, or a configured one.
    Allowed,
    /// Any other origin, `null` included, or a header that is no origin: 403, with why.
    Forbidden(String),
}

/// The extra origins as configured (`EXAI_HTTP_ALLOWED_ORIGINS`, each checked when the
/// configuration was read), for [`check`].
pub fn allowed(texts: &[String]) -> Vec<Origin> {
    texts
        .iter()
        .map(|text| Origin::parse(text).expect("origins are checked when configured"))
        .collect()
}

/// Classify a request's `Origin` header (`None`: absent) against the configured extras.
pub fn check(header: Option<&str>, allowed: &[Origin]) -> OriginCheck {
    let Some(text) = header else {
        return OriginCheck::Allowed;
    };
    match Origin::parse(text) {
        Ok(origin) if origin.is_loopback() || allowed.contains(&origin) => OriginCheck::Allowed,
        Ok(origin) => OriginCheck::Forbidden(format!(
            "origin {origin} is not allowed: only loopback origins and EXAI_HTTP_ALLOWED_ORIGINS may call this port"
        )),
        Err(why) => {
            OriginCheck::Forbidden(format!("the Origin header {text:?} is no origin: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_with_their_default_ports_and_refuse_what_is_not_one() {
        let origin = Origin::parse("HTTPS://App.Example.com").unwrap();
        assert_eq!(origin.to_string(), "https://app.example.com:443");
        assert_eq!(
            Origin::parse("http://[::1]:5173").unwrap().to_string(),
            "http://[::1]:5173"
        );
        for bad in [
            "app.example.com",
            "ftp://x",
            "http://",
            "http://x/path",
            "http://u@x",
            "http://x:0",
            "http://x:99999",
            "http://[zz]",
            "null",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_and_configured_origins_pass_and_every_other_is_forbidden() {
        let extra = [Origin::parse("https://app.example.com").unwrap()];
        for ok in [
            None,
            Some("http://localhost:3000"),
            Some("http://127.0.0.1"),
            Some("http://[::1]:8080"),
            Some("http://vite.localhost:5173"),
            Some("https://app.example.com:443"),
        ] {
            assert_eq!(check(ok, &extra), OriginCheck::Allowed, "{ok:?}");
        }
        for foreign in [
            "http://evil.example",
            "https://app.example.com:8443",
            "http://app.example.com",
            "null",
            "http://localhost.evil.example",
        ] {
            assert!(
                matches!(check(Some(foreign), &extra), OriginCheck::Forbidden(_)),
                "{foreign}"
            );
        }
    }
}
