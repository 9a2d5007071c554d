//! The resource server's defaults agree with dex-config.yaml and the static metadata.

use clap::Parser as _;

fn repo(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

#[test]
fn resource_server_defaults_match_the_dex_files() {
    let rs = resource_server::cli::Cli::parse_from(["resource-server"]);
    let dex = dev_idp::DexConfig::load(&repo("dex-config.yaml")).unwrap();
    assert_eq!(
        rs.issuer, dex.issuer,
        "the resource server trusts Dex's issuer by default"
    );
    assert_eq!(rs.listen.port(), 3001);
    let public = url::Url::parse(&rs.public_url()).unwrap();
    let origin = public.origin().ascii_serialization();
    assert_eq!(origin, "http://localhost:3001");
    assert!(
        dex.web.allowed_origins.contains(&origin),
        "CORS for the browser page"
    );
    let browser = dex.client("mcp-browser").unwrap();
    assert!(
        browser
            .redirect_uris
            .iter()
            .all(|u| u.starts_with(&format!("{origin}/")))
    );
    assert_eq!(rs.scopes_supported, ["mcp:tools", "mcp:admin"]);
    assert_eq!(rs.required_scopes, ["mcp:tools"]);
    assert_eq!(rs.tool_scopes, ["admin_status=mcp:admin"]);

    // dev-idp's MCP-ready mode accepts the resource server's default scopes.
    let config = dev_idp::IdpConfig::from_dex(dex)
        .unwrap()
        .with_features(dev_idp::Features::mcp_ready());
    for scope in &rs.scopes_supported {
        assert!(config.is_known_scope(scope), "{scope}");
    }

    // The static metadata points at the same Dex issuer's endpoints.
    let text = std::fs::read_to_string(repo(
        "static-metadata/.well-known/oauth-authorization-server",
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["jwks_uri"], format!("{}/keys", rs.issuer));
}
