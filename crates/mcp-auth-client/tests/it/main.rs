//! Integration tests of mcp-auth-client, against real servers on 127.0.0.1:0.

mod audience;
mod audit;
mod cache;
mod challenge;
mod cli;
mod dev_idp_grants;
mod device;
mod extensions;
mod failures;
mod flow;
mod insecure_http;
mod limits;
mod loopback;
mod negotiation;
mod preregistered;
mod project;
mod sse;
mod support;
