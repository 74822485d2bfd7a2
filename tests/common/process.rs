//! The real `exaid` binary as a separate process, the way a user starts it.

use std::path::Path;
use std::process::{Child, Command};

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_exaid");

/// Kills the daemon (SIGKILL: no shutdown, no flush) when the test ends, pass or fail.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `exaid` with a clean environment: `home` as HOME and working folder, PATH, warnings only.
pub fn exaid_command(home: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    command
}

/// Send SIGTERM (a graceful shutdown).
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Wait (10 s at most) for the process to exit.
pub async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("the daemon did not exit after SIGTERM");
}
