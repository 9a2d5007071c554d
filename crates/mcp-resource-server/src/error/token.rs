//! Why the authorization layer refuses a token, its signing key or its DPoP proof.
//!
//! These reasons live beside [`Error`](super::Error), which turns them into responses,
//! so that the mapping runs one way only: the authorization modules name them through
//! [`crate::auth`] and the error module never depends on those modules.

use axum::http::HeaderName;

/// The `DPoP-Nonce` response header.
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Why a key could not be provided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// No key with this `kid` is published (after a refetch, when one was allowed).
    #[error("no signing key with the token's key id")]
    UnknownKey,
    /// The token has no `kid` and the key set has more than one key.
    #[error("token has no key id and the key set has several keys")]
    AmbiguousKey,
    /// No keys could be fetched and none are cached.
    #[error("signing keys are unavailable: {0}")]
    Unavailable(String),
}

/// Why a token was refused. Messages describe the check, never the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The token is longer than the configured cap.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A JWE (five parts); only signed tokens are accepted.
    #[error("encrypted tokens are not accepted")]
    Encrypted,
    /// `alg` outside the allow-list (including `none` and HMAC).
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// `alg` not allowed with the selected key.
    #[error("algorithm does not match the signing key")]
    AlgorithmKeyMismatch,
    /// The header has `crit`.
    #[error("critical header parameters are not supported")]
    CriticalHeader,
    /// `typ` is neither absent, `JWT` nor `at+jwt`.
    #[error("token type {0:?} is not an access token")]
    WrongType(String),
    /// No key could verify it.
    #[error(transparent)]
    Key(#[from] JwksError),
    /// Bad signature.
    #[error("invalid signature")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    #[error("token was not issued for this resource")]
    WrongAudience,
    /// A required claim is absent.
    #[error("missing claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong shape.
    #[error("invalid claim `{0}`")]
    InvalidClaim(&'static str),
    /// The authorization server says the token is not active (RFC 7662 `active: false`).
    #[error("the token is not active")]
    Inactive,
    /// The token cannot be checked right now (the introspection endpoint is down, slow
    /// or answered an error).
    #[error("cannot check the token: {0}")]
    Unavailable(&'static str),
}

impl ValidationError {
    /// True when the token may be fine but keys could not be obtained (answer 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Key(JwksError::Unavailable(_)) | Self::Unavailable(_)
        )
    }
}

/// Why a proof, or the binding between proof and token, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// `Authorization: DPoP` without a `DPoP` header.
    #[error("no DPoP proof")]
    MissingProof,
    /// More than one `DPoP` header.
    #[error("more than one DPoP proof")]
    MultipleProofs,
    /// Not a compact JWS of acceptable size, or a header or claim of the wrong shape.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    #[error("proof typ is not dpop+jwt")]
    WrongType,
    /// `alg` outside the allow-list (`none` and HMAC included).
    #[error("proof algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// `jwk` holds private or symmetric key material.
    #[error("proof jwk holds private key material")]
    PrivateKey,
    /// `jwk` is not a usable public key for `alg`.
    #[error("proof jwk is not a public key for its alg")]
    BadKey,
    /// The signature does not verify.
    #[error("invalid proof signature")]
    InvalidSignature,
    /// A required claim is missing.
    #[error("proof lacks `{0}`")]
    MissingClaim(&'static str),
    /// `htm` is not the request method.
    #[error("proof is for another method")]
    WrongMethod,
    /// `htu` is not the request URL.
    #[error("proof is for another URL")]
    WrongUrl,
    /// `iat` is older than the window.
    #[error("proof is too old")]
    Stale,
    /// `iat` is further ahead than the window.
    #[error("proof is issued in the future")]
    Future,
    /// `ath` is not the hash of the access token.
    #[error("proof is for another access token")]
    WrongAth,
    /// The proof's `jti` was seen before.
    #[error("proof was used before")]
    Replayed,
    /// A nonce is required and the proof has none, or a stale one; carries a fresh one.
    #[error("a current server nonce is required")]
    UseNonce(String),
    /// The token's `cnf.jkt` is not the thumbprint of the proof key.
    #[error("token is bound to another key")]
    KeyMismatch,
    /// A token without `cnf.jkt` sent with the `DPoP` scheme.
    #[error("token is not DPoP-bound")]
    NotBound,
    /// A DPoP-bound token sent with the `Bearer` scheme.
    #[error("DPoP-bound token sent as a bearer token")]
    Downgrade,
    /// A `Bearer` token where only DPoP-bound tokens are accepted.
    #[error("DPoP-bound token required")]
    Required,
    /// The replay cache is full; the proof cannot be checked for replay now.
    #[error("replay cache full")]
    ReplayCacheFull,
    /// The replay record shared by the instances (Redis) cannot be reached: the proof
    /// cannot be checked against the other instances, so it is refused (fail closed).
    #[error("shared replay record unavailable")]
    SharedReplayUnavailable,
    /// The principal has sent as many proofs within the window as one principal may;
    /// the proof was not checked for replay and is not remembered.
    #[error("too many proofs from this principal within the window")]
    OverQuota {
        /// Seconds until the principal's oldest proofs leave the replay cache.
        retry_after: u64,
    },
}

impl DpopError {
    /// The `error` code of the challenge (RFC 9449 §7.1, §9; RFC 6750 §3.1).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UseNonce(_) => "use_dpop_nonce",
            Self::NotBound | Self::Downgrade | Self::Required => "invalid_token",
            Self::ReplayCacheFull | Self::SharedReplayUnavailable => "temporarily_unavailable",
            Self::OverQuota { .. } => "too_many_proofs",
            _ => "invalid_dpop_proof",
        }
    }

    /// The message shown to the client.
    pub fn external_message(&self) -> &'static str {
        match self {
            Self::MissingProof => "A DPoP proof is required in the DPoP header",
            Self::MultipleProofs => "Exactly one DPoP header is allowed",
            Self::Malformed(_) => "The DPoP proof is malformed",
            Self::WrongType => "The DPoP proof must have typ dpop+jwt",
            Self::AlgorithmNotAllowed(_) => "The DPoP proof algorithm is not allowed",
            Self::PrivateKey => "The DPoP proof jwk must be a public key",
            Self::BadKey => "The DPoP proof jwk is not a public key for its algorithm",
            Self::InvalidSignature => "The DPoP proof signature is invalid",
            Self::MissingClaim(_) => "The DPoP proof lacks a required claim",
            Self::WrongMethod => "The DPoP proof htm does not match the request method",
            Self::WrongUrl => "The DPoP proof htu does not match the request URL",
            Self::Stale => "The DPoP proof iat is too old",
            Self::Future => "The DPoP proof iat is in the future",
            Self::WrongAth => "The DPoP proof ath does not match the access token",
            Self::Replayed => "The DPoP proof was used before",
            Self::UseNonce(_) => "Resource server requires nonce in DPoP proof",
            Self::KeyMismatch => "The access token is bound to another key",
            Self::NotBound => "The access token is not DPoP-bound",
            Self::Downgrade => "A DPoP-bound access token must be sent with the DPoP scheme",
            Self::Required => "A DPoP-bound access token is required",
            Self::ReplayCacheFull => "DPoP proofs cannot be checked right now",
            Self::SharedReplayUnavailable => {
                "DPoP proofs cannot be checked for replay right now; retry shortly"
            }
            Self::OverQuota { .. } => {
                "Too many DPoP proofs from this user within the proof window; retry after the time given"
            }
        }
    }
}
