//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the wire types' schemas; `/v1/openapi.yaml` serves it and `/docs`
//! renders it. Nothing here is written by hand except the prose.

use crate::api::{
    BoundsResponse, BrokerCounters, EchoRequest, FsResponse, GatewayBounds, Problem,
    RecordsRequest, SegmentRequest, Status, StatusResponse, TelemetryResponse, Verb,
};
use crate::{routes, telemetry};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hive-gateway",
        description = "REST surface of a Cohesix hive. The gateway is a Secure9P client of \
                       the hive, attached as queen over a pool of pipelined sessions; every \
                       fs route maps to one console verb (LS, CAT, TAIL, ECHO) and answers \
                       the same response object. A hive refusal is HTTP 200 with \
                       `status: ERR`; invalid input is 400, a missing or wrong token 401, \
                       back-pressure 429, an unreachable hive 503, a timeout 504."
    ),
    paths(
        routes::ls,
        routes::cat,
        routes::tail,
        routes::echo,
        telemetry::segment,
        telemetry::records,
        telemetry::latest,
        telemetry::put_artifact,
        telemetry::get_artifact,
        routes::bounds,
        routes::status,
        routes::metrics,
        routes::openapi_yaml,
        routes::docs_page,
    ),
    components(schemas(
        FsResponse,
        EchoRequest,
        Problem,
        Status,
        Verb,
        BoundsResponse,
        GatewayBounds,
        StatusResponse,
        BrokerCounters,
        TelemetryResponse,
        SegmentRequest,
        RecordsRequest,
    )),
    modifiers(&AuthSchemes),
    tags(
        (name = "fs", description = "The hive's namespace: list, read, tail, append."),
        (name = "telemetry", description = "Telemetry ingest: segments, records, and \
            artifacts streamed in and out."),
        (name = "meta", description = "Bounds, connection state and metrics."),
        (name = "docs", description = "This document, as YAML and as a page."),
    )
)]
pub struct ApiDoc;

/// Declares the two ways to present the request token.
struct AuthSchemes;

impl utoipa::Modify for AuthSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("`Authorization: Bearer <token>`"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let header = ApiKeyValue::with_description("x-cohesix-auth", "`x-cohesix-auth: <token>`");
        components.add_security_scheme(
            "x-cohesix-auth",
            SecurityScheme::ApiKey(ApiKey::Header(header)),
        );
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as YAML.
pub fn yaml() -> String {
    document()
        .to_yaml()
        .unwrap_or_else(|e| format!("# the OpenAPI document cannot be rendered: {e}\n"))
}
