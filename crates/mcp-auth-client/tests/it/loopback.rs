//! The loopback redirect listener: one code accepted, junk ignored (the login goes on),
//! escaped pages, timeout.

use std::time::Duration;

use mcp_auth_client::ClientError;
use mcp_auth_client::loopback::{CallbackListener, Expected};

fn expected() -> Expected {
    Expected {
        state: "s1".into(),
        issuer: "http://127.0.0.1:9/as".into(),
        iss_required: false,
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn accepts_one_code_and_escapes_what_it_echoes() {
    let l = CallbackListener::bind(0).await.unwrap();
    let uri = l.redirect_uri().to_owned();
    assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"));
    let pending = l.serve(expected());
    // Not an authorization response: refused, and not consumed.
    assert_eq!(get(&uri).await.0, 400);
    let (status, page) = get(&format!(
        "{uri}?state=s1&error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
    // A second response is not accepted.
    assert_eq!(get(&format!("{uri}?state=s1&code=abc")).await.0, 409);
    let err = pending.wait(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::AuthorizationDenied { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn returns_the_code_when_state_matches() {
    let l = CallbackListener::bind(0).await.unwrap();
    let uri = l.redirect_uri().to_owned();
    let pending = l.serve(expected());
    let (status, page) = get(&format!(
        "{uri}?state=s1&code=the-code&iss=http%3A%2F%2F127.0.0.1%3A9%2Fas"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(!page.contains("the-code"));
    let cb = pending.wait(Duration::from_secs(5)).await.unwrap();
    assert_eq!(cb.code, "the-code");
    assert!(!format!("{cb:?}").contains("the-code"));
}

#[tokio::test]
async fn junk_callbacks_are_ignored_and_the_real_one_still_accepted() {
    let l = CallbackListener::bind(0).await.unwrap();
    let uri = l.redirect_uri().to_owned();
    let pending = l.serve(expected());
    // What any local process can send: a foreign state (with a code or an error), no
    // state, no code. Each gets 400 and changes nothing.
    for junk in [
        "?code=junk&state=junk",
        "?error=access_denied&state=junk",
        "?code=junk",
        "?state=s1",
        "",
    ] {
        let (status, page) = get(&format!("{uri}{junk}")).await;
        assert_eq!(status, 400, "{junk}");
        assert!(!page.contains("junk"), "{page}");
    }
    assert!(!pending.decided());
    assert_eq!(pending.ignored(), 5);
    // The real response still completes the login.
    let (status, _) = get(&format!("{uri}?state=s1&code=the-code")).await;
    assert_eq!(status, 200);
    let cb = pending.wait(Duration::from_secs(5)).await.unwrap();
    assert_eq!(cb.code, "the-code");
    assert_eq!(cb.ignored, 5);
}

#[tokio::test]
async fn junk_alone_ends_in_the_timeout_which_counts_it() {
    let l = CallbackListener::bind(0).await.unwrap();
    let uri = l.redirect_uri().to_owned();
    let pending = l.serve(expected());
    assert_eq!(get(&format!("{uri}?state=other&code=x")).await.0, 400);
    let err = pending.wait(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::CallbackTimeout { ignored: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("1 request to the callback was ignored"),
        "{err}"
    );
}

#[tokio::test]
async fn times_out() {
    let l = CallbackListener::bind(0).await.unwrap();
    let err = l
        .serve(expected())
        .wait(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::CallbackTimeout { ignored: 0, .. }
    ));
    assert!(err.to_string().contains("no authorization callback"));
}

#[tokio::test]
async fn listens_on_loopback_only() {
    let l = CallbackListener::bind(0).await.unwrap();
    let port: u16 = l
        .redirect_uri()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The port is taken on 127.0.0.1 ...
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    drop(l);
}
