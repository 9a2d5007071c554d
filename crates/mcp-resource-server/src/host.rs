//! `Host` validation (DNS rebinding protection): `Host` must name this server as its
//! public URL does (or be a loopback address literal of the listening socket); anything
//! else is answered 403.

use std::sync::Arc;

use axum::{extract::Request, http::header};

use crate::{
    check::{CheckLayer, CheckService, RequestCheck},
    error::Error,
    origin::OriginPolicy,
};

/// The `Host` check of an [`OriginPolicy`].
#[derive(Debug)]
pub struct HostCheck(pub Arc<OriginPolicy>);

impl RequestCheck for HostCheck {
    fn check(&self, request: &Request) -> Result<(), Error> {
        let host = match request.headers().get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => request.uri().authority().map(|a| a.as_str()),
        };
        if host.is_some_and(|host| self.0.host_allowed(host)) {
            return Ok(());
        }
        tracing::info!(host = ?host, "refused a request for a foreign Host");
        Err(Error::HostNotAllowed)
    }
}

/// Layer refusing requests whose `Host` is not allowed.
pub(crate) type HostLayer = CheckLayer<HostCheck>;

/// The service made by [`HostLayer`].
pub(crate) type HostService<S> = CheckService<S, HostCheck>;
