//! A JWT-verifying reverse proxy built on `tower-jwt-auth`.
//!
//! ```sh
//! cargo run --release --example gateway            # demo mode: prints a token and curl commands
//! cargo run --release --example gateway -- --help  # every setting
//! cargo run --release --example gateway -- inspect TOKEN --issuer URL  # decode and verify
//! cargo run --release --example gateway -- revoke --redis-url URL --jti ID --exp UNIX_SECONDS
//! ```
//!
//! See the README's "Gateway" section for the config file.

mod app;
mod config;
mod demo;
mod dispatch;
mod forward_auth;
mod gate;
mod headers;
mod health;
mod http1_pool;
mod inspect;
mod metrics;
mod protected;
mod proxy;
mod revoke;
mod routes;
mod sender;
mod server;
#[cfg(test)]
mod tests;
mod upgrade;
mod upstream;
mod workers;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{Args, Command, LogFormat};

/// Each request allocates and frees buffers, header maps and futures of many sizes, some beyond
/// glibc's per-thread cache (then its arenas' bins and their consolidation): mimalloc's
/// per-thread free lists serve them all (see BENCHMARKS.md, section 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut args = Args::parse();
    match args.cli.command.take() {
        Some(Command::Inspect(inspect)) => return inspect::main(inspect),
        Some(Command::Revoke(revoke)) => return revoke::main(revoke),
        None => {}
    }
    let config = match config::load(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("gateway: error: {err}");
            return ExitCode::from(2);
        }
    };
    // Flushes the log lines still queued when `main` returns.
    let _logs = init_logging(config.log_format, config.access_log);
    for var in config::unknown_env_vars(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(
            var,
            "unknown GATEWAY_* environment variable ignored (see --help)"
        );
    }
    // Requests are served by the worker threads (`--workers`), each with a runtime of its own;
    // this one runs the background work: key refresh, the admin listener, the demo servers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the Tokio runtime");
    runtime.block_on(run(config))
}

async fn run(config: config::Config) -> ExitCode {
    let listener = match workers::bind(config.listen) {
        Ok(listener) => listener,
        Err(err) => {
            let origin = match config.listen_origin.as_str() {
                "default" => {
                    "the default; choose another with --listen or GATEWAY_LISTEN".to_owned()
                }
                origin => format!("set by {origin}"),
            };
            eprintln!(
                "gateway: error: cannot listen on {} ({origin}): {err}",
                config.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let shutdown_timeout = config.shutdown_timeout;
    let mut gateway = match app::start(config, listener).await {
        Ok(gateway) => gateway,
        Err(err) => {
            eprintln!("gateway: error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(demo) = gateway.demo() {
        println!("{}", demo.banner(gateway.local_addr()));
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining requests in flight");
    gateway.begin_shutdown();
    match tokio::time::timeout(shutdown_timeout, gateway.wait()).await {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            eprintln!("gateway: error: server failed: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            tracing::warn!(
                timeout_secs = shutdown_timeout.as_secs_f64(),
                "requests still in flight after the shutdown timeout; exiting"
            );
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (stdout is for the demo banner), filtered by `RUST_LOG` (default `info`), with
/// `gateway::access` at `info` too when the access log is on (unless `RUST_LOG` names it).
///
/// The lines are formatted on the request's thread but written by a thread of their own, behind
/// a bounded queue (`tracing-appender`): a slow or blocked stderr never holds a request up. When
/// the queue is full (128,000 lines waiting) further lines are dropped rather than requests
/// slowed; the returned guard flushes the queue when dropped. Colour only on a terminal.
fn init_logging(format: LogFormat, access_log: bool) -> WorkerGuard {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let names_access =
        std::env::var("RUST_LOG").is_ok_and(|value| value.contains("gateway::access"));
    if access_log
        && !names_access
        && let Ok(directive) = "gateway::access=info".parse()
    {
        filter = filter.add_directive(directive);
    }
    let ansi = std::io::stderr().is_terminal();
    // Buffered: the writer thread flushes whenever its queue is empty, so lines are not held
    // back, and a burst of them is written in a few system calls rather than one each.
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
