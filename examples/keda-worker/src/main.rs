//! The worker binary: settings from the environment (see `Settings::from_env`), register, consume
//! until SIGTERM (what Kubernetes sends when KEDA scales the worker in) or Ctrl-C.
#![forbid(unsafe_code)]

use keda_worker::{Settings, Worker};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let outcome = async {
        let worker = Worker::register(Settings::from_env()?).await?;
        worker.run(stopped()).await
    };
    match outcome.await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn stopped() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
}
