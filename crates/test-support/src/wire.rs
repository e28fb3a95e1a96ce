//! Raw JSON-RPC as the tests and the bench clients write it, and the
//! bodies of Streamable HTTP answers (std and `serde_json` only).

use std::net::SocketAddr;

use serde_json::{Value, json};

/// A JSON-RPC request.
pub fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A JSON-RPC notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The params of `initialize`.
pub fn initialize_params(version: &str, capabilities: Value, client: &str) -> Value {
    json!({"protocolVersion": version, "capabilities": capabilities,
           "clientInfo": {"name": client, "version": "0"}})
}

/// The params of a `tools/call` of `shell` with `arguments` (and `_meta`).
pub fn shell_params(arguments: Value, meta: Option<Value>) -> Value {
    let mut params = json!({"name": "shell", "arguments": arguments});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    params
}

/// A `tools/call` request of `shell`.
pub fn tools_call(id: u64, arguments: Value, meta: Option<Value>) -> Value {
    request(id, "tools/call", shell_params(arguments, meta))
}

/// One JSON-RPC message as a line of the stdio transport.
pub fn line(message: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("a Value serializes");
    line.push(b'\n');
    line
}

/// The JSON-RPC messages of a Streamable HTTP answer body: one JSON
/// document, or the `data:` lines of an SSE stream.
pub fn body_messages(body: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        return vec![value];
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

/// The address in the server's "listening: MCP over Streamable HTTP at
/// http://ADDR/mcp" log line, once it is there.
pub fn listening_addr(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("listening: MCP over"))?;
    let rest = &line[line.find("at http://")? + "at http://".len()..];
    rest[..rest.find("/mcp")?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_bodies_are_json_or_sse() {
        let one = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
        assert_eq!(body_messages(&one.to_string()), vec![one.clone()]);
        let sse = format!("event: message\ndata: {one}\n\nid: 2\ndata: {{\"x\": 1}}\n\n");
        assert_eq!(body_messages(&sse), vec![one, json!({"x": 1})]);
        assert!(body_messages("").is_empty());
    }

    #[test]
    fn the_listening_line_gives_the_address() {
        let log = "INFO x\nINFO listening: MCP over Streamable HTTP at http://127.0.0.1:4567/mcp (token)\n";
        assert_eq!(listening_addr(log), Some("127.0.0.1:4567".parse().unwrap()));
        assert_eq!(listening_addr("INFO starting\n"), None);
    }
}
