//! Interoperability tests: the project's parts against real third-party peers, each on
//! loopback, with the peers installed from `interop/package-lock.json`
//! (`npm ci --prefix interop`).
//!
//! - [`oidc_provider`]: the project's client and resource server with tokens from
//!   oidc-provider (registration, refresh, both transports);
//! - [`ts_client`]: the TypeScript SDK's client against the project's resource server;
//! - [`ts_server`]: the project's client against the TypeScript SDK's server;
//! - [`dex_topology`]: dev-idp in Dex mode, the static metadata server and the resource
//!   server as the README configures them for Dex, with the project's client.

mod dex_topology;
mod oidc_provider;
mod support;
mod ts_client;
mod ts_server;
