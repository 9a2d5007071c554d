//! The reply to a `POST /mcp`, sent with the head of its event stream.
//!
//! In a Streamable HTTP session, rmcp answers a request with an event stream whose
//! first event (the priming event of SEP-1699, carrying the stream's event id) is
//! ready at once, while the reply comes a moment later from the session's handler,
//! after which the stream ends. Served as it comes, the head and the priming event
//! leave in one write and the reply and the end of the chunked body in another: two
//! segments for the client to read, and behind a proxy that streams (nginx with
//! `proxy_buffering off`) two reads and two writes more, for every request.
//!
//! [`gather`] holds the head of such a response for up to [`GRACE`] and sends what
//! the stream yields meanwhile with it. A stream that ends within that time (a reply
//! with nothing after it: the usual case) leaves as one body with its length; one that
//! goes on (a slow tool, progress notifications) gets its head and what came so far at
//! [`GRACE`], then the rest as it comes, as before. Nothing is dropped or reordered,
//! and a client that goes away meanwhile drops the stream as it would have.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{Response, header},
};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, combinators::BoxBody};

/// Longest a `POST`'s event stream waits for its reply before its head is sent.
pub(crate) const GRACE: Duration = Duration::from_millis(10);

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// `response` with what its event stream yields within `grace` sent along with its
/// head (and as one body with its length if the stream ends by then); any other
/// response as it is.
pub(crate) async fn gather(
    response: Response<BoxBody<Bytes, Infallible>>,
    grace: Duration,
) -> Response<Body> {
    if !is_event_stream(&response) {
        return response.map(Body::new);
    }
    let (parts, mut body) = response.into_parts();
    let mut gathered = Vec::new();
    let deadline = tokio::time::sleep(grace);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => match frame {
                // An event stream has data frames only; anything else is not sent.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        gathered.extend_from_slice(&data);
                    }
                }
                Some(Err(never)) => match never {},
                None => return Response::from_parts(parts, Body::from(gathered)),
            },
            () = &mut deadline => break,
        }
    }
    if gathered.is_empty() {
        return Response::from_parts(parts, Body::new(body));
    }
    let first = futures::stream::once(async move { Ok(Bytes::from(gathered)) });
    Response::from_parts(
        parts,
        Body::from_stream(first.chain(body.into_data_stream())),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use http_body_util::StreamBody;
    use hyper::body::Frame;

    use super::*;

    /// An event stream yielding `events`, each after its delay.
    fn event_stream(
        events: Vec<(Duration, &'static str)>,
        content_type: &str,
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let stream = futures::stream::iter(events).then(|(delay, event)| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Frame::data(Bytes::from(event)))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(BoxBody::new(StreamBody::new(stream)))
            .unwrap()
    }

    async fn text(body: Body) -> String {
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_reply_within_the_grace_leaves_with_the_head_as_one_body() {
        let response = event_stream(
            vec![
                (Duration::ZERO, "id: 0\nretry: 3000\ndata:\n\n"),
                (Duration::from_millis(2), "data: {\"id\":7}\n\n"),
            ],
            "text/event-stream",
        );
        let response = gather(response, Duration::from_secs(5)).await;
        let body = response.into_body();
        // One frame of known length: the whole stream.
        assert_eq!(
            hyper::body::Body::size_hint(&body).exact(),
            Some(41),
            "the stream ended within the grace, so its length is known"
        );
        assert_eq!(
            text(body).await,
            "id: 0\nretry: 3000\ndata:\n\ndata: {\"id\":7}\n\n"
        );
    }

    #[tokio::test]
    async fn a_slow_reply_gets_the_head_at_the_grace_and_the_rest_as_it_comes() {
        let response = event_stream(
            vec![
                (Duration::ZERO, "id: 0\nretry: 3000\ndata:\n\n"),
                (Duration::from_millis(300), "data: {\"id\":7}\n\n"),
            ],
            "text/event-stream",
        );
        let started = Instant::now();
        let response = gather(response, Duration::from_millis(20)).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(250),
            "the head waited {waited:?}, past the grace"
        );
        let mut body = response.into_body();
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), None);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"id: 0\nretry: 3000\ndata:\n\n");
        assert_eq!(text(body).await, "data: {\"id\":7}\n\n");
    }

    #[tokio::test]
    async fn other_responses_pass_as_they_are() {
        let response = event_stream(
            vec![(Duration::from_millis(50), "{\"id\":7}")],
            "application/json",
        );
        let started = Instant::now();
        let response = gather(response, Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(text(response.into_body()).await, "{\"id\":7}");
    }
}
