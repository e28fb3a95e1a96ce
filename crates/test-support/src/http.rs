//! Raw HTTP to a server's `/mcp` endpoint, for the tests about the wire
//! (tokens, Origin and Host, sessions).

use serde_json::Value;

/// A POST of `body` to `url` (with a bearer `token` and extra `headers`):
/// the status, headers and the JSON-RPC messages of the answer (an SSE
/// stream or one JSON body).
pub async fn post(
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Vec<Value>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, headers, crate::wire::body_messages(&text))
}
