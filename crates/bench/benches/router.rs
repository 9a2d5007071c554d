//! The resource server's whole router, in process (no sockets, no load generator): one
//! stateless `tools/call` with authorization off (the ceiling), with a cached token, with
//! a cached token holding every tool's scope, and without a token (the 401 challenge);
//! and, as the floor, a bare axum route answering a constant reply.
//! The difference between the first two is what authorization costs per request (the
//! harness measures the same over loopback); the third skips the per-tool scope check,
//! which reads the body only for tokens lacking some tool's scope.
//!
//! `cargo bench -p bench --bench router`

use std::{convert::Infallible, hint::black_box};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use bench::{
    authz::{AuthServer, TokenSpec},
    keys::KeyAlg,
    wrk::{PROTOCOL_VERSION, TOOLS_CALL},
};
use criterion::{Criterion, criterion_group, criterion_main};
use mcp_resource_server::server::App;
use resource_server::{DemoOptions, demo_config};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

/// The `resource-server` binary's allocator, so that the router runs as it does there.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PUBLIC_URL: &str = "http://127.0.0.1:3001";

fn server(auth: &AuthServer, no_auth: bool) -> App {
    let config = demo_config(PUBLIC_URL, auth.issuer())
        .with_jwks_uri(auth.jwks_url())
        .with_stateless(true)
        .with_no_auth(no_auth);
    resource_server::server(config, &DemoOptions::default())
        .expect("valid settings")
        .router()
        .expect("valid settings")
}

fn request(token: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("{PUBLIC_URL}/mcp"))
        .header(header::HOST, "127.0.0.1:3001")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL_VERSION);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(TOOLS_CALL)).expect("request")
}

/// One `tools/call` through `app`, its reply read to the end.
fn call<S>(runtime: &Runtime, app: &S, token: Option<&str>) -> StatusCode
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>
        + Clone,
{
    runtime.block_on(async {
        let response = app
            .clone()
            .oneshot(request(token))
            .await
            .expect("infallible");
        let status = response.status();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        status
    })
}

fn stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let auth = runtime
        .block_on(bench::authz::start(KeyAlg::Rs256))
        .expect("authorization server");
    let token = TokenSpec::for_audience(format!("{PUBLIC_URL}/mcp")).mint(&auth);
    let all = TokenSpec {
        scope: "mcp:tools mcp:admin".into(),
        ..TokenSpec::for_audience(format!("{PUBLIC_URL}/mcp"))
    }
    .mint(&auth);
    let off = server(&auth, true);
    let on = server(&auth, false);
    let bare = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                bench::component::BARE_HTTP_REPLY,
            )
        }),
    );
    assert_eq!(call(&runtime, &off, None), StatusCode::OK);
    assert_eq!(call(&runtime, &on, Some(&token)), StatusCode::OK);
    assert_eq!(call(&runtime, &on, None), StatusCode::UNAUTHORIZED);

    assert_eq!(call(&runtime, &bare, None), StatusCode::OK);

    let mut group = c.benchmark_group("router");
    group.bench_function("floor/bare_axum_route", |b| {
        b.iter(|| assert_eq!(call(&runtime, black_box(&bare), None), StatusCode::OK));
    });
    group.bench_function("tools_call/authorization_off", |b| {
        b.iter(|| assert_eq!(call(&runtime, black_box(&off), None), StatusCode::OK));
    });
    group.bench_function("tools_call/cached_token", |b| {
        b.iter(|| assert_eq!(call(&runtime, black_box(&on), Some(&token)), StatusCode::OK));
    });
    group.bench_function("tools_call/cached_token_every_scope", |b| {
        b.iter(|| assert_eq!(call(&runtime, black_box(&on), Some(&all)), StatusCode::OK));
    });
    group.bench_function("no_token_401", |b| {
        b.iter(|| {
            assert_eq!(
                call(&runtime, black_box(&on), None),
                StatusCode::UNAUTHORIZED
            )
        });
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
