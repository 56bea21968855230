//! The `confab` binary run as a child process, for the tests of what an operator sees and of
//! faults (kill -9, a full disk).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::common::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_confab");

/// A server process, killed (SIGKILL) when dropped so a failing test leaves no orphan.
pub struct Server(pub Child);

impl Server {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Sends SIGTERM: the graceful stop an operator or a supervisor asks for.
    pub fn terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits for the process to exit, off the test's runtime.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::task::spawn_blocking(move || self.0.wait())
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `confab serve` and reads the port from its banner.
pub fn serve(args: &[&str]) -> (Server, String) {
    let (child, base, _) = serve_with_banner(args);
    (child, base)
}

/// Starts `confab serve`; returns the process, the http base URL and the whole banner.
pub fn serve_with_banner(args: &[&str]) -> (Server, String, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args([
            "--http-port",
            "0",
            "--https-port",
            "0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        // `  https : https://…/      http: http://…/` (or `  http : http://…/` with --no-tls)
        if !line.contains("connection string") {
            if let Some(i) = line.find("http://") {
                let url = line[i..].split_whitespace().next().unwrap_or_default();
                base = Some(url.trim_end_matches('/').to_string());
                break;
            }
        }
    }
    assert!(banner.contains("confab "), "{banner}");
    assert!(banner.contains("endpoint=https://127.0.0.1:"), "{banner}");
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("resourceId:") {
            break;
        }
    }
    // keep draining stdout so the child never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    (
        Server(child),
        base.expect("banner prints the http address"),
        banner,
    )
}

pub fn app_for(base: &str, dir: tempfile::TempDir) -> TestApp {
    TestApp {
        base: base.to_string(),
        https: None,
        ca: None,
        admin: String::new(),
        client: reqwest::Client::new(),
        key: DEV_KEY.to_string(),
        resource_id: String::new(),
        db_url: String::new(),
        _dir: dir,
        stop: None,
    }
}
