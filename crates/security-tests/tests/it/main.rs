//! Hardening tests: the attack matrix against the resource server, fault injection on
//! its JWKS and connections, its limits, cookies and CSRF; the client's faults, and
//! attacks on the client by a malicious server and authorization server. Real sockets
//! on 127.0.0.1, a test authorization server of their own, every log line captured.

mod attacks;
mod client_attacks;
mod client_faults;
mod cookies;
mod dpop_attacks;
mod faults;
mod introspection;
mod limits;
mod proto_urls;
mod sessions;
mod support;
