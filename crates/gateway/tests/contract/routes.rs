//! Every route's success shape and the hive-refusal shape (200 + ERR).

use crate::common::{eventually, harness, harness_ticking, q};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_root_lists_the_top_level_trees() {
    let h = harness().await;
    let r = h.get("/v1/fs/ls?path=/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["verb"], "LS");
    assert_eq!(v["path"], "/");
    assert_eq!(v["end"], true);
    let lines = r.lines();
    for tree in ["proc", "queen", "log"] {
        assert!(
            lines.iter().any(|l| l == tree),
            "{tree} missing from {lines:?}"
        );
    }
    assert!(v.get("error").is_none() && v.get("bytes").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_returns_lines_and_bytes() {
    let h = harness().await;
    let r = h
        .get("/v1/fs/cat?path=/proc/lifecycle/state&max_bytes=64")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["verb"], "CAT");
    assert_eq!(r.lines(), ["state=ONLINE"]);
    assert_eq!(v["bytes"], 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_of_proc_boot_reads_the_whole_file() {
    let h = harness().await;
    let r = h.get("/v1/fs/cat?path=/proc/boot&max_bytes=65536").await;
    assert_eq!(r.status, 200);
    assert!(
        r.lines().iter().any(|l| l.starts_with("bounds msize=")),
        "{:?}",
        r.lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_larger_than_max_bytes_is_400_result_too_large() {
    let h = harness().await;
    let r = h.get("/v1/fs/cat?path=/proc/boot&max_bytes=10").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], "ERR");
    assert!(
        r.error().contains("detail=result-too-large"),
        "{}",
        r.error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_refusal_is_200_with_a_console_shaped_error() {
    let h = harness().await;
    let r = h.get("/v1/fs/cat?path=/nope&max_bytes=64").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ERR");
    assert_eq!(v["verb"], "CAT");
    assert_eq!(v["path"], "/nope");
    assert!(v.get("lines").is_none());
    let e = r.error();
    assert!(
        e.starts_with("ERR CAT reason=policy detail=not-found path=/nope"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_to_a_read_only_file_is_refused_by_the_hive() {
    let h = harness().await;
    let r = h.echo("/proc/boot", "x").await;
    assert_eq!(r.status, 200);
    let e = r.error();
    assert!(e.starts_with("ERR ECHO reason=policy detail="), "{e}");
    assert!(e.contains("path=/proc/boot"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_spawn_returns_the_new_worker_id_and_tail_reads_its_ticks() {
    let h = harness_ticking(10, |_| {}).await;
    let spawn = r#"{"spawn":"heartbeat","ticks":100}"#;
    let r = h.echo("/queen/ctl", spawn).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "OK", "{}", r.text());
    assert_eq!(r.lines(), ["worker-1"]);
    assert_eq!(r.json()["bytes"], spawn.len());

    let uri = "/v1/fs/tail?path=/worker/worker-1/telemetry&max_bytes=1024&lines=2";
    let ticked = eventually(Duration::from_secs(5), || async {
        let r = h.get(uri).await;
        r.status == 200 && r.lines().len() == 2
    })
    .await;
    assert!(ticked, "no heartbeat records");
    let r = h.get(uri).await;
    assert_eq!(r.json()["verb"], "TAIL");
    for line in r.lines() {
        assert!(line.contains("\"tick\":"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_to_worker_telemetry_appends_without_lines() {
    let h = harness().await;
    let r = h
        .echo("/queen/ctl", r#"{"spawn":"heartbeat","ticks":100}"#)
        .await;
    assert_eq!(r.lines(), ["worker-1"]);
    let record = r#"{"note":"from-rest"}"#;
    let r = h.echo("/worker/worker-1/telemetry", record).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "OK", "{}", r.text());
    assert!(r.json().get("lines").is_none());
    assert_eq!(r.json()["bytes"], record.len());
    let r = h
        .get("/v1/fs/tail?path=/worker/worker-1/telemetry&max_bytes=1024&lines=1")
        .await;
    assert_eq!(r.lines(), [record]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_keeps_the_newest_whole_lines_within_max_bytes() {
    let h = harness().await;
    h.echo("/queen/ctl", r#"{"spawn":"heartbeat","ticks":100}"#)
        .await;
    for i in 0..5 {
        let r = h
            .echo("/worker/worker-1/telemetry", &format!("record-{i}"))
            .await;
        assert_eq!(r.json()["status"], "OK");
    }
    // 20 bytes hold the two newest 9-byte records with their newlines.
    let r = h
        .get("/v1/fs/tail?path=/worker/worker-1/telemetry&max_bytes=20")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.lines(), ["record-3", "record-4"]);
    assert_eq!(r.json()["bytes"], 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_to_lifecycle_ctl_returns_the_new_state() {
    let h = harness().await;
    let r = h.echo("/queen/lifecycle/ctl", "cordon").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.lines(), ["state=DRAINING"]);
    let r = h.echo("/queen/lifecycle/ctl", "resume").await;
    assert_eq!(r.lines(), ["state=ONLINE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_ctl_write_returns_the_segment_id_as_the_only_line() {
    let h = harness().await;
    let ctl = "/queen/telemetry/dev-1/ctl";
    let new = r#"{"new":"segment","mime":"text/plain"}"#;
    let r = h.echo(ctl, new).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "OK", "{}", r.text());
    assert_eq!(r.lines(), ["seg-000001"]);
    let r = h.echo(ctl, new).await;
    assert_eq!(r.lines(), ["seg-000002"]);
    let latest = format!(
        "/v1/fs/cat?path={}&max_bytes=64",
        q("/queen/telemetry/dev-1/latest")
    );
    assert_eq!(h.get(&latest).await.lines(), ["seg-000002"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_report_the_hive_and_the_gateway() {
    let h = harness().await;
    let r = h.get("/v1/meta/bounds").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["hive"]["msize"], 8192);
    assert_eq!(v["hive"]["walk_depth"], 8);
    assert_eq!(v["hive"]["tags_in_flight"], 16);
    assert_eq!(v["hive_info"]["hive"], "cohesix-host");
    assert_eq!(v["gateway"]["msize"], 8192);
    assert_eq!(v["gateway"]["path_bytes"], 1024);
    assert_eq!(v["gateway"]["echo_line_bytes"], 4096);
    assert_eq!(v["gateway"]["tags_per_connection"], 16);
    assert_eq!(v["gateway"]["connections"], 2);
    assert!(v["control_paths"].as_array().is_some_and(|a| a.len() == 3));
    assert!(v["surfaces"]
        .as_array()
        .is_some_and(|a| a.contains(&"fs".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_connection_and_broker_counters() {
    let h = harness().await;
    h.get("/v1/fs/ls?path=/proc").await;
    let r = h.get("/v1/meta/status").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["connected"], true);
    assert_eq!(v["connects"], 2);
    assert_eq!(v["reconnects"], 0);
    assert_eq!(v["live_connections"], 2);
    assert!(v["last_error"].is_null());
    let b = &v["broker"];
    assert!(b["checkouts"].as_u64().unwrap_or(0) >= 1);
    for key in [
        "waiters",
        "waiters_high_water",
        "in_flight_high_water",
        "exhausted",
        "timeouts",
        "retries",
        "unavailable",
    ] {
        assert!(b[key].is_u64(), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_routes_and_translate_hive_counters() {
    let h = harness().await;
    h.get("/v1/fs/cat?path=/proc/boot&max_bytes=65536").await;
    h.get("/v1/fs/cat?path=/nope&max_bytes=1").await;
    let r = h.get("/metrics").await;
    assert_eq!(r.status, 200);
    let ctype = r.headers["content-type"].to_str().unwrap_or("");
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let t = r.text();
    for needle in [
        "hive_gateway_requests_total{route=\"/v1/fs/cat\",code=\"200\"} 2",
        "hive_gateway_request_errors_total{route=\"/v1/fs/cat\"} 1",
        "hive_gateway_request_duration_seconds_bucket{route=\"/v1/fs/cat\",le=\"+Inf\"} 2",
        "hive_gateway_pool_connections_live 2",
        "cohesix_hive_up 1",
        "cohesix_hive_pressure_policy ",
        "cohesix_hive_sessions_total ",
        "cohesix_hive_outstanding_limit ",
        "cohesix_hive_workers_live 0",
        "cohesix_hive_ingest_p95_ms ",
        "cohesix_hive_lifecycle_state{value=\"ONLINE\"} 1",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_yaml_and_docs_are_served_without_a_token() {
    let h = harness().await;
    let r = crate::common::request(h.addr(), "GET", "/v1/openapi.yaml", &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .contains("yaml"));
    assert!(
        r.text().starts_with("openapi: 3.1"),
        "{}",
        &r.text()[..40.min(r.body.len())]
    );

    let r = crate::common::request(h.addr(), "GET", "/docs", &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("<code>/v1/fs/echo</code>"));
    assert!(!page.contains("<script") && !page.contains("https://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_404_and_wrong_method_405() {
    let h = harness().await;
    let r = h.get("/v1/fs/rm?path=/x").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], "ERR");
    let r = crate::common::post(h.addr(), "/v1/fs/cat", Vec::new()).await;
    assert_eq!(r.status, 405);
    let r = h.get("/v1/fs/echo").await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_a_request_id() {
    let h = harness().await;
    let a = h.get("/v1/meta/status").await;
    let b = h.get("/v1/meta/status").await;
    let id =
        |r: &crate::common::Reply| r.headers["x-request-id"].to_str().unwrap_or("").to_string();
    assert_ne!(id(&a), id(&b));
}
