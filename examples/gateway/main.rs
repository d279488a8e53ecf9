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
mod forward_auth;
mod headers;
mod health;
mod inspect;
mod metrics;
mod proxy;
mod revoke;
mod routes;
#[cfg(test)]
mod tests;
mod upgrade;
mod upstream;

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::config::{Args, Command, LogFormat};

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
    init_logging(config.log_format);
    for var in config::unknown_env_vars(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(
            var,
            "unknown GATEWAY_* environment variable ignored (see --help)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the Tokio runtime");
    runtime.block_on(run(config))
}

async fn run(config: config::Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
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

/// Logs to stderr (stdout is for the demo banner), filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
