//! Integration tests of the demo: the static server over real sockets, the orchestrator's
//! port checks and child arguments, agreement with the resource server's defaults, and
//! the whole headless run as separate processes.

mod browser;
mod defaults;
mod diagram;
mod enterprise;
mod orchestration;
mod run;
mod static_server;
mod topology;
