//! The HTML pages: login form, approval page, error page. Every value placed in a page
//! is escaped; the form carries only an opaque request id, bound server-side to the
//! pending authorization request. Pages may not be framed (clickjacking).

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=email],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#a00}.muted{color:#666;font-size:.9rem}";

fn page(title: &str, body: &str) -> Response {
    let html = Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    ));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// The login form for a pending request.
pub(crate) fn login_page(action: &str, client: &str, login: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<h1>Log in to continue to {client}</h1>{error}\
<form method=\"post\" action=\"{action}\">\
<label for=\"login\">Email address</label>\
<input id=\"login\" type=\"email\" name=\"login\" value=\"{login}\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label>\
<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Log in</button></form>\
<p class=\"muted\">Local development authorization server.</p>",
            client = escape(client),
            action = escape(action),
            login = escape(login),
        ),
    )
}

/// The "grant access" page shown after login unless `skipApprovalScreen` is set.
pub(crate) fn approval_page(
    action: &str,
    request_id: &str,
    hmac: &str,
    client: &str,
    scopes: &[String],
) -> Response {
    let items: String = scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    page(
        "Grant access",
        &format!(
            "<h1>{client} wants access</h1><p>Scopes requested:</p><ul>{items}</ul>\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"req\" value=\"{req}\">\
<input type=\"hidden\" name=\"hmac\" value=\"{hmac}\">\
<button type=\"submit\" name=\"approval\" value=\"approve\">Grant access</button> \
<button type=\"submit\" name=\"approval\" value=\"rejected\">Cancel</button></form>",
            client = escape(client),
            action = escape(action),
            req = escape(request_id),
            hmac = escape(hmac),
        ),
    )
}

/// The device flow's page where the user types the code shown by the device.
pub(crate) fn device_page(action: &str, user_code: &str, invalid: bool) -> Response {
    let error = if invalid {
        "<p class=\"error\" role=\"alert\">Invalid or expired user code.</p>"
    } else {
        ""
    };
    page(
        "Enter the code",
        &format!(
            "<h1>Enter the code shown on your device</h1>{error}\
<form method=\"post\" action=\"{action}\">\
<label for=\"user_code\">User code</label>\
<input id=\"user_code\" type=\"text\" name=\"user_code\" value=\"{code}\" autocomplete=\"off\" required autofocus>\
<button type=\"submit\">Continue</button></form>",
            action = escape(action),
            code = escape(user_code),
        ),
    )
}

/// Shown once the device has been granted its tokens.
pub(crate) fn device_success_page(client: &str) -> Response {
    page(
        "Device approved",
        &format!(
            "<h1>Login successful</h1><p>Return to {} on your device; it now has access.</p>",
            escape(client)
        ),
    )
}

/// An error shown to the user.
pub(crate) fn error_page(message: &str) -> Response {
    page(
        "Error",
        &format!(
            "<h1>Something went wrong</h1><p class=\"error\">{}</p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_bytes(body: axum::body::Body) -> Vec<u8> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(body, usize::MAX))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn escapes_everything_echoed() {
        let response = login_page(
            "/dex/x?state=r\"><script>",
            "<b>c</b>",
            "a'b&c",
            Some("<e>"),
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let body = response.into_body();
        let bytes = body_bytes(body);
        let html = String::from_utf8(bytes).unwrap();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>c</b>"));
        assert!(html.contains("r&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("a&#39;b&amp;c"));
        assert!(html.contains("&lt;e&gt;"));
    }
}
