//! The HTTP bearer token (issue 16; the boundary cases, part 10).
//! Whoever holds the token can run commands and set the sandbox state of
//! their own session, so a command that learns it (or reaches a server
//! that has none) leaves the sandbox.
//! A hostile command tries to read the token from its environment, from
//! the server's `/proc`, from an escalated program's environment, from
//! the `--auth-token-file` (in the workspace, outside it, through a
//! Kubernetes-style symlink, by copying, linking, renaming it), and to
//! reach the server's port with the network off and on.

use super::*;

/// The bearer token of these cases: `probe read` reports `:secret` for
/// any file holding `RT_SECRET`.
const TOKEN: &str = "RT_SECRET_f00dfeedcafe0123456789";

/// `true` escalates; so does `printenv`, which prints the environment an
/// escalated program gets (the server's).
const HTTP_RULES: &str = r#"
prefix_rule(pattern = ["true"], decision = "allow")
prefix_rule(pattern = ["printenv"], decision = "allow")
"#;

fn assert_no_token(output: &str) {
    assert!(
        !output.contains("RT_SECRET") && !output.contains(":secret"),
        "the token reached the sandbox:\n{output}"
    );
}

/// The token in `CODEX_MCP_AUTH_TOKEN`: not in Bash's environment, not in
/// what an escalated program gets, not in `/proc` of the server (from
/// inside, nor from outside: the server scrubs its environment block).
async fn the_auth_token_is_in_no_commands_environment(user: As, kernel: Kernel) {
    let setup = setup(HTTP_RULES, user, kernel)
        .http(TOKEN)
        .env("CODEX_MCP_AUTH_TOKEN", TOKEN);
    let s = start(setup, kernel).await;
    // Control: the server took the token from its environment (the
    // client's requests, with it, are accepted).
    let base = s.baseline().await;
    let p = probe();
    let server = s.pid;
    let r = s
        .shell(&format!(
            "env; cat /proc/self/environ | tr '\\0' '\\n'; printenv\n\
             printenv CODEX_ESCALATE_SOCKET; echo plumbing=$?\n\
             {p} read /proc/{server}/environ; {p} read /proc/$PPID/environ; {p} read /proc/1/environ\n"
        ))
        .await;
    assert_no_token(&r.output);
    // `printenv` ran escalated, from the server's environment (which has
    // none of the sandbox's plumbing).
    assert!(r.output.contains("RUST_LOG=info"), "{}", r.output);
    assert_eq!(r.value("plumbing"), Some("1"), "{}", r.output);
    let environ = std::fs::read(format!("/proc/{server}/environ")).unwrap();
    assert!(
        !environ.windows(9).any(|w| w == b"RT_SECRET"),
        "the token stays in /proc/{server}/environ"
    );
    s.assert_contained(base, &[]).await;
}

/// What a command tries on the token file `file` (any of its names):
/// read it every way, copy, link and rename it, overwrite it.
fn steal_script(file: &Path, scratch: &Path) -> String {
    let f = file.display();
    let x = scratch.display();
    let p = probe();
    format!(
        "{p} read {f}; cat {f}; head -c 64 {f}; dd if={f} status=none\n\
         cp {f} {x}/copy; cat {x}/copy\n\
         ln {f} {x}/link && cat {x}/link\n\
         mv {f} {f}.moved && cat {f}.moved && mv {f}.moved {f}\n\
         echo forged-token-0123456789 > {f} && echo forged=1\n\
         true\n"
    )
}

/// The token file outside the writable roots, reached through a symlink
/// into a `..data` directory (as Kubernetes mounts a Secret): Landlock
/// grants no read on the file it resolves to.
async fn the_auth_token_file_outside_the_workspace_is_unreadable(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .http(TOKEN)
        .file("outside/secrets/..data/token", TOKEN)
        .arg("--auth-token-file")
        .arg("{dir}/outside/secrets/token");
    let s = start_with_link(setup, kernel).await;
    let base = s.baseline().await;
    let link = s.outside.join("secrets/token");
    let real = s.outside.join("secrets/..data/token");
    let p = probe();
    let out = control(&s, &format!("{p} read {}", link.display()));
    assert!(out.contains("read=ok:") && out.contains(":secret"), "{out}");
    let scratch = tmp_dir(&s);
    for file in [&link, &real] {
        let r = s.shell(&steal_script(file, scratch.path())).await;
        assert_no_token(&r.output);
        all_refused(&r.output, "read");
        assert_eq!(r.value("forged"), None, "{}", r.output);
    }
    // Beside it, everything stays readable.
    std::fs::write(s.outside.join("secrets/..data/other"), "RT_SECRET").unwrap();
    let r = s
        .shell(&format!(
            "{p} read {}",
            s.outside.join("secrets/..data/other").display()
        ))
        .await;
    assert!(r.output.contains(":secret"), "{}", r.output);
    assert_eq!(std::fs::read_to_string(&real).unwrap(), TOKEN);
    s.assert_contained(base, &[]).await;
}

/// Makes `outside/secrets/token` a symlink to `..data/token` before the
/// server starts (a [`Setup::file`] cannot).
async fn start_with_link(setup: Setup, kernel: Kernel) -> Server {
    let setup = setup.prepare(Box::new(|_work, outside| {
        std::os::unix::fs::symlink("..data/token", outside.join("secrets/token")).unwrap();
    }));
    start(setup, kernel).await
}

/// The token file in the workspace (a writable root, where Landlock
/// grants every read): covered by a mount that cannot be opened, so it can
/// be neither read, replaced nor moved; without a mount namespace the call
/// refuses to run, naming it.
async fn the_auth_token_file_in_the_workspace_is_hidden(user: As, kernel: Kernel) {
    let setup = setup(RULES, user, kernel)
        .http(TOKEN)
        .file("work/.shell-tool-token", TOKEN)
        .arg("--auth-token-file")
        .arg("{dir}/work/.shell-tool-token");
    let s = start(setup, kernel).await;
    let file = s.work.join(".shell-tool-token");
    let p = probe();
    let out = control(&s, &format!("{p} read {}", file.display()));
    assert!(out.contains("read=ok:") && out.contains(":secret"), "{out}");
    let scratch = tmp_dir(&s);
    let r = s.shell(&steal_script(&file, scratch.path())).await;
    assert_no_token(&r.output);
    assert_eq!(r.value("forged"), None, "{}", r.output);
    if kernel == Kernel::NoNamespaces {
        assert_eq!(r.exit_code, 126, "{r:?}");
        assert!(
            r.output.contains(&format!("{} must stay", file.display())),
            "{r:?}"
        );
    } else {
        all_refused(&r.output, "read");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), TOKEN);
    // The token still works: nothing replaced it for the next start.
    let s = s.restart().await;
    if kernel == Kernel::Namespaces {
        let base = s.baseline().await;
        s.assert_contained(base, &[]).await;
    }
}

/// A raw `initialize` POST to the server's port from Bash (`/dev/tcp`),
/// printing `tcp=err` when no socket connects, else the status line.
fn knock_script(addr: std::net::SocketAddr, authorization: &str) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"sandbox","version":"0"}}}"#;
    format!(
        "if exec 3<>/dev/tcp/{ip}/{port}; then\n\
           printf 'POST /mcp HTTP/1.1\\r\\nHost: {addr}\\r\\n{authorization}Content-Type: application/json\\r\\nAccept: application/json, text/event-stream\\r\\nContent-Length: {len}\\r\\nConnection: close\\r\\n\\r\\n%s' '{body}' >&3\n\
           echo \"status=$(head -n 1 <&3 | tr -d '\\r')\"\n\
         else echo tcp=err; fi\n",
        ip = addr.ip(),
        port = addr.port(),
        len = body.len(),
    )
}

/// The server's port: with the network off no socket reaches it; with
/// `--network` it does, and without the token gets 401.
async fn the_http_port_needs_the_network_and_the_token(user: As, kernel: Kernel) {
    for network in [false, true] {
        let mut setup = setup(RULES, user, kernel)
            .http(TOKEN)
            .file("outside/token", TOKEN)
            .arg("--auth-token-file")
            .arg("{dir}/outside/token");
        if network {
            setup = setup.arg("--network");
        }
        let s = start(setup, kernel).await;
        let base = s.baseline().await;
        let knock = knock_script(s.http_addr(), "");
        let out = control(&s, &knock);
        assert!(out.contains("status=HTTP/1.1 401"), "control: {out}");
        let r = s.shell(&knock).await;
        if network {
            assert_eq!(
                r.value("status"),
                Some("HTTP/1.1 401 Unauthorized"),
                "{}",
                r.output
            );
        } else {
            assert_eq!(r.value("tcp"), Some("err"), "{}", r.output);
        }
        s.assert_contained(base, &[]).await;
    }
}

/// A server without a token (loopback only): every local process is its
/// client, a sandboxed command with the network too, which could open a
/// session of its own and turn the sandbox off. A call whose sandbox has
/// the network on is refused (and `--network` at start, see
/// `without_a_token_network_on_is_refused_at_start`).
async fn a_server_without_a_token_gives_no_sandbox_the_network(user: As, kernel: Kernel) {
    let s = start(setup(RULES, user, kernel).http(""), kernel).await;
    let base = s.baseline().await;
    let knock = knock_script(s.http_addr(), "");
    let out = control(&s, &knock);
    assert!(out.contains("status=HTTP/1.1 200"), "control: {out}");
    let state = serde_json::json!({
        "sandboxPolicy": {"type": "workspace-write", "network_access": true},
        "sandboxCwd": s.work,
    });
    let params: rmcp::model::CallToolRequestParams = serde_json::from_value(serde_json::json!({
        "name": "shell",
        "arguments": {"command": knock, "workdir": s.work, "timeout_ms": 60_000},
        "_meta": {"codex/sandbox-state": state},
    }))
    .unwrap();
    let result = s.service.call_tool(params).await.unwrap();
    let text = format!("{result:?}");
    assert_eq!(result.is_error, Some(true), "the call ran: {text}");
    assert!(
        text.contains("without a token") && !text.contains("status="),
        "{text}"
    );
    s.assert_contained(base, &[]).await;
}

everywhere!(
    the_auth_token_is_in_no_commands_environment,
    the_auth_token_file_outside_the_workspace_is_unreadable,
    the_auth_token_file_in_the_workspace_is_hidden,
    the_http_port_needs_the_network_and_the_token,
    a_server_without_a_token_gives_no_sandbox_the_network,
);

#[test]
fn without_a_token_network_on_is_refused_at_start() {
    let out = std::process::Command::new(crate::harness::server_bin())
        .args(["--listen", "127.0.0.1:0", "--network"])
        .env_remove("CODEX_MCP_AUTH_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("without a token while --network") && stderr.contains("--auth-token-file"),
        "{stderr}"
    );
}
