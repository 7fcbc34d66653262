//! The OpenAPI document is generated from the code; this snapshot makes
//! every change to it a visible diff in review.

use std::path::PathBuf;

const UPDATE: &str = "UPDATE_OPENAPI_SNAPSHOT";

#[test]
fn openapi_document_matches_the_snapshot() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let generated = hive_gateway::openapi::yaml();
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, &generated).expect("write snapshot");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored != generated {
        let first = stored
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(stored.lines().count().min(generated.lines().count()));
        panic!(
            "the OpenAPI document drifted from {} (first difference at line {}).\n\
             If the change is intended, update the snapshot with\n  \
             {UPDATE}=1 cargo test -p hive-gateway --test contract openapi_snapshot\n\
             and commit crates/gateway/openapi.yaml.",
            path.display(),
            first + 1
        );
    }
}

#[test]
fn openapi_document_is_3_1_with_every_route_and_both_auth_schemes() {
    let doc = serde_json::to_value(hive_gateway::openapi::document()).expect("json");
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    for route in [
        "/v1/fs/ls",
        "/v1/fs/cat",
        "/v1/fs/tail",
        "/v1/fs/echo",
        "/v1/meta/bounds",
        "/v1/meta/status",
        "/v1/openapi.yaml",
        "/docs",
        "/metrics",
    ] {
        assert!(doc["paths"][route].is_object(), "{route} missing");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["x-cohesix-auth"]["name"], "x-cohesix-auth");
    let cat = &doc["paths"]["/v1/fs/cat"]["get"];
    for code in ["200", "400", "401", "429", "503", "504"] {
        assert!(cat["responses"][code].is_object(), "cat {code}");
    }
}
