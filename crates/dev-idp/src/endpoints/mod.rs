//! HTTP endpoints, one file per protocol feature.

pub(crate) mod authorize;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod health;
pub(crate) mod introspect;
pub(crate) mod jwks;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod token;
pub(crate) mod userinfo;
