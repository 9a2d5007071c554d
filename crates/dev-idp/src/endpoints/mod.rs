//! HTTP endpoints, one file per protocol feature.

pub(crate) mod authorize;
pub(crate) mod discovery;
pub(crate) mod jwks;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod token;
pub(crate) mod userinfo;
