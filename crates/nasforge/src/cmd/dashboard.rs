//! `nasforge dashboard`: a read-only web page on one run that follows it while it searches.
//!
//! Routes (GET only): `/` the run page, `/trial/N` a trial's page, `/api/run` and
//! `/api/trial/N` the JSON they poll every two seconds. Nothing else is served: there is no
//! file route, so no path can reach outside the run. Each request reads the run afresh from its
//! SQLite database (WAL mode: the search is never blocked).

use super::{bad_input, BadInput, Output};
use crate::report::figures::{arch_diagrams, figures, trial_curve};
use crate::report::page::facts;
use crate::report::run::Run;
use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

const PAGE: &str = include_str!("../report/dashboard.html");

/// Arguments of `nasforge dashboard`.
#[derive(Args)]
pub struct DashboardArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Address to bind; the default serves this machine only. `0.0.0.0` shares the page with
    /// your network (it is read-only, but shows the run's configuration and paths).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[command(flatten)]
    pub output: Output,
}

/// Runs `nasforge dashboard` until interrupted.
pub fn run(args: DashboardArgs) -> Result<()> {
    // Refuse a missing or foreign directory before listening.
    Run::open(&args.run)?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = match std::net::TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return bad_input(format!(
                "port {} on {} is in use; pick another with --port (--port 0 picks a free one)",
                args.port, args.host
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            return bad_input(format!(
                "cannot listen on {}: no such address on this machine ({e}); use --host 127.0.0.1",
                args.host
            ))
        }
        Err(e) => {
            return Err(BadInput(format!("cannot listen on {addr}: {e}")).into());
        }
    };
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let url = format!("http://{local}/");
    if args.output.json {
        println!("{}", json!({"url": url, "run": args.run}));
    } else if !args.output.quiet {
        println!(
            "dashboard of {} on {url} (read-only; Ctrl-C stops it)",
            args.run.display()
        );
    }
    std::io::stdout().flush().ok();
    let dir = Arc::new(args.run.clone());
    let app = Router::new()
        .route("/", get(|| async { page() }))
        .route("/trial/{n}", get(|| async { page() }))
        .route("/api/run", get(api_run))
        .route("/api/trial/{n}", get(api_trial))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page".into()) })
        .with_state(dir);
    // Bound to loopback, the page is this machine's only: a web page elsewhere must not reach
    // it by pointing its own host name at 127.0.0.1 (DNS rebinding), so the Host must be a
    // loopback name or address too.
    let app = if local.ip().is_loopback() {
        app.layer(axum::middleware::from_fn(loopback_host_only))
    } else {
        app
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the web server's runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).await
    })
    .context("the dashboard server stopped")
}

/// Answers 403 to a request whose `Host` is not `localhost` or a loopback address.
async fn loopback_host_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if is_loopback_host(host) {
        return next.run(request).await;
    }
    error(
        StatusCode::FORBIDDEN,
        format!(
            "Host `{host}` is not a loopback name: this dashboard listens on a loopback address and answers only to localhost, 127.0.0.1 or [::1]"
        ),
    )
}

/// Whether a `Host` header (name or address, with or without a port) names this machine's
/// loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Reads the run off the async threads and answers with `make`'s JSON.
async fn with_run(
    dir: Arc<PathBuf>,
    make: impl FnOnce(&Run) -> Result<Value, (StatusCode, String)> + Send + 'static,
) -> Response {
    let out = tokio::task::spawn_blocking(move || match Run::open(&dir) {
        Ok(run) => make(&run),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))),
    })
    .await;
    match out {
        Ok(Ok(v)) => ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What changes when the run moves on: trials, their states and curves, the final result.
fn version(run: &Run) -> String {
    let steps: usize = run.trials.iter().map(|t| t.intermediate.len()).sum();
    let states: String = run.trials.iter().map(|t| &t.state.as_str()[..1]).collect();
    format!(
        "{}:{steps}:{}:{}:{}",
        run.trials.len(),
        states,
        run.state.as_str(),
        run.final_result.is_some()
    )
}

fn facts_json(run: &Run) -> Value {
    json!(facts(run)
        .into_iter()
        .map(|(k, v)| json!([k, v]))
        .collect::<Vec<_>>())
}

async fn api_run(State(dir): State<Arc<PathBuf>>) -> Response {
    with_run(dir, |run| {
        let best = run.best();
        let trials: Vec<Value> = run
            .trials
            .iter()
            .map(|t| {
                json!({
                    "number": t.number,
                    "state": t.state.as_str(),
                    "value": t.value(),
                    "epochs": t.cost.epochs,
                    "params": t.metrics.get("params"),
                    "macs": t.metrics.get("macs"),
                    "latency_ms": t.metrics.get(nasforge_core::study::metric::LATENCY_MS),
                    "seconds": t.finished_at.zip(t.started_at).map(|(f, s)| f - s),
                    "arch": t.arch.get("arch").and_then(|a| a.as_str()).unwrap_or(""),
                    "error": t.error,
                })
            })
            .collect();
        Ok(json!({
            "name": run.name(),
            "version": version(run),
            "state": run.state.as_str(),
            "live": run.state.is_live(),
            "facts": facts_json(run),
            "figures": figures(run),
            "best_trial": best.map(|b| b.number),
            "best_diagrams": best.map(|b| arch_diagrams(run, &b.arch)).unwrap_or_default(),
            "trials": trials,
        }))
    })
    .await
}

async fn api_trial(State(dir): State<Arc<PathBuf>>, UrlPath(n): UrlPath<String>) -> Response {
    let Ok(number) = n.parse::<u64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("`{n}` is not a trial number"),
        );
    };
    with_run(dir, move |run| {
        let Some(t) = run.trials.iter().find(|t| t.number == number) else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("the run has no trial {number}"),
            ));
        };
        let mut rows = vec![
            json!(["state", t.state.as_str()]),
            json!([
                "arch",
                t.arch.get("arch").and_then(|a| a.as_str()).unwrap_or("")
            ]),
        ];
        if let Some(v) = t.value() {
            rows.push(json!([run.record.objective, format!("{v:.4}")]));
        }
        if let Some(e) = &t.error {
            rows.push(json!(["error", e]));
        }
        rows.push(json!(["worker", t.worker]));
        Ok(json!({
            "name": run.name(),
            "version": format!("{}:{}:{}", t.state.as_str(), t.intermediate.len(), t.metrics.len()),
            "state": run.state.as_str(),
            "live": run.state.is_live(),
            "facts": rows,
            "trial": t,
            "curve": trial_curve(run, t),
            "diagrams": arch_diagrams(run, &t.arch),
        }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in [
            "localhost",
            "localhost:8787",
            "127.0.0.1:8787",
            "127.9.9.9",
            "[::1]:8787",
            "[::1]",
            "app.localhost:1",
            "LOCALHOST.",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example:8787",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "10.0.0.1:8787",
            "[::2]:80",
            "0.0.0.0:8787",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
