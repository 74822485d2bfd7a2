//! What an operator sees: the HTTP port's routes (`/healthz`, `/readyz`, `/status`,
//! `/metrics`, and the mount point of `/mcp`) and its limits, the Prometheus metrics, and the
//! sharing of the open-file limit between the two ports (`fds`).
//!
//! Why a folder apart from the core: these read the daemon's state and never change it; the
//! core only tells them what happens through the `Observer` hooks (`observe`), so the core
//! imports nothing from here.

pub mod fds;
pub mod http;
pub mod metrics;
