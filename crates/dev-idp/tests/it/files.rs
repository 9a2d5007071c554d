//! docker-compose.yml, dex-config.yaml, nginx-scale.conf and static-metadata/ must agree with each other,
//! with dev-idp's Dex mode, and with the resource server's defaults (issuer
//! http://localhost:5556/dex, port 3001, browser callback under http://localhost:3001).
//! Docker cannot run in CI, so these checks are what keeps the files honest.

use mcp_auth_proto::metadata::AuthorizationServerMetadata;
use serde_yaml_ng::Value as Yaml;
use url::Url;

use crate::support::repo_file;

const ISSUER: &str = "http://localhost:5556/dex";
const STATIC_ISSUER: &str = "http://localhost:5558";
const RS_ORIGIN: &str = "http://localhost:3001";

fn compose() -> Yaml {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo_file("docker-compose.yml")).unwrap())
        .unwrap()
}

fn static_metadata_text() -> String {
    std::fs::read_to_string(repo_file(
        "static-metadata/.well-known/oauth-authorization-server",
    ))
    .unwrap()
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// "127.0.0.1:5556:5556" or "5556:5556" → (host port, container port).
fn port_mapping(spec: &str) -> (u16, u16) {
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    (parts[1].parse().unwrap(), parts[0].parse().unwrap())
}

#[test]
fn dex_config_matches_the_shared_topology() {
    let dex = dev_idp::DexConfig::load(&repo_file("dex-config.yaml")).unwrap();
    assert_eq!(dex.issuer, ISSUER);
    let web_port: u16 = dex
        .web
        .http
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(web_port, Url::parse(ISSUER).unwrap().port().unwrap());
    assert!(dex.web.allowed_origins.iter().any(|o| o == RS_ORIGIN));
    assert!(dex.oauth2.skip_approval_screen, "no approval screen");
    assert!(dex.enable_password_db);

    let cli = dex.client("mcp-client").expect("mcp-client");
    assert!(cli.public && cli.redirect_uris.is_empty() && cli.secret.is_none());
    let rs = dex
        .client("mcp-resource-server")
        .expect("mcp-resource-server");
    assert!(rs.trusted_peers.iter().any(|p| p == "mcp-client"));
    assert!(
        rs.redirect_uris.is_empty(),
        "the resource server never logs in"
    );
    let browser = dex.client("mcp-browser").expect("mcp-browser");
    assert!(browser.public);
    assert_eq!(browser.redirect_uris, [format!("{RS_ORIGIN}/app/callback")]);

    let alice = dex.user("alice@example.com").expect("alice");
    assert_eq!(alice.username, "alice");
    assert!(bcrypt::verify("password", &alice.hash).unwrap());
    assert!(!alice.user_id.is_empty());
}

#[test]
fn compose_runs_a_recent_dex_and_busybox_on_the_shared_ports() {
    let compose = compose();
    let services = &compose["services"];
    let dex = &services["dex"];
    let image = dex["image"].as_str().unwrap();
    let version = image
        .strip_prefix("ghcr.io/dexidp/dex:v")
        .expect("pinned Dex image");
    let numbers: Vec<u32> = version.split('.').map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 3, "pinned to an exact release: {image}");
    assert!(
        (numbers[0], numbers[1]) >= (2, 42),
        "loopback IP redirects on any port need Dex v2.42 or later: {image}"
    );
    let dex_ports = strings(&dex["ports"]);
    assert!(
        dex_ports
            .iter()
            .map(|p| port_mapping(p))
            .any(|m| m == (5556, 5556)),
        "{dex_ports:?}"
    );
    let command = strings(&dex["command"]);
    let config_path = command.last().unwrap();
    assert!(
        strings(&dex["volumes"])
            .iter()
            .any(|v| v.starts_with(&format!("./dex-config.yaml:{config_path}"))),
        "dex-config.yaml is mounted where Dex reads it"
    );

    let busybox = &services["static-metadata"];
    assert!(busybox["image"].as_str().unwrap().starts_with("busybox:"));
    let command = strings(&busybox["command"]);
    assert_eq!(command[0], "httpd");
    let arg = |flag: &str| command[command.iter().position(|c| c == flag).unwrap() + 1].clone();
    assert_eq!(arg("-p"), "5558");
    let root = arg("-h");
    assert!(
        strings(&busybox["volumes"])
            .iter()
            .any(|v| v.starts_with(&format!("./static-metadata:{root}")))
    );
    assert!(
        strings(&busybox["ports"])
            .iter()
            .map(|p| port_mapping(p))
            .any(|m| m == (5558, 5558))
    );
    assert_eq!(Url::parse(STATIC_ISSUER).unwrap().port(), Some(5558));
}

#[tokio::test]
async fn static_metadata_is_complete_and_agrees_with_dex() {
    let text = static_metadata_text();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let meta: AuthorizationServerMetadata = serde_json::from_str(&text).unwrap();
    assert_eq!(meta.issuer, STATIC_ISSUER);
    assert!(meta.supports_pkce_s256());
    assert!(meta.response_types_supported.iter().any(|r| r == "code"));
    assert!(
        meta.registration_endpoint.is_none(),
        "Dex has no registration"
    );

    // Compare with what dev-idp (Dex mode, same file) publishes at its OIDC discovery.
    let t = crate::support::start(|c| c.with_issuer(ISSUER).unwrap()).await;
    let oidc: serde_json::Value = t
        .http
        .get(format!("{}/dex/.well-known/openid-configuration", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "device_authorization_endpoint",
        "introspection_endpoint",
        "response_types_supported",
        "grant_types_supported",
        "code_challenge_methods_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert_eq!(doc[field], oidc[field], "{field}");
    }
    // Every advertised scope is one Dex accepts from mcp-client.
    let dex = dev_idp::DexConfig::load(&repo_file("dex-config.yaml")).unwrap();
    for scope in &meta.scopes_supported {
        let ok = dev_idp::settings::DEX_SCOPES.contains(&scope.as_str())
            || scope
                .strip_prefix("audience:server:client_id:")
                .and_then(|peer| dex.client(peer))
                .is_some_and(|peer| peer.trusted_peers.iter().any(|p| p == "mcp-client"));
        assert!(ok, "Dex would refuse scope {scope}");
    }
    // The public CLI authenticates with `none`, which Dex accepts from public clients.
    assert!(
        meta.token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == "none")
    );
}

/// The `scale` profile: Redis, nginx and three resource servers that share the Redis,
/// behind an nginx that balances round-robin over exactly those three.
#[test]
fn compose_scale_profile_shares_redis_behind_nginx() {
    let compose = compose();
    let services = &compose["services"];
    let in_scale = |name: &str| strings(&services[name]["profiles"]).contains(&"scale".into());
    for name in ["redis", "nginx", "rs1", "rs2", "rs3"] {
        assert!(in_scale(name), "{name} is in the scale profile");
    }
    for name in ["dex", "static-metadata"] {
        assert!(
            services[name].get("profiles").is_none(),
            "{name} runs in every profile"
        );
    }
    let redis = &services["redis"];
    assert!(redis["image"].as_str().unwrap().starts_with("redis:7"));
    let mut listen_ports = Vec::new();
    for name in ["rs1", "rs2", "rs3"] {
        let env = &services[name]["environment"];
        let var = |key: &str| env[key].as_str().unwrap_or_else(|| panic!("{name}: {key}"));
        assert_eq!(var("MCP_RS_REDIS_URL"), "redis://redis:6379", "{name}");
        assert_eq!(var("MCP_RS_ISSUER"), ISSUER, "{name}");
        assert_eq!(var("MCP_RS_PUBLIC_URL"), RS_ORIGIN, "{name}");
        let listen = var("MCP_RS_LISTEN");
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{name} listens on the network"
        );
        listen_ports.push(listen.rsplit(':').next().unwrap().parse::<u16>().unwrap());
    }
    let nginx = &services["nginx"];
    let conf_path = strings(&nginx["volumes"])
        .into_iter()
        .find_map(|v| v.split(':').next().map(str::to_owned))
        .unwrap();
    let conf = std::fs::read_to_string(repo_file(conf_path.trim_start_matches("./"))).unwrap();
    let upstream_block = conf
        .split("upstream mcp {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("an upstream block");
    let upstreams: Vec<&str> = upstream_block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|s| s.trim_end_matches(';'))
        .collect();
    assert_eq!(
        upstreams,
        ["rs1", "rs2", "rs3"]
            .iter()
            .zip(&listen_ports)
            .map(|(n, p)| format!("{n}:{p}"))
            .collect::<Vec<_>>(),
        "nginx balances over exactly the three resource servers"
    );
    for affinity in ["ip_hash", "sticky", "hash "] {
        assert!(!conf.contains(affinity), "no session affinity ({affinity})");
    }
    assert!(
        conf.contains("proxy_buffering off"),
        "event streams unbuffered"
    );
    let listen: u16 = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen "))
        .unwrap()
        .trim_end_matches(';')
        .parse()
        .unwrap();
    let public_port = Url::parse(RS_ORIGIN).unwrap().port().unwrap();
    assert!(
        strings(&nginx["ports"])
            .iter()
            .map(|p| port_mapping(p))
            .any(|m| m == (public_port, listen)),
        "nginx is reached at the resource servers' public URL"
    );
}
