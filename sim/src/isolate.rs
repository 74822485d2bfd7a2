//! Running each simulation on a fresh OS thread.
//!
//! Why: thread-local generators (rand's `ThreadRng`, used by tungstenite for handshake keys,
//! and std's `HashMap` keys) seed themselves from entropy on their first use in a thread. Under
//! madsim that entropy is drawn from the simulation's seeded generator, so the first run on a
//! thread consumes draws that a second run on the same thread does not, and one seed would give
//! two timelines. A fresh thread per run makes every run start from the same state (this was
//! found by the determinism test on its first run).

/// Run `f` on a new thread; a panic inside comes back as its message.
pub fn on_fresh_thread_catching<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name("exaid-sim".to_string())
        .spawn(f)
        .expect("spawn a simulation thread")
        .join()
        .map_err(|panic| {
            if let Some(text) = panic.downcast_ref::<&str>() {
                (*text).to_string()
            } else if let Some(text) = panic.downcast_ref::<String>() {
                text.clone()
            } else {
                "panic with a non-text payload".to_string()
            }
        })
}

/// Run `f` on a new thread and return its result; a panic inside is re-raised here.
pub fn on_fresh_thread<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match std::thread::Builder::new()
        .name("exaid-sim".to_string())
        .spawn(f)
        .expect("spawn a simulation thread")
        .join()
    {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
