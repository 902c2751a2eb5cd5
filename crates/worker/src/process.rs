//! The worker process and its JSON-lines protocol.

use crate::protocol::{self, Request};
use crate::{MODEL_SOURCE, WORKER_SOURCE};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;
use thiserror::Error;

/// Kills the worker process `pid` from another thread than its owner's (whose request then
/// fails as the process's death): how the reference pool and the warm workers end the calls
/// running when timing begins.
pub fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

#[derive(Debug, Error)]
pub enum WorkerError {
    /// The user's harness is at fault (missing `fn`, bad `input_factory`, ...).
    #[error("{0}")]
    Harness(String),
    /// MLX cannot trace the function; nothing is wrong with the harness.
    #[error("{0}")]
    Unsupported(String),
    /// A candidate program failed; the worker is still usable.
    #[error("{0}")]
    Candidate(String),
    /// The worker died; it has been restarted.
    #[error("the worker {0}; it was restarted")]
    Crashed(String),
    /// The worker outlived the request's timeout; it has been restarted.
    #[error("the worker {0}; it was restarted")]
    TimedOut(String),
    /// A worker started without restarts died or hung; it is gone.
    #[error("the worker {0}; it was stopped")]
    Stopped(String),
    /// A reply that does not parse as the command's reply type.
    #[error("bad {} reply: {why}", command.name())]
    BadReply { command: protocol::Command, why: String },
    #[error("worker error: {0}")]
    Internal(String),
}

pub struct Worker {
    python: PathBuf,
    /// Environment variables the process starts with (and restarts with).
    env: Vec<(String, String)>,
    /// Whether a worker that dies or hangs is started again (or only stopped).
    restarts: bool,
    script: PathBuf,
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
    log: tempfile_log::Log,
    /// Requests that rebuild the worker's state after a restart.
    replay: Vec<(String, Json)>,
}

mod tempfile_log {
    //! The worker's stderr goes to a file so the harness's prints stay off the terminal.
    use std::fs::File;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Log {
        pub path: PathBuf,
    }

    impl Log {
        pub fn create(dir: &std::path::Path) -> std::io::Result<(Log, File)> {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("worker-{}-{n}.log", std::process::id()));
            let f = File::create(&path)?;
            Ok((Log { path }, f))
        }

        pub fn tail(&self, lines: usize) -> String {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
    }
}

fn script_path() -> std::io::Result<PathBuf> {
    let mut hash = Sha256::new();
    hash.update(WORKER_SOURCE.as_bytes());
    hash.update(MODEL_SOURCE.as_bytes());
    let hash = format!("{:x}", hash.finalize());
    let root = dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("superopt");
    let dir = root.join(format!("worker-{}", &hash[..12]));
    let path = dir.join("superopt_worker.py");
    if !path.exists() {
        // Written whole in a folder of its own, then moved into place: a worker never
        // starts beside half a file.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let tmp = root.join(format!(".worker-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        std::fs::write(tmp.join("superopt_model.py"), MODEL_SOURCE)?;
        std::fs::write(tmp.join("superopt_worker.py"), WORKER_SOURCE)?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !path.exists() {
                return Err(e); // not another superopt writing it first
            }
        }
    }
    Ok(path)
}

type Spawned = (Child, ChildStdin, Receiver<String>, tempfile_log::Log);

fn spawn(python: &Path, script: &Path, env: &[(String, String)]) -> std::io::Result<Spawned> {
    let (log, log_file) = tempfile_log::Log::create(script.parent().unwrap())?;
    let mut child = Command::new(python)
        .arg("-u")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()?;
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, stdin, rx, log))
}

impl Worker {
    pub fn start(python: &Path) -> Result<Worker, WorkerError> {
        Worker::start_with(python, vec![], true)
    }

    /// The worker process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A worker whose process gets `env`; without `restarts`, one that dies or hangs is
    /// only stopped ([`WorkerError::Stopped`]).
    pub fn start_with(python: &Path, env: Vec<(String, String)>, restarts: bool) -> Result<Worker, WorkerError> {
        let script =
            script_path().map_err(|e| WorkerError::Internal(format!("cannot write the worker script: {e}")))?;
        let (child, stdin, replies, log) = spawn(python, &script, &env)
            .map_err(|e| WorkerError::Internal(format!("cannot start {}: {e}", python.display())))?;
        let python = python.to_path_buf();
        Ok(Worker { python, env, restarts, script, child, stdin, replies, log, replay: vec![] })
    }

    /// The Python the worker runs on.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Sends `req` and waits up to `timeout` for the reply's `result`.
    fn request(&mut self, req: Json, timeout: Duration) -> Result<Json, WorkerError> {
        let line = serde_json::to_string(&req).unwrap();
        if writeln!(self.stdin, "{line}").and_then(|_| self.stdin.flush()).is_err() {
            return Err(self.restart("exited", WorkerError::Crashed));
        }
        let reply = match self.replies.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.restart(&format!("took longer than {}s", timeout.as_secs()), WorkerError::TimedOut))
            }
            Err(RecvTimeoutError::Disconnected) => return Err(self.restart("exited", WorkerError::Crashed)),
        };
        let reply: Json =
            serde_json::from_str(&reply).map_err(|e| WorkerError::Internal(format!("bad reply {reply:?}: {e}")))?;
        if reply["ok"].as_bool() == Some(true) {
            return Ok(reply["result"].clone());
        }
        let msg = reply["message"].as_str().unwrap_or("no message").to_string();
        Err(match reply["kind"].as_str() {
            Some("harness") => WorkerError::Harness(msg),
            Some("candidate") => WorkerError::Candidate(msg),
            Some("unsupported") => WorkerError::Unsupported(msg),
            _ => WorkerError::Internal(format!("{msg}\n{}", reply["trace"].as_str().unwrap_or(""))),
        })
    }

    /// Sends a typed request and waits up to `timeout` for its reply.
    pub fn call<R: Request>(&mut self, req: &R, timeout: Duration) -> Result<R::Reply, WorkerError> {
        let reply = self.request(wire(req), timeout)?;
        parse::<R>(reply)
    }

    /// A request that must be replayed after a restart (loading the harness, a program),
    /// kept under `key`: a later one of the same key replaces it.
    pub fn stateful<R: Request>(&mut self, key: &str, req: &R, timeout: Duration) -> Result<R::Reply, WorkerError> {
        let line = wire(req);
        let out = self.request(line.clone(), timeout)?;
        self.replay.retain(|(k, _)| k != key);
        self.replay.push((key.to_string(), line));
        parse::<R>(out)
    }

    /// Kills and restarts the worker after it `what`; the error to return, made by `why`
    /// (a crash or a timeout) once the restart has worked.
    fn restart(&mut self, what: &str, why: fn(String) -> WorkerError) -> WorkerError {
        let tail = self.log.tail(8);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.restarts {
            return WorkerError::Stopped(what.to_string());
        }
        match spawn(&self.python, &self.script, &self.env) {
            Ok((child, stdin, replies, log)) => {
                (self.child, self.stdin, self.replies, self.log) = (child, stdin, replies, log);
            }
            Err(e) => return WorkerError::Internal(format!("the worker {what} and could not be restarted: {e}")),
        }
        for (_, req) in self.replay.clone() {
            if let Err(e) = self.request(req, Duration::from_secs(600)) {
                return WorkerError::Internal(format!(
                    "the worker {what}; replaying its state after the restart failed: {e}"
                ));
            }
        }
        let detail =
            if tail.is_empty() { String::new() } else { format!(" (last output: {})", tail.replace('\n', " | ")) };
        why(format!("{what}{detail}"))
    }
}

/// A request as its JSON line's object: its fields and `cmd`.
fn wire<R: Request>(req: &R) -> Json {
    let mut v = serde_json::to_value(req).expect("requests serialize");
    v["cmd"] = json!(R::COMMAND.name());
    v
}

fn parse<R: Request>(reply: Json) -> Result<R::Reply, WorkerError> {
    serde_json::from_value(reply).map_err(|e| WorkerError::BadReply { command: R::COMMAND, why: e.to_string() })
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log.path);
    }
}
