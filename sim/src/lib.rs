//! exaid-sim: the madsim side of exaid's runtime seam, and the deterministic simulations
//! built on it.
//!
//! The daemon core (`exaid`) runs here unchanged: [`rt::SimRuntime`] gives it madsim's
//! virtual clock, task spawner and seeded randomness, and [`rt::SimListener`] gives it
//! simulated TCP. Simulated clients run on their own sim nodes and speak the real protocol
//! over simulated sockets, so a whole run replays exactly from one seed.

#[cfg(not(madsim))]
compile_error!(
    "exaid-sim must be built with `--cfg madsim` (set in .cargo/config.toml); without it the \
     \"simulations\" would silently run on real tokio"
);

pub mod client;
pub mod fs;
pub mod hostile;
pub mod inspect;
pub mod isolate;
pub mod journal;
pub mod mcp;
pub mod observer;
pub mod provider;
mod restart;
pub mod rt;
pub mod run;
pub mod scenario;
pub mod store;
pub mod sweep;
