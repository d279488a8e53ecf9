//! [`TestRedis`]: a real `redis-server` on loopback for tests, with its own temporary directory.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::io::{Read as _, Write as _};

/// How long a started server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Why a [`TestRedis`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestRedisError {
    /// `redis-server` is not installed (Debian: `apt-get install redis-server`).
    #[error("redis-server is not installed (apt-get install redis-server)")]
    NotInstalled,
    /// The server could not be started, or did not answer in time.
    #[error("cannot start redis-server: {0}")]
    Start(String),
}

/// A `redis-server` started for a test: `127.0.0.1`, an ephemeral port, a temporary directory
/// (removed on drop), append-only persistence so that a [`restart`](Self::restart) keeps the
/// data, and no other client than the test's. Stopped by its own PID on drop.
///
/// ```no_run
/// use tower_jwt_auth::test_util::TestRedis;
///
/// # async fn run() -> Result<(), tower_jwt_auth::test_util::TestRedisError> {
/// let redis = TestRedis::start().await?;
/// let url = redis.url(); // redis://127.0.0.1:PORT
/// # let _ = url;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TestRedis {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl TestRedis {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// [`TestRedisError::NotInstalled`] without `redis-server` on the `PATH`, otherwise
    /// [`TestRedisError::Start`].
    pub async fn start() -> Result<Self, TestRedisError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-redis-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|error| TestRedisError::Start(error.to_string()))?;
        let mut last_error = String::new();
        // The port is free when picked, but another process may take it before Redis binds it.
        for _ in 0..5 {
            let port = free_port().map_err(|error| TestRedisError::Start(error.to_string()))?;
            let mut redis = Self {
                child: None,
                dir: dir.clone(),
                port,
            };
            match redis.launch().await {
                Ok(()) => return Ok(redis),
                Err(TestRedisError::NotInstalled) => return Err(TestRedisError::NotInstalled),
                Err(TestRedisError::Start(error)) => last_error = error,
            }
            // Keep the directory for the next try.
            redis.dir = PathBuf::new();
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(TestRedisError::Start(last_error))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Stops the server (SIGKILL to its PID, as a crash would), keeping its data directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    ///
    /// # Errors
    ///
    /// [`TestRedisError::Start`] when it does not come back.
    pub async fn restart(&mut self) -> Result<(), TestRedisError> {
        self.stop();
        self.launch().await
    }

    async fn launch(&mut self) -> Result<(), TestRedisError> {
        let dir = self.dir.to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--dir", &dir, "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--daemonize", "no"])
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(TestRedisError::NotInstalled);
            }
            Err(error) => return Err(TestRedisError::Start(error.to_string())),
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if self.answers_ping() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .map(|child| matches!(child.try_wait(), Ok(Some(_))));
            if exited == Some(true) || Instant::now() > deadline {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let last = log.lines().last().unwrap_or("no log").to_owned();
                return Err(TestRedisError::Start(last));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn answers_ping(&self) -> bool {
        // Loopback answers at once or refuses at once: a blocking exchange with a short timeout.
        let timeout = Duration::from_millis(500);
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&self.addr(), timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0; 7];
        matches!(stream.read_exact(&mut reply), Ok(()) if &reply == b"+PONG\r\n")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
