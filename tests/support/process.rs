//! The real `skerry` binary as a child process (`skerry run -c FILE`), for
//! tests that kill it (`kill -9`), stop it (SIGTERM) and start it again on
//! the same data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::skerry_bin;

/// A running `skerry run`.
pub struct SkerryProcess {
    child: Child,
    /// Where its MQTT listener is.
    pub addr: SocketAddr,
    /// Its standard error: the log.
    log: PathBuf,
}

/// A free port on 127.0.0.1 (for a program that wants a number).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl SkerryProcess {
    /// Starts `skerry run -c config` and waits until `addr` accepts connections.
    pub async fn start(config: &Path, addr: SocketAddr) -> SkerryProcess {
        let log = config.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(skerry_bin())
            .arg("run")
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn skerry run");
        let mut p = SkerryProcess { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = p.child.try_wait().expect("try_wait") {
                panic!("skerry run exited with {status}; log:\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "skerry run did not listen on {addr} within 60s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// `kill -9`: no shutdown of any kind.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "skerry run did not exit within 60s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SkerryProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
