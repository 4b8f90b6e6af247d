//! Protocol compatibility with the stock npm Yjs clients: runs the Node test files in
//! `tests/js/` (`y-websocket`'s `WebsocketProvider`, `yjs`, `ws`) against the real `potentia`
//! binary. Each `*.test.mjs` file gets its own fresh database and its own `node --test` run.
//!
//! Needs `node` (20+) on PATH and `tests/js/node_modules` (`npm ci --prefix tests/js`, which
//! `scripts/test.sh` runs), and `DATABASE_URL` pointing at a Postgres where it may create
//! databases (as `scripts/test.sh` sets up).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use common::{ScratchDb, BIN};

const WORKSPACE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// A hard stop for any single JS test (their own waits time out well before).
const NODE_TEST_TIMEOUT_MS: u32 = 120_000;

fn js_dir() -> PathBuf {
    let dir = Path::new(WORKSPACE_ROOT).join("tests/js");
    dir.canonicalize().unwrap_or(dir)
}

fn check_prerequisites(js_dir: &Path) {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("`node` (Node.js 20 or later) must be on PATH to run the JS client tests"),
    }
    if !js_dir.join("node_modules/y-websocket").is_dir() {
        panic!(
            "{}/node_modules is missing: run `npm ci --prefix tests/js` \
             (./scripts/test.sh does it)",
            js_dir.display()
        );
    }
}

/// The `*.test.mjs` files, in name order.
fn test_files(js_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(js_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".test.mjs"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn stock_yjs_clients_pass_the_js_protocol_tests() {
    let js_dir = js_dir();
    check_prerequisites(&js_dir);
    let files = test_files(&js_dir);
    assert!(!files.is_empty(), "no *.test.mjs in {}", js_dir.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut failed = Vec::new();
    for file in &files {
        let db = runtime.block_on(ScratchDb::create());
        let started = Instant::now();
        // stdout and stderr are inherited: node's report streams as the tests run.
        let status = Command::new("node")
            .arg("--test")
            .arg("--test-concurrency=1")
            .arg(format!("--test-timeout={NODE_TEST_TIMEOUT_MS}"))
            .arg(file)
            .current_dir(&js_dir)
            .env("POTENTIA_BIN", BIN)
            .env("DATABASE_URL", &db.url)
            .status();
        runtime.block_on(db.drop_now());
        let status = status.unwrap_or_else(|e| panic!("cannot run node: {e}"));
        // Not eprintln!: the test harness would capture it, and it belongs after node's report.
        let _ = writeln!(
            std::io::stderr(),
            "{}: {status} in {:.1} s",
            file.display(),
            started.elapsed().as_secs_f64()
        );
        if !status.success() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "JS test files failed: {failed:?}");
}
