//! One deliberately broken server per check: each break must turn exactly its own line
//! (fail for a MUST, warn for a SHOULD), and leave every other line as it is against the
//! same server unbroken, except the lines that break makes moot (listed per case, and
//! never failing).

use mcp_auth_client::audit::{CheckId, Report, Status};
use mcp_auth_client::registration::ClientConfig;

use testkit::client_side::Break;

use super::{audit, expect_no_failure, login, server, status};

use CheckId::*;
use Status::{Fail, NotApplicable, Pass, Warn};

/// Checks about the authorization server's metadata, moot without it.
const AS_CHECKS: &[CheckId] = &[
    AsDiscovery,
    AsIssuer,
    AsContentType,
    AsRequiredMembers,
    AsPkceS256,
    AsRegistration,
    AsIssParameter,
    AsCors,
    DpopAdvertised,
];

/// Checks about a Protected Resource Metadata document, moot without one.
const PRM_DOC_CHECKS: &[CheckId] = &[
    PrmChallengeUrl,
    PrmPathInserted,
    PrmRoot,
    PrmContentType,
    PrmResource,
    PrmAuthorizationServers,
    PrmBearerMethods,
    PrmCors,
];

/// Checks that need a token, moot when the login or the token fails.
const AFTER_LOGIN: &[CheckId] = &[
    LoginIss,
    TokenAccepted,
    TokenAudience,
    TokenQuery,
    ScopeInsufficient,
];

struct Case {
    broken: Break,
    login: bool,
    check: CheckId,
    expected: Status,
    /// Other lines this break makes moot.
    moot: &'static [&'static [CheckId]],
}

const fn case(broken: Break, check: CheckId, expected: Status) -> Case {
    Case {
        broken,
        login: false,
        check,
        expected,
        moot: &[],
    }
}

impl Case {
    const fn with_login(mut self) -> Self {
        self.login = true;
        self
    }

    const fn moot(mut self, moot: &'static [&'static [CheckId]]) -> Self {
        self.moot = moot;
        self
    }
}

const CASES: &[Case] = &[
    case(Break::PlainHttpEndpoint, TransportHttps, Fail),
    case(Break::OriginIgnored, TransportOrigin, Fail).with_login(),
    // Every tokenless request is 403 then, so a 403 to a foreign Origin proves nothing.
    case(Break::Status403, ChallengeStatus, Fail).moot(&[&[TransportOrigin]]),
    case(Break::NoChallenge, ChallengeHeader, Fail).moot(&[&[
        ChallengeResourceMetadata,
        ChallengeScope,
        ChallengeNoErrorCode,
        PrmChallengeUrl,
        TokenInvalid,
    ]]),
    case(Break::NoResourceMetadata, ChallengeResourceMetadata, Warn).moot(&[&[PrmChallengeUrl]]),
    case(Break::NoScope, ChallengeScope, Warn),
    case(Break::ErrorCodeWithoutToken, ChallengeNoErrorCode, Warn),
    case(Break::GetServedWithoutToken, ChallengeEveryMethod, Fail),
    case(Break::InvalidToken400, TokenInvalid, Fail),
    case(Break::UnsignedAccepted, TokenUnsigned, Fail),
    case(Break::NoPrm, PrmFound, Fail).moot(&[
        &[ChallengeResourceMetadata],
        PRM_DOC_CHECKS,
        AS_CHECKS,
    ]),
    case(Break::ChallengeUrl404, PrmChallengeUrl, Fail),
    case(Break::NoPathPrm, PrmPathInserted, Warn),
    case(Break::RootPrmBroken, PrmRoot, Fail),
    case(Break::PrmAsText, PrmContentType, Fail),
    case(Break::PrmWrongResource, PrmResource, Fail),
    case(Break::NoAuthorizationServers, PrmAuthorizationServers, Fail).moot(&[AS_CHECKS]),
    case(Break::QueryBearerMethod, PrmBearerMethods, Fail),
    case(Break::PrmNoCors, PrmCors, Warn),
    case(Break::OfflineAccessAsked, ScopeOfflineAccess, Warn),
    case(Break::NoAsMetadata, AsDiscovery, Fail).moot(&[AS_CHECKS]),
    case(Break::AsMetadataMisplaced, AsDiscovery, Fail),
    case(Break::IssuerMismatch, AsIssuer, Fail),
    case(Break::AsAsOctetStream, AsContentType, Fail),
    case(Break::NoResponseTypes, AsRequiredMembers, Fail),
    case(Break::NoS256, AsPkceS256, Fail),
    case(Break::NoRegistration, AsRegistration, Warn),
    case(Break::IssNotAdvertised, AsIssParameter, Warn),
    case(Break::AsNoCors, AsCors, Warn),
    case(Break::DpopWeakAlgs, DpopAdvertised, Fail),
    case(Break::TokenEndpointDown, LoginFlow, Fail)
        .with_login()
        .moot(&[AFTER_LOGIN]),
    case(Break::IssNotAdvertised, LoginIss, Fail)
        .with_login()
        .moot(&[&[AsIssParameter]]),
    case(Break::TokenRefused, TokenAccepted, Fail)
        .with_login()
        .moot(&[&[TokenQuery, ScopeInsufficient]]),
    case(Break::AudienceIgnored, TokenAudience, Warn).with_login(),
    case(Break::QueryTokenAccepted, TokenQuery, Fail).with_login(),
    case(Break::InsufficientScope401, ScopeInsufficient, Fail).with_login(),
];

async fn run(broken: Option<Break>, with_login: bool) -> Report {
    let server = server(broken).await;
    let login = with_login.then(|| login(ClientConfig::default(), Some("admin")));
    let (report, trace) = audit(&server.mcp_url(), login).await;
    // The server's access tokens are JWTs whose last part is `secret-access-<n>`; none may
    // be shown.
    assert!(
        !trace.contains("secret-access-"),
        "a token in the trace:\n{trace}"
    );
    assert!(
        !report.to_json().contains("secret-access-"),
        "a token in the report"
    );
    report
}

#[tokio::test]
async fn the_unbroken_server_passes_every_check() {
    let before = run(None, false).await;
    for id in CheckId::ALL {
        let expected = if [
            LoginFlow,
            LoginIss,
            TokenAccepted,
            TokenAudience,
            TokenQuery,
            ScopeInsufficient,
        ]
        .contains(id)
        {
            NotApplicable
        } else {
            Pass
        };
        assert_eq!(
            status(&before, *id),
            expected,
            "{}\n{}",
            id.id(),
            before.to_text()
        );
    }
    let after = run(None, true).await;
    for id in CheckId::ALL {
        assert_eq!(
            status(&after, *id),
            Pass,
            "{}\n{}",
            id.id(),
            after.to_text()
        );
    }
}

#[tokio::test]
async fn each_break_turns_exactly_its_own_line() {
    // Every check has a break of its own.
    for id in CheckId::ALL {
        assert!(
            CASES.iter().any(|c| c.check == *id),
            "no broken server for {}",
            id.id()
        );
    }
    let baseline = [run(None, false).await, run(None, true).await];
    for case in CASES {
        let report = run(Some(case.broken), case.login).await;
        let base = &baseline[usize::from(case.login)];
        let label = format!(
            "{:?}{}",
            case.broken,
            if case.login { " (with --login)" } else { "" }
        );
        assert_eq!(
            status(&report, case.check),
            case.expected,
            "{label}: {} should be {:?}\n{}",
            case.check.id(),
            case.expected,
            report.to_text()
        );
        for id in CheckId::ALL.iter().filter(|id| **id != case.check) {
            let moot = case.moot.iter().any(|group| group.contains(id));
            let got = status(&report, *id);
            if moot {
                assert_ne!(
                    got,
                    Fail,
                    "{label}: {} failed too\n{}",
                    id.id(),
                    report.to_text()
                );
            } else {
                assert_eq!(
                    got,
                    status(base, *id),
                    "{label}: {} changed\n{}",
                    id.id(),
                    report.to_text()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_token_echoed_by_the_server_is_not_repeated() {
    // The server refuses a token in the query string and quotes it in its challenge; the
    // report says so without the token (`run` checks the trace and the JSON for it).
    let report = run(None, true).await;
    expect_no_failure(&report);
    let seen = &report.check(TokenQuery).unwrap().seen;
    assert!(seen.contains("the token [token] was sent"), "{seen}");
}
