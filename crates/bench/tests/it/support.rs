//! Starting the servers under test for the cases.

use std::path::{Path, PathBuf};

use bench::{
    authz::AuthServer,
    keys::KeyAlg,
    procs::{self, ResourceServerOptions, Server},
};

/// A scratch directory for logs and scripts.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The harness's authorization server and a resource server trusting it.
pub async fn resource_server(name: &str, options: ResourceServerOptions) -> (AuthServer, Server) {
    let auth = bench::authz::start(KeyAlg::Rs256)
        .await
        .expect("authorization server");
    let options = ResourceServerOptions {
        exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_bench"))),
        ..options
    };
    let log = scratch(name).join("resource-server.log");
    let server = procs::start_resource_server(name, auth.issuer(), &options, &log)
        .await
        .expect("resource server");
    (auth, server)
}
