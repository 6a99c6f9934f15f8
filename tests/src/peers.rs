//! Finding and running the real peers (tests/interop/*.py, *.mjs).
//!
//! The peers are found through environment variables, which `scripts/test.sh` sets when they are
//! installed: `WS_INTEROP_PYTHON` (a python3 with `websockets` and `websocket-client`) and
//! `WS_INTEROP_NODE_DIR` (tests/interop with its node_modules). With `CI=true` a missing peer
//! FAILS the test; locally the test prints what to install and passes without running.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Whether we run under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

fn from_env(var: &str, install: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if in_ci() {
                panic!(
                    "{var} is not set and CI=true: real-peer tests must not be skipped \
                     ({install}; scripts/test.sh sets {var} when the peer is installed)"
                );
            }
            eprintln!("SKIPPED: {var} is not set ({install}; or run through scripts/test.sh)");
            None
        }
    }
}

/// The python3 that has `websockets` and `websocket-client`, if configured.
pub fn python() -> Option<String> {
    from_env(
        "WS_INTEROP_PYTHON",
        "pip install -r tests/interop/requirements.txt, then WS_INTEROP_PYTHON=$(which python3)",
    )
}

/// tests/interop with node_modules/ws in it, if configured.
pub fn node_dir() -> Option<PathBuf> {
    from_env(
        "WS_INTEROP_NODE_DIR",
        "cd tests/interop && npm ci, then WS_INTEROP_NODE_DIR=$PWD",
    )
    .map(PathBuf::from)
}

/// tests/interop in this checkout (the Python scripts live there).
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// What a peer process did.
#[derive(Debug)]
pub struct PeerRun {
    /// The command line, for messages.
    pub command: String,
    /// Exit status code (None: killed by a signal or by us).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl PeerRun {
    /// Exit 0 with a last stdout line starting with "OK".
    pub fn ok(&self) -> bool {
        self.code == Some(0)
            && self
                .stdout
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("OK"))
    }

    /// Whether a `STEP <name> ok` line was printed.
    pub fn step_ok(&self, name: &str) -> bool {
        let prefix = format!("STEP {name} ok");
        self.stdout.lines().any(|l| l.starts_with(&prefix))
    }

    /// A readable report.
    pub fn report(&self) -> String {
        format!(
            "$ {}\nexit: {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a peer to completion (the scripts have their own watchdogs; this one is a backstop that
/// kills the process we started after `limit`).
pub fn run(mut cmd: Command, limit: Duration) -> PeerRun {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(limit).is_err() {
        // Only the process this function started, by its id.
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
    let status = waiter.join().expect("waiter thread").ok();
    PeerRun {
        command,
        code: status.and_then(|s| s.code()),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// `python3 tests/interop/py_client.py URL ARGS...`.
pub fn py_client(python: &str, url: &str, args: &[&str]) -> PeerRun {
    let mut cmd = Command::new(python);
    cmd.arg(interop_dir().join("py_client.py"))
        .arg(url)
        .args(args);
    run(cmd, Duration::from_secs(60))
}

/// `node $WS_INTEROP_NODE_DIR/node_client.mjs URL ARGS...`.
pub fn node_client(node_dir: &std::path::Path, url: &str, args: &[&str]) -> PeerRun {
    let mut cmd = Command::new("node");
    cmd.arg(node_dir.join("node_client.mjs"))
        .arg(url)
        .args(args);
    run(cmd, Duration::from_secs(60))
}

/// A peer server process (py_server.py / node_server.mjs) that announced its port.
pub struct PeerServer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    command: String,
    pid: u32,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
    waiter: std::thread::JoinHandle<Option<std::process::ExitStatus>>,
    exited: mpsc::Receiver<()>,
    _dir: TempDir,
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory named after `what`.
    pub fn new(what: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ws-tests-{what}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl PeerServer {
    /// Starts `program script PORT_FILE args...` and waits (bounded) for its `LISTENING <port>`
    /// line on stdout.
    pub fn start(program: &str, script: PathBuf, args: &[&str]) -> PeerServer {
        let dir = TempDir::new("peer-server");
        let mut cmd = Command::new(program);
        cmd.arg(script)
            .arg(dir.0.join("port"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (done, exited) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait().ok();
            let _ = done.send(());
            status
        });
        let mut server = PeerServer {
            port: 0,
            command,
            pid,
            lines,
            stdout: Vec::new(),
            stderr,
            waiter,
            exited,
            _dir: dir,
        };
        loop {
            match server.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    let port = line
                        .strip_prefix("LISTENING ")
                        .and_then(|p| p.trim().parse().ok());
                    server.stdout.push(line);
                    if let Some(port) = port {
                        server.port = port;
                        return server;
                    }
                }
                Err(_) => {
                    let run = server.finish(Duration::from_secs(5));
                    panic!("peer server did not announce its port:\n{}", run.report());
                }
            }
        }
    }

    /// `ws://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (bounded; then kills the process we started) for the server to exit.
    pub fn finish(self, limit: Duration) -> PeerRun {
        if self.exited.recv_timeout(limit).is_err() {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(self.pid.to_string())
                .status();
        }
        let status = self.waiter.join().ok().flatten();
        let mut stdout = self.stdout;
        stdout.extend(self.lines.iter());
        PeerRun {
            command: self.command,
            code: status.and_then(|s| s.code()),
            stdout: stdout.iter().map(|l| format!("{l}\n")).collect(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}
