//! Serving `--listen` on worker threads, the shape of nginx's worker processes: each worker runs
//! a Tokio current-thread runtime with its own listener on the same address (`SO_REUSEPORT`: the
//! kernel spreads new connections over the workers) and its own upstream connection pools, so a
//! request, its token check and its upstream exchange stay on the thread that accepted the
//! connection. A multi-thread runtime instead hands each request from the connection's task to
//! the upstream connection's task and back across its workers, and every such wake-up of another
//! thread costs a context switch (an inter-processor interrupt on a VM).
//!
//! Background work (key refresh, the admin listener, the demo servers) stays on the runtime that
//! started the gateway.

use std::io;
use std::net::SocketAddr;
use std::thread;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use crate::gate::Gate;

/// The backlog of each listener, as `tokio::net::TcpListener::bind` gives.
const BACKLOG: u32 = 1024;

/// Binds `addr` for the gateway's first worker, with `SO_REUSEPORT` so that the others can bind
/// listeners of their own on the same address (see [`start`]).
///
/// The address is first bound once without `SO_REUSEPORT`, and that socket closed: a port that
/// another process (another gateway included) listens on is refused with `AddrInUse`, as by a
/// plain bind, rather than shared with it.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    if addr.port() != 0 {
        drop(bound(addr, false)?.listen(1)?);
    }
    bound(addr, true)?.listen(BACKLOG)
}

/// A socket bound to `addr`, with `SO_REUSEPORT` if `reuse_port`.
fn bound(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind`: a restart does not wait for the old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// How the workers share the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One listener per worker on the same address; the kernel picks the worker of each new
    /// connection (by a hash of its addresses).
    ReusePort,
    /// One listener whose connections every worker accepts (the first listener was bound without
    /// `SO_REUSEPORT`, e.g. by a test).
    SharedListener,
}

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    /// Each worker's result, sent when its server has stopped.
    done: Vec<oneshot::Receiver<io::Result<()>>>,
    sharing: Sharing,
}

/// Starts one worker per gate: the first serves `listener`, each other one a listener of its
/// own bound to the same address with `SO_REUSEPORT` (see [`bind`]), or, when the address can't
/// be bound again (`listener` was bound without it), `listener` itself.
pub fn start(listener: TcpListener, gates: Vec<Gate>) -> io::Result<Workers> {
    let addr = listener.local_addr()?;
    let mut listeners = vec![listener.into_std()?];
    let mut sharing = Sharing::ReusePort;
    for _ in 1..gates.len() {
        let own = match sharing {
            Sharing::ReusePort => reuse_port(addr),
            Sharing::SharedListener => listeners[0].try_clone(),
        };
        let listener = match own {
            Ok(listener) => listener,
            // The first listener was bound without `SO_REUSEPORT`: every worker accepts from it.
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && listeners.len() == 1 => {
                sharing = Sharing::SharedListener;
                listeners[0].try_clone()?
            }
            Err(err) => return Err(err),
        };
        listeners.push(listener);
    }
    let (stop, stopping) = watch::channel(false);
    let mut done = Vec::with_capacity(gates.len());
    for (index, (listener, gate)) in listeners.into_iter().zip(gates).enumerate() {
        let (finished, result) = oneshot::channel();
        let stopping = stopping.clone();
        thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                let _ = finished.send(serve(listener, gate, stopping));
            })?;
        done.push(result);
    }
    Ok(Workers {
        stop,
        done,
        sharing,
    })
}

impl Workers {
    /// How the workers share the address.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// Stops accepting connections; requests in flight go on. Idempotent.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every worker has stopped (after [`begin_shutdown`](Self::begin_shutdown),
    /// once each has answered its requests in flight); the first error, if any.
    pub async fn wait(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for (index, done) in self.done.drain(..).enumerate() {
            let outcome = match done.await {
                Ok(outcome) => outcome,
                Err(_) => Err(io::Error::other(format!(
                    "worker {index} ended without stopping its server"
                ))),
            };
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

fn reuse_port(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bound(addr, true)?.listen(BACKLOG)?.into_std()
}

/// One worker: its own runtime, serving `listener` until `stopping` turns true (or the
/// [`Workers`] are dropped), then until its connections are done.
fn serve(
    listener: std::net::TcpListener,
    gate: Gate,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        crate::server::serve(listener, gate, async move {
            // A dropped sender (the gateway dropped without a shutdown) stops the worker too.
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .await
    })
}
