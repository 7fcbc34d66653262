//! The servers a benchmark measures, run as child processes on loopback.
//!
//! A hive is this same binary (`cohesix up`) with a benchmark manifest and
//! a throw-away data directory; diod is Debian's 9P server serving its own
//! synthetic `ctl` tree. Running them as children keeps the server's memory
//! and CPU apart from the load generator's, so each can be read from /proc.
//!
//! Every child dies with the benchmark: [`ChildGuard`] stops it on drop
//! (errors included), and the kernel kills it if the benchmark itself is
//! killed (`PR_SET_PDEATHSIG`). Nothing here listens beyond 127.0.0.1.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server has to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server has to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often start-up and shutdown are polled.
const POLL: Duration = Duration::from_millis(50);
/// Bytes of a server's log kept in the evidence.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// A running child that is stopped when the guard goes away.
pub struct ChildGuard {
    name: &'static str,
    child: Child,
    stopped: bool,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the child has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited early: {status}", self.name),
            Err(e) => bail!("cannot watch {}: {e}", self.name),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    /// Returns how it ended, in words.
    pub fn stop(&mut self) -> String {
        if self.stopped {
            return "already stopped".to_string();
        }
        self.stopped = true;
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had exited: {status}");
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped, so
            // it cannot name another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return format!("exited on SIGTERM: {status}"),
                Ok(None) => std::thread::sleep(POLL),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        "killed after the SIGTERM grace period".to_string()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `cmd` so that it dies with this process, and guards it.
pub(super) fn spawn_guarded(name: &'static str, mut cmd: Command) -> anyhow::Result<ChildGuard> {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(ChildGuard {
        name,
        child,
        stopped: false,
    })
}

/// A hive started by a benchmark.
pub struct HiveChild {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    pub ticket: String,
    log: PathBuf,
    // Dropped after the guard (field order), so the hive is gone before
    // its data directory is removed.
    _dir: tempfile::TempDir,
}

impl HiveChild {
    /// The last [`LOG_TAIL_BYTES`] of the hive's stderr.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// Starts `cohesix up --workers 0` on a free loopback port with
/// `manifest_toml`, and waits for its banner and queen ticket.
pub fn start_hive(manifest_toml: &str) -> anyhow::Result<HiveChild> {
    let dir = tempfile::Builder::new()
        .prefix("cohesix-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(&manifest, manifest_toml).context("cannot write the bench manifest")?;
    let data_dir = dir.path().join("data");
    let log = dir.path().join("hive.log");
    let log_file = std::fs::File::create(&log).context("cannot create the hive log")?;

    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .args([
            "--workers",
            "0",
            "--ninep-listen",
            "127.0.0.1:0",
            "--console-listen",
            "",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--manifest")
        .arg(&manifest)
        .env("COHESIX_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    let mut guard = spawn_guarded("hive", cmd)?;

    let addr = wait_for_banner(&mut guard)
        .with_context(|| format!("hive did not come up; its log says:\n{}", log_tail(&log)))?;
    let ticket = std::fs::read_to_string(data_dir.join("queen.ticket"))
        .context("the hive wrote no queen ticket")?
        .trim()
        .to_string();
    Ok(HiveChild {
        guard,
        addr,
        ticket,
        log,
        _dir: dir,
    })
}

/// Reads the hive's stdout until its `secure9p <addr>` banner line; a
/// thread keeps draining stdout afterwards so the hive never blocks on it.
fn wait_for_banner(guard: &mut ChildGuard) -> anyhow::Result<SocketAddr> {
    let stdout = guard
        .child
        .stdout
        .take()
        .context("the hive's stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(addr) = banner_addr(&line) {
                    sent = tx.send(addr).is_ok();
                }
            }
        }
    });

    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        match rx.recv_timeout(POLL) {
            Ok(addr) => return Ok(addr),
            Err(mpsc::RecvTimeoutError::Timeout) => guard.check_alive()?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                guard.check_alive()?;
                bail!("the hive closed stdout without a secure9p line");
            }
        }
    }
    bail!("no secure9p banner within {START_TIMEOUT:?}")
}

/// `  secure9p  127.0.0.1:5640  (...)` → the address.
fn banner_addr(line: &str) -> Option<SocketAddr> {
    let mut words = line.split_whitespace();
    if words.next()? != "secure9p" {
        return None;
    }
    words.next()?.parse().ok()
}

/// diod started by a benchmark.
pub struct DiodChild {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DiodChild {
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// Starts `diod -f -n -l 127.0.0.1:<port> -e ctl` (foreground, no auth,
/// exporting only its synthetic ctl tree) and waits until it accepts.
pub fn start_diod(program: &Path) -> anyhow::Result<DiodChild> {
    let dir = tempfile::Builder::new()
        .prefix("cohesix-bench-diod-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let log = dir.path().join("diod.log");
    let log_file = std::fs::File::create(&log).context("cannot create the diod log")?;
    let addr = free_loopback_port()?;

    let mut cmd = Command::new(program);
    cmd.args(["-f", "-n", "-e", "ctl", "-L", "stderr", "-l"])
        .arg(addr.to_string())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let mut guard = spawn_guarded("diod", cmd).with_context(|| {
        format!(
            "is diod installed? (apt-get install -y diod; tried {})",
            program.display()
        )
    })?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        guard
            .check_alive()
            .with_context(|| format!("diod's log says:\n{}", log_tail(&log)))?;
        if TcpStream::connect_timeout(&addr, POLL).is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("diod did not accept on {addr} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(POLL);
    }
    Ok(DiodChild {
        guard,
        addr,
        log,
        _dir: dir,
    })
}

/// A loopback port that was free a moment ago. diod takes its port on the
/// command line, so there is a short window in which another process could
/// take it; start-up then fails loudly rather than measuring the wrong
/// server.
pub(super) fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?)
}

pub(super) fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::banner_addr;

    #[test]
    fn banner_line_gives_the_secure9p_address() {
        let line = "  secure9p  127.0.0.1:40123  (9P2000.L: uname=<role> aname=<ticket>)";
        assert_eq!(banner_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(banner_addr("  console   disabled"), None);
        assert_eq!(banner_addr("  secure9p  nonsense"), None);
    }
}
