//! Integration tests of the dev-idp server over real sockets on 127.0.0.1.

mod signer;
mod support;

mod approval;
mod audience;
mod clients;
mod device;
mod dex;
mod discovery;
mod dpop;
mod enterprise;
mod errors;
mod files;
mod flow;
mod keys;
mod opaque;
mod private_key_jwt;
mod refresh;
mod registration;
