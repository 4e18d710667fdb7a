//! The listener against slow and idle clients (slowloris): heads that never finish and idle
//! connections are closed, connections are capped, and the probes answer under the cap.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::Replica;
use crate::support::{Http, TestApp};

/// A safety net so a broken server fails the test instead of hanging it; not a bound the
/// behaviour is measured against.
const AT_WORST: Duration = Duration::from_secs(120);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection; what it sent meanwhile.
async fn until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut sent = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(AT_WORST, async {
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => sent.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    sent
}

#[tokio::test]
async fn a_head_that_never_finishes_is_closed_however_slowly_its_bytes_trickle() {
    let app =
        TestApp::spawn_with_args(&["--http-header-timeout-ms", "300", "--http-keep-alive-timeout-ms", "600000"]).await;
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let (mut reading, mut writing) = socket.into_split();
    // One header byte at a time, until the server has had enough.
    let trickle = tokio::spawn(async move {
        while writing.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut rest = Vec::new();
    // EOF or a reset: either way the server has closed the connection.
    let _ = tokio::time::timeout(AT_WORST, reading.read_to_end(&mut rest)).await.expect("the server closes it");
    trickle.abort();
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "no request was served");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout() {
    let app =
        TestApp::spawn_with_args(&["--http-header-timeout-ms", "600000", "--http-keep-alive-timeout-ms", "300"]).await;
    let mut silent = connect(&app).await;
    assert!(until_closed(&mut silent).await.is_empty(), "closed without an answer");

    // And after an answer: the connection stays for the next request, then closes when idle.
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: registry\r\n\r\n").await.unwrap();
    let answered = String::from_utf8(until_closed(&mut socket).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn at_the_connection_cap_the_probes_still_answer_and_other_routes_say_why_not() {
    // 12 connections: 4 for anything, 8 kept for probes. The app holds no connection of its
    // own (no bootstrap), so four silent sockets fill the general ones.
    let args =
        ["--max-connections", "12", "--http-header-timeout-ms", "600000", "--http-keep-alive-timeout-ms", "600000"];
    let app = TestApp::spawn_with_args_without_keys(&args).await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect(&app).await);
    }
    let fresh = || Http::new(app.base.clone());
    let health = fresh().get("/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("connection"), Some("close"));
    assert_eq!(fresh().get("/readyz").await.status, 200);
    fresh().get("/agents").await.problem(503, "too_many_connections");

    // Once a silent socket goes, its place serves anything again.
    drop(silent.pop());
    let mut served = false;
    for _ in 0..1_000 {
        if fresh().get("/agents").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed connection slot is reused");
}

#[tokio::test]
async fn a_request_in_flight_is_not_idle_however_long_it_lasts() {
    let app = TestApp::spawn_with_args(&["--http-keep-alive-timeout-ms", "200"]).await;
    let mut watcher = crate::support::Watcher::open(&app.base, "", None).await;
    // Several keep-alive timeouts pass while the stream is open, then a change arrives on it.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    app.register(crate::support::agent("Late", "wait", crate::support::persistent(30))).await;
    let event = watcher.next(AT_WORST).await.expect("the stream is still open");
    assert_eq!(event.event, "registered");
}

#[tokio::test]
async fn more_silent_sockets_than_file_descriptors_neither_exhaust_them_nor_silence_the_probes() {
    // 256 descriptors: the default cap is 192 connections, the last 8 kept for probes. The
    // silent sockets are never timed out here, so only the cap and the reserve keep it alive.
    let args = ["--http-header-timeout-ms", "600000", "--http-keep-alive-timeout-ms", "600000"];
    let server = Replica::start_with_fd_limit(256, &args).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(socket) = TcpStream::connect(&address).await {
            silent.push(socket);
        }
    }
    // Probes answer (the reserve's silent sockets go after their short header timeout).
    let answered = tokio::time::timeout(AT_WORST, async {
        while Http::new(server.base.clone()).try_get("/healthz").await != Some(reqwest::StatusCode::OK) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(answered.is_ok(), "/healthz never answered; log:\n{}", server.log());
    let log = server.log();
    assert!(!log.contains("Too many open files") && !log.contains("cannot accept"), "{log}");
    assert!(log.contains("the connection cap is reached"), "{log}");
}
