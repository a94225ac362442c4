//! `runs`, `status`, `report` and `dashboard` end to end; the dashboard in a real headless
//! Chromium driven over the DevTools protocol.

mod common;
use common::{nasforge, nb201_table, resume, text};

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A finished table-lookup run of `trials` trials in `dir`.
fn table_run(dir: &Path, trials: usize) {
    let o = nasforge(&[
        "search",
        "--evaluator",
        "table",
        "--table",
        &nb201_table(),
        "--objective",
        "valid_acc_12ep",
        "--trials",
        &trials.to_string(),
        "--run-dir",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty(), "--quiet printed: {}", text(&o));
}

/// A quick training run on the embedded digits: trials with learning curves, final training
/// and a saved model.
fn digits_run(dir: &Path) {
    let o = nasforge(&[
        "search",
        "--trials",
        "3",
        "--epochs",
        "2",
        "--final-epochs",
        "1",
        "--final-seeds",
        "2",
        "--space-param",
        "channels=4",
        "--record-proxies",
        "synflow,naswot",
        "--run-dir",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn runs_and_status_list_progress_and_reject_non_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    table_run(&a, 7);
    std::fs::create_dir(tmp.path().join("not-a-run")).unwrap();

    let o = nasforge(&["runs", tmp.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("a ") && t.contains("7/7") && t.contains("done"),
        "{t}"
    );
    assert!(!t.contains("not-a-run"), "{t}");

    let o = nasforge(&["runs", tmp.path().to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["trials_finished"], 7);
    assert_eq!(v[0]["state"], "done");
    assert_eq!(v[0]["space"], "nb201");
    assert!(v[0]["best"]["value"].as_f64().unwrap() > 0.0);
    assert!(nasforge(&["runs", tmp.path().to_str().unwrap(), "--quiet"])
        .stdout
        .is_empty());

    let o = nasforge(&["status", a.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trials_total"], 7);
    assert_eq!(v["latest"].as_array().unwrap().len(), 5);
    let o = nasforge(&["status", a.to_str().unwrap()]);
    assert!(text(&o).contains("best arch"), "{}", text(&o));

    // A table run trains no model: its best arch still exports as JSON, which show reads.
    let o = nasforge(&["export", a.to_str().unwrap(), "--format", "json", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = out["out"].as_str().unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(doc["space"], "nb201");
    assert!(doc["netspec"].is_object() && doc["valid_acc_12ep"].as_f64().is_some());
    let shown: Value = serde_json::from_slice(&nasforge(&["show", file, "--json"]).stdout).unwrap();
    assert_eq!(shown["arch"], doc["arch"]);
    let o = nasforge(&["export", a.to_str().unwrap(), "--format", "onnx"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // It says why and what works, not `--resume` (which cannot train what a table looked up).
    assert!(
        text(&o).contains("trained no network") && !text(&o).contains("--resume"),
        "{}",
        text(&o)
    );

    // Interrupted: a process that is gone left the run mid-search.
    std::fs::write(
        a.join("activity.json"),
        json!({"phase": "searching", "pid": 999_999_999u32, "host": std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()), "updated_at": 0.0}).to_string(),
    )
    .unwrap();
    let o = nasforge(&["status", a.to_str().unwrap()]);
    assert!(
        text(&o).contains("interrupted") && text(&o).contains("--resume"),
        "{}",
        text(&o)
    );

    for (dir, why) in [
        (tmp.path().join("missing"), "does not exist"),
        (tmp.path().join("not-a-run"), "is not a nasforge run"),
    ] {
        for cmd in ["status", "report", "dashboard"] {
            let o = nasforge(&[cmd, dir.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
            assert!(text(&o).contains(why), "{cmd}: {}", text(&o));
        }
    }
    let o = nasforge(&["runs", tmp.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // A SQLite file nasforge did not write is refused, and left untouched.
    let fake = tmp.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("config.toml"), "").unwrap();
    std::fs::write(fake.join("study.db"), "not a database").unwrap();
    let o = nasforge(&["status", fake.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        std::fs::read(fake.join("study.db")).unwrap(),
        b"not a database"
    );
}

#[test]
fn report_writes_self_contained_html_and_markdown_with_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("digits");
    digits_run(&run);
    let o = nasforge(&["report", run.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let html = std::fs::read_to_string(v["out"].as_str().unwrap()).unwrap();
    // Offline: no scripts, stylesheets or images from anywhere.
    for banned in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(banned), "report contains {banned}");
    }
    for id in [
        "best_over_trials",
        "best_over_time",
        "objective_vs_params",
        "objective_vs_macs",
        "objective_vs_latency_ms",
        "learning_curves",
        "arch_0",
        "objective_vs_proxy_synflow",
        "objective_vs_proxy_naswot",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no figure {id}");
    }
    assert!(html.matches("<svg").count() >= 9);
    assert!(html.contains("Spearman"));
    assert!(html.contains("Top trials") && html.contains("test accuracy, 2 seeds"));
    assert!(
        html.contains("nor_conv_3x3")
            || html.contains("skip_connect")
            || html.contains("avg_pool_3x3")
    );

    let out = tmp.path().join("md").join("summary.md");
    let o = nasforge(&[
        "report",
        run.to_str().unwrap(),
        "--format",
        "md",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(&out).unwrap();
    let figures = tmp.path().join("md").join("figures");
    let mut linked = 0;
    for line in md.lines().filter(|l| l.starts_with("![")) {
        let file = line.split("](").nth(1).unwrap().trim_end_matches(')');
        let svg = std::fs::read_to_string(tmp.path().join("md").join(file)).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{file}"
        );
        linked += 1;
    }
    assert!(linked >= 9, "{md}");
    assert_eq!(std::fs::read_dir(figures).unwrap().count(), linked);
    assert!(md.contains("| # | trial |"));

    let o = nasforge(&["report", run.to_str().unwrap(), "--format", "pdf"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("`html` or `md`"), "{}", text(&o));
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nasforge dashboard RUN --port 0 --json` and returns it with its URL.
fn dashboard(run: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nasforge"))
        .args(["dashboard", run.to_str().unwrap(), "--port", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (Killed(child), v["url"].as_str().unwrap().to_string())
}

/// One raw HTTP/1.1 request; returns the status code and body. The path goes out exactly as
/// given (no normalisation), as an attacker would send it.
fn http(url: &str, method: &str, path: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    http_as(url, method, path, host)
}

/// [`http`] with a chosen `Host` header.
fn http_as(url: &str, method: &str, path: &str, host_header: &str) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // Read the head, then Content-Length bytes (Chromium's DevTools server keeps the
    // connection open whatever the request says).
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status[9..12].parse().unwrap();
    let mut length = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            r.read_exact(&mut bytes).unwrap();
        }
        None => {
            r.read_to_end(&mut bytes).unwrap();
        }
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    (code, body)
}

#[test]
fn dashboard_on_loopback_answers_only_to_loopback_host_names() {
    // DNS rebinding: a page on evil.example resolves its own name to 127.0.0.1 and reads the
    // dashboard; its requests carry `Host: evil.example`, which must be refused.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    table_run(&run, 2);
    let (_server, url) = dashboard(&run);
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    for host in ["evil.example", &format!("evil.example:{port}"), "10.0.0.1"] {
        for path in ["/", "/api/run", "/api/trial/0"] {
            let (code, body) = http_as(&url, "GET", path, host);
            assert_eq!(code, 403, "Host {host:?} {path}: {body}");
            assert!(body.contains("loopback"), "{body}");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
    ] {
        let (code, body) = http_as(&url, "GET", "/api/run", &host);
        assert_eq!(code, 200, "Host {host}: {body}");
    }
}

#[test]
fn dashboard_serves_only_its_routes_and_refuses_a_taken_port() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    table_run(&run, 4);
    let (_server, url) = dashboard(&run);
    let (code, body) = http(&url, "GET", "/api/run");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["trials"].as_array().unwrap().len(), 4);
    let (code, _) = http(&url, "GET", "/");
    assert_eq!(code, 200);
    let (code, body) = http(&url, "GET", "/api/trial/2");
    assert_eq!(code, 200, "{body}");
    for path in [
        "/../config.toml",
        "/%2e%2e/study.db",
        "/config.toml",
        "/study.db",
        "/api/trial/..%2Fconfig.toml",
        "/api/trial/99",
        "/trial/../../etc/passwd",
    ] {
        let (code, body) = http(&url, "GET", path);
        assert!(code == 404 || code == 400, "{path}: {code} {body}");
        assert!(
            !body.contains("schema_version") && !body.contains("strategy ="),
            "{path}"
        );
    }
    let (code, _) = http(&url, "POST", "/api/run");
    assert_eq!(code, 405);

    // The port it holds is in use for a second dashboard.
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let o = nasforge(&["dashboard", run.to_str().unwrap(), "--port", port]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("in use"), "{}", text(&o));
}

// ---- headless Chromium over the DevTools protocol ----

fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("NASFORGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    p.exists().then_some(p)
}

struct Browser {
    _process: Killed,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Console errors, uncaught exceptions and failed loads seen so far.
    errors: Vec<String>,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let exe = chromium().unwrap();
        let child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let process = Killed(child);
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_string))
                .filter(|p| !p.is_empty())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (_, body) = http(&format!("http://127.0.0.1:{port}"), "GET", "/json/list");
        let targets: Value = serde_json::from_str(&body).unwrap();
        let ws_url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["webSocketDebuggerUrl"]
            .as_str()
            .unwrap()
            .to_string();
        let (ws, _) = tungstenite::connect(ws_url).expect("devtools websocket");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut b = Browser {
            _process: process,
            ws,
            next_id: 0,
            errors: Vec::new(),
        };
        b.call("Runtime.enable", json!({}));
        b.call("Log.enable", json!({}));
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends one command and waits for its answer, recording error events on the way.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(tungstenite::Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .unwrap();
        loop {
            let msg = self.ws.read().expect("devtools message");
            let Ok(t) = msg.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(t) else {
                continue;
            };
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => self
                    .errors
                    .push(format!("exception: {}", v["params"]["exceptionDetails"])),
                Some("Runtime.consoleAPICalled")
                    if matches!(v["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    self.errors
                        .push(format!("console.error: {}", v["params"]["args"]))
                }
                Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => self
                    .errors
                    .push(format!("log: {}", v["params"]["entry"]["text"])),
                _ => {}
            }
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Polls `expr` until it is true (30 s at most).
    fn wait_for(&mut self, expr: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval(expr) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page: {}",
                self.eval("document.body.innerText.slice(0, 2000)")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn dashboard_in_headless_chromium_follows_a_run() {
    if chromium().is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Chromium (/usr/bin/chromium, Debian's `chromium`; .ci/run installs it)"
        );
        eprintln!("skipped: no Chromium at /usr/bin/chromium (apt install chromium, or set NASFORGE_CHROMIUM)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    table_run(&run, 5);
    // A failed trial whose message is markup: the page must show it as text.
    let db = rusqlite::Connection::open(run.join("study.db")).unwrap();
    db.execute(
        "UPDATE trials SET state = 'failed', value = NULL, error = ?1 WHERE number = 1",
        ["<img src=x onerror=\"window.__pwned=1\">"],
    )
    .unwrap();
    drop(db);

    let (_server, url) = dashboard(&run);
    let mut b = Browser::start(&tmp.path().join("profile"));
    b.call("Page.navigate", json!({"url": url}));
    b.wait_for(
        "document.querySelectorAll('#trials tbody tr').length === 5",
        "the 5 trials",
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#page svg').length >= 4"),
        json!(true)
    );
    assert_eq!(
        b.eval("document.getElementById('facts').innerText.includes('valid_acc_12ep')"),
        json!(true)
    );
    assert_eq!(b.eval("window.__pwned === undefined"), json!(true));
    assert_eq!(
        b.eval("document.querySelector('#trials').innerText.includes('<img src=x')"),
        json!(true)
    );
    // Sorting by objective puts the best value first.
    b.eval("document.querySelector('#trials th[data-key=value]').click()");
    let first = b.eval("document.querySelector('#trials tbody tr').dataset.trial");
    let best = http(&url, "GET", "/api/run").1;
    let best: Value = serde_json::from_str(&best).unwrap();
    assert_eq!(first.as_str().unwrap(), best["best_trial"].to_string());

    // A sixth trial completes while the page is open: it appears without a reload.
    let o = resume(&run, &["--trials", "6", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    b.wait_for(
        "document.querySelectorAll('#trials tbody tr').length === 6",
        "the new trial",
    );

    // The trial page: diagram, curve, metrics.
    b.call("Page.navigate", json!({"url": format!("{url}trial/0")}));
    b.wait_for(
        "document.querySelectorAll('#metrics tr').length > 3 && document.querySelectorAll('#page svg').length >= 2",
        "the trial page",
    );
    assert!(b.errors.is_empty(), "console errors: {:#?}", b.errors);
}

#[test]
fn record_proxies_needs_training_and_known_names() {
    let tmp = tempfile::tempdir().unwrap();
    let table = nb201_table();
    let o = nasforge(&[
        "search",
        "--table",
        &table,
        "--record-proxies",
        "synflow",
        "--run-dir",
        tmp.path().join("t").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("nasforge proxies --table"),
        "{}",
        text(&o)
    );
    let o = nasforge(&[
        "search",
        "--record-proxies",
        "magic",
        "--trials",
        "1",
        "--run-dir",
        tmp.path().join("d").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("magic"), "{}", text(&o));
}
