//! Hardening of the resource server and the client.
//!
//! The attack matrix, fault injection, limit and cookie tests live in `tests/it`. This
//! library holds the load driver of the soak run (`scripts/soak.sh`): [`soak`] runs the
//! load and [`cli`] is the `soak-driver` command line.

pub mod cli;
pub mod soak;
