//! HTTP endpoints, one file per protocol feature.

pub(crate) mod authorize;
pub(crate) mod client_assertion;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod grants;
pub(crate) mod health;
pub(crate) mod id_jag;
pub(crate) mod introspect;
pub(crate) mod jwks;
pub(crate) mod jwt_bearer;
pub(crate) mod login;
pub(crate) mod register;
pub(crate) mod token;
pub(crate) mod userinfo;
