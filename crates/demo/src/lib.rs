//! The one-command local demo of MCP authorization. `demo` with no subcommand starts the
//! authorization server, the static metadata server and the resource server as separate
//! processes of this executable (`demo idp`, `demo static-server`,
//! `demo resource-server`), then drives the client (`demo client`) through the flow.

pub mod children;
pub mod cli;
pub mod options;
pub mod orchestrate;
pub mod replay;
pub mod scale;
pub mod sign_in;
pub mod signals;
pub mod static_server;
