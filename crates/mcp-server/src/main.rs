//! `codex-exec-mcp-server`: MCP server exposing the `shell` tool.

fn main() -> anyhow::Result<()> {
    Ok(())
}
