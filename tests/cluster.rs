//! Real `agent-registry` processes, and a TCP proxy that cuts a process off from a backend.

use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Http, bootstrap_args};

/// A running `agent-registry` binary, killed when dropped.
pub struct Replica {
    child: Child,
    http: Http,
    log: NamedTempFile,
}

impl std::ops::Deref for Replica {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl std::ops::DerefMut for Replica {
    fn deref_mut(&mut self) -> &mut Http {
        &mut self.http
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log file, opened for appending (stdout and stderr share it without overwriting).
fn append_to(log: &NamedTempFile) -> std::fs::File {
    std::fs::OpenOptions::new().append(true).open(log.path()).expect("log file")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// Accepts connections and never answers: a broker that hangs.
pub async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let (port, _, holding) = counting_silent_server().await;
    (port, holding)
}

/// A silent server that counts the connections it accepted, to tell a retry from none.
pub async fn counting_silent_server() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted, holding)
}

impl Replica {
    /// Starts the binary with `args` on a free port; returns once it answers `/healthz` (it
    /// may not be ready yet: see `wait_ready`).
    pub async fn launch(args: &[&str]) -> Self {
        Self::launch_limited(args, None).await
    }

    /// Starts the binary, ready and with an Admin key, allowed `fd_limit` open files.
    pub async fn start_with_fd_limit(fd_limit: u32, args: &[&str]) -> Self {
        let mut replica = Self::launch_limited(args, Some(fd_limit)).await;
        replica.wait_ready().await;
        replica.http.bootstrap().await;
        replica
    }

    async fn launch_limited(args: &[&str], fd_limit: Option<u32>) -> Self {
        let port = free_port();
        let log = NamedTempFile::new().expect("log file");
        let binary = env!("CARGO_BIN_EXE_agent-registry");
        // The shell lowers the limit and becomes the binary (same process id).
        let mut command = match fd_limit {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), binary]);
                shell
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(if args.contains(&"--log") { &[][..] } else { &["--log", "warn"][..] })
            .args(bootstrap_args())
            .args(args)
            .stdout(append_to(&log))
            .stderr(append_to(&log))
            .spawn()
            .expect("binary starts");
        let replica = Self { child, http: Http::new(format!("http://127.0.0.1:{port}")), log };
        replica.wait_for("/healthz", Duration::from_secs(20)).await;
        replica
    }

    /// Starts the binary, waits until it is ready and gives it an Admin key of its own.
    pub async fn start(args: &[&str]) -> Self {
        let mut replica = Self::launch(args).await;
        replica.wait_ready().await;
        replica.http.bootstrap().await;
        replica
    }

    pub async fn wait_ready(&self) {
        self.wait_for("/readyz", Duration::from_secs(20)).await;
    }

    async fn wait_for(&self, path: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.http.try_get(path).await.is_some_and(|status| status == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{path} did not answer 200 within {within:?}; log:\n{}", self.log());
    }

    /// How many threads of the process have this name now.
    pub fn threads_named(&self, name: &str) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).expect("the process's threads");
        let names = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
        names.filter(|n| n.trim_end() == name).count()
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(self) -> ExitStatus {
        self.signal_term();
        self.wait_exit(Duration::from_secs(15))
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    }

    /// Waits for the process to exit by itself, failing after `within`.
    pub fn wait_exit(mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within {within:?} of SIGTERM; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Arguments for a replica of the registry on the PostgreSQL schema `database` and Redis.
pub fn shared_backends(database: &str, redis: &str, prefix: &str) -> Vec<String> {
    ["--database-url", database, "--auto-migrate", "--redis-url", redis, "--redis-key-prefix", prefix]
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
}

/// Forwards TCP connections to a backend until cut: then every open connection is dropped and
/// new ones are closed at once, as when the backend stops.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    /// While true, connections stay open and carry nothing: a peer that stopped (SIGSTOP) or
    /// a partition that drops packets.
    frozen: tokio::sync::watch::Sender<bool>,
    links: Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.links.lock().iter().for_each(tokio::task::AbortHandle::abort);
    }
}

impl Proxy {
    /// A proxy to the host and port of `url`.
    pub async fn to(url: &str) -> Self {
        let parsed = url::Url::parse(url).expect("backend URL");
        let target = format!("{}:{}", parsed.host_str().expect("host"), parsed.port().expect("port"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let frozen = tokio::sync::watch::Sender::new(false);
        let links = Arc::new(parking_lot::Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let (accept_open, accept_links, accept_frozen) = (open.clone(), links.clone(), frozen.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_open.load(Ordering::Acquire) {
                    continue; // dropped: closed at once
                }
                let (target, mut frozen) = (target.clone(), accept_frozen.subscribe());
                let link = tokio::spawn(async move {
                    let held = *frozen.borrow();
                    if held {
                        // Held open, never answered.
                        return std::future::pending().await;
                    }
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let froze = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                            _ = frozen.wait_for(|f| *f) => true,
                        };
                        if froze {
                            std::future::pending::<()>().await;
                        }
                    }
                });
                accept_links.lock().push(link.abort_handle());
            }
        });
        Self { port, open, frozen, links, accepting }
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("backend URL");
        parsed.set_host(Some("127.0.0.1")).expect("host");
        parsed.set_port(Some(self.port)).expect("port");
        parsed.to_string()
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::Release);
        self.links.lock().drain(..).for_each(|link| link.abort());
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Stops carrying bytes, keeping every connection open, and holds new ones unanswered.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Carries new connections again; the frozen ones are closed, as the peer's kernel would
    /// after a long stop.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
        self.links.lock().drain(..).for_each(|link| link.abort());
    }
}

/// Polls `check` until it holds, for at most `within`; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
