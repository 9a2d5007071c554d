//! Key rotation: new tokens use the new key, the old key stays published.

use std::collections::HashSet;

use crate::support::{auto_login, start};

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable() {
    let t = start(auto_login).await;
    let issue = || async {
        let (code, verifier) = t.code("openid", &[]).await;
        let (_, body) = t.exchange(&code, &verifier, &[]).await;
        body["access_token"].as_str().unwrap().to_owned()
    };
    let before = issue().await;
    let old_kid = t.idp.current_kid();
    let new_kid = t.idp.rotate_keys().unwrap();
    assert_ne!(old_kid, new_kid);
    let after = issue().await;
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );
    let jwks = t.jwks().await;
    let kids: HashSet<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, HashSet::from([old_kid.as_str(), new_kid.as_str()]));
    t.verify(&before).await;
    t.verify(&after).await;
}

#[tokio::test]
async fn scheduled_rotation_happens_on_use() {
    let t = start(|c| auto_login(c.with_key_rotation(std::time::Duration::from_millis(200)))).await;
    let first = t.idp.current_kid();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let jwks = t.jwks().await;
    assert_ne!(
        jwks["keys"][0]["kid"],
        first.as_str(),
        "a new key leads the set"
    );
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == first.as_str())
    );
}
