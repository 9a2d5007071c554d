//! The on-disk cache of tokens and client registrations.
//!
//! Layout, in `$MCP_CLIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/mcp-client`, else
//! `~/.cache/mcp-client`:
//! - `tokens-<server>-<as+client>.json`: one [`TokenSet`] per MCP server, authorization
//!   server and client (the key hashes are FNV-1a, stable across builds);
//! - `client-<as>.json`: one dynamic registration per authorization server, reused;
//! - `binding-<client>.json`: the authorization server a pre-registered client id is
//!   bound to (see `registration.rs`);
//! - `dpop-<as+client>.json`: the DPoP key pair of a client at an authorization server
//!   (see `dpop.rs`).
//!
//! # Security
//! The directory is created `0700` and every file `0600` (on Unix). Files are written to a
//! temporary file in the same directory, flushed, then renamed over the old one, so a
//! reader sees either the old or the new content, never a torn one. The files hold bearer
//! tokens: anyone who can read them can act as the user until the tokens expire.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mcp_auth_proto::{AccessToken, RefreshToken};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::identity::StoredClient;

/// Tokens for one server, authorization server and client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    /// The MCP server URL, canonical (the cache key).
    pub server: String,
    /// The `resource` the tokens were requested for.
    pub resource: String,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Where to refresh.
    pub token_endpoint: String,
    /// The client the tokens were issued to.
    pub client: StoredClient,
    /// The access token.
    pub access_token: AccessToken,
    /// Its type (`Bearer`).
    pub token_type: String,
    /// The refresh token, if one was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope (the requested one when the AS did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Expiry of the access token, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When the tokens were obtained, seconds since the epoch.
    pub obtained_at: u64,
}

impl TokenSet {
    /// Seconds until the access token expires (negative once expired); `None` if unknown.
    #[must_use]
    pub fn expires_in(&self) -> Option<i64> {
        self.expires_at
            .map(|e| i64::try_from(e).unwrap_or(i64::MAX) - i64::try_from(now()).unwrap_or(0))
    }

    /// True when the access token expires within `margin` seconds.
    #[must_use]
    pub fn expires_within(&self, margin: i64) -> bool {
        self.expires_in().is_some_and(|left| left <= margin)
    }
}

/// A dynamic registration kept for reuse with the same authorization server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRegistration {
    /// The authorization server's issuer.
    pub issuer: String,
    /// The registered client.
    pub client: StoredClient,
    /// When it was registered, seconds since the epoch.
    pub registered_at: u64,
}

/// The authorization server a pre-registered client id (and its secret) belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientBinding {
    /// The pre-registered `client_id`.
    pub client_id: String,
    /// The issuer it is registered with.
    pub issuer: String,
    /// When the binding was recorded, seconds since the epoch.
    pub bound_at: u64,
}

/// The cache. A disabled cache keeps nothing.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// A cache in `dir` (created on first write).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// A cache that stores nothing.
    #[must_use]
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The directory, if enabled.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The default directory: `$MCP_CLIENT_CACHE_DIR`, `$XDG_CACHE_HOME/mcp-client`,
    /// `$HOME/.cache/mcp-client`.
    #[must_use]
    pub fn default_dir() -> Option<PathBuf> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(d) = env("MCP_CLIENT_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = env("XDG_CACHE_HOME") {
            return Some(PathBuf::from(d).join("mcp-client"));
        }
        env("HOME").map(|h| PathBuf::from(h).join(".cache").join("mcp-client"))
    }

    /// The most recently obtained tokens for `server`.
    pub fn load_tokens(&self, server: &str) -> Result<Option<TokenSet>> {
        Ok(self
            .list_tokens()?
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| t.server == server)
            .max_by_key(|t| t.obtained_at))
    }

    /// Every token file, with its path.
    pub fn list_tokens(&self) -> Result<Vec<(PathBuf, TokenSet)>> {
        let mut out = Vec::new();
        for path in self.files("tokens-")? {
            if let Some(t) = read_json::<TokenSet>(&path)? {
                out.push((path, t));
            }
        }
        out.sort_by(|a, b| a.1.server.cmp(&b.1.server));
        Ok(out)
    }

    /// Stores tokens (replacing those of the same server, AS and client).
    pub fn save_tokens(&self, tokens: &TokenSet) -> Result<Option<PathBuf>> {
        let name = format!(
            "tokens-{:016x}-{:016x}.json",
            fnv1a(&tokens.server),
            fnv1a(&format!("{}\n{}", tokens.issuer, tokens.client.client_id))
        );
        self.write_json(&name, tokens)
    }

    /// Forgets every token of `server`; returns how many files were removed.
    pub fn remove_tokens(&self, server: &str) -> Result<usize> {
        let mut n = 0;
        for (path, t) in self.list_tokens()? {
            if t.server == server {
                remove(&path)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Forgets every token.
    pub fn remove_all_tokens(&self) -> Result<usize> {
        let files = self.files("tokens-")?;
        for f in &files {
            remove(f)?;
        }
        Ok(files.len())
    }

    /// The registration kept for `issuer`.
    pub fn load_registration(&self, issuer: &str) -> Result<Option<StoredRegistration>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = dir.join(format!("client-{:016x}.json", fnv1a(issuer)));
        Ok(read_json::<StoredRegistration>(&path)?.filter(|r| r.issuer == issuer))
    }

    /// Keeps a registration for reuse.
    pub fn save_registration(&self, reg: &StoredRegistration) -> Result<Option<PathBuf>> {
        self.write_json(&format!("client-{:016x}.json", fnv1a(&reg.issuer)), reg)
    }

    /// Forgets the registration kept for `issuer`.
    pub fn remove_registration(&self, issuer: &str) -> Result<()> {
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("client-{:016x}.json", fnv1a(issuer)));
            if path.exists() {
                remove(&path)?;
            }
        }
        Ok(())
    }

    /// The issuer the pre-registered `client_id` is bound to, if recorded.
    pub fn load_binding(&self, client_id: &str) -> Result<Option<ClientBinding>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = dir.join(binding_file(client_id));
        Ok(read_json::<ClientBinding>(&path)?.filter(|b| b.client_id == client_id))
    }

    /// Records the issuer a pre-registered client id is bound to (replacing any other).
    pub fn save_binding(&self, binding: &ClientBinding) -> Result<Option<PathBuf>> {
        self.write_json(&binding_file(&binding.client_id), binding)
    }

    fn files(&self, prefix: &str) -> Result<Vec<PathBuf>> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(prefix) && name.ends_with(".json") {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes another owner-only JSON file into the cache directory (a DPoP key).
    pub(crate) fn write_private_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<Option<PathBuf>> {
        self.write_json(name, value)
    }

    /// Reads a file written by [`Cache::write_private_json`]; `None` if absent or unreadable.
    pub(crate) fn read_private_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
    ) -> Result<Option<T>> {
        match &self.dir {
            Some(dir) => read_json(&dir.join(name)),
            None => Ok(None),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<Option<PathBuf>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| io_err(dir, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        ensure_private_dir(dir)?;
        let path = dir.join(name);
        write_atomic(&path, &bytes)?;
        Ok(Some(path))
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
/// The file is created owner-only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        crate::random::unguessable()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io_err(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(dir).map_err(|e| io_err(dir, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_err(dir, e))?;
        }
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        // A file that no longer parses (another version, hand-edited) is ignored, not fatal.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn remove(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Cache {
        path: path.display().to_string(),
        source,
    }
}

fn binding_file(client_id: &str) -> String {
    format!("binding-{:016x}.json", fnv1a(client_id))
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 64-bit FNV-1a: a stable, dependency-free hash for file names.
pub(crate) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
