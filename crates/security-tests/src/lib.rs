//! Hardening of the resource server and the client: the attack matrix, fault injection
//! and limit tests live in `tests/it`; this library holds the load driver of the soak
//! run (`scripts/soak.sh`), exposed as the `soak-driver` binary.
