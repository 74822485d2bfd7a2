//! The retry policy and provider cooldowns: how a call treats a provider that says "not now".
//!
//! Why here, in the core: the seed incident's trigger was a provider answering 429 while a tool
//! waited 300 s. The policy is runtime-agnostic so the simulator exercises exactly the code
//! production runs:
//! - a 429 with retry-after is honored exactly, and puts the provider in cooldown for every
//!   call, so a storm is not multiplied by the number of waiting calls;
//! - other retryable errors back off exponentially with jitter from the seeded generator;
//! - a pause that would not fit in what is left of the call's deadline ends the call now
//!   (`RATE_LIMITED` with `retry_after_secs`), instead of sleeping into a timeout;
//! - attempts are bounded.
//!
//! Where: [`policy`] is the arithmetic (how many attempts, how long a backoff), [`cooldown`]
//! the per-provider "not before" instant, and [`handle`] the loop that applies them to one
//! call's attempts, through a [`handle::ProviderHandle`] bound to the provider whose permit
//! the call holds.

pub mod budget;
pub mod cooldown;
pub mod daily;
pub mod handle;
pub mod policy;

pub use cooldown::Cooldown;
pub use policy::{Jitter, RetryPolicy};
