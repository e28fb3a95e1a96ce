# The flake's packages for one system: the patched Bash, the server (wrapped so
# it finds the wrapper and that Bash), and a layered container image.
{ pkgs }:
let
  inherit (pkgs) lib;
  workspace = lib.importTOML ../Cargo.toml;
  version = workspace.workspace.package.version;
  npm = lib.importJSON ../npm/package.json;

  # Stable toolchain from rust-overlay (>= 1.88, see flake.nix).
  rust = pkgs.rust-bin.stable.latest.minimal;
  rustDev = pkgs.rust-bin.stable.latest.default.override {
    extensions = [
      "rust-src"
      "clippy"
      "rustfmt"
    ];
  };
  rustPlatform = pkgs.makeRustPlatform {
    cargo = rust;
    rustc = rust;
  };

  bash = import ./bash.nix { inherit pkgs; };

  server = rustPlatform.buildRustPackage {
    pname = "codex-exec-mcp-server";
    inherit version;
    src = lib.fileset.toSource {
      root = ../.;
      fileset = lib.fileset.unions [
        ../Cargo.toml
        ../Cargo.lock
        ../.cargo
        ../crates
        ../xtask
      ];
    };
    cargoLock.lockFile = ../Cargo.lock;
    cargoBuildFlags = [
      "-p"
      "mcp-server"
      "-p"
      "execve-wrapper"
      "-p"
      "sandbox-exec"
    ];
    # The test suite drives real sandboxes (Landlock, seccomp, namespaces),
    # which the Nix build sandbox does not offer; `cargo xtask ci` runs it.
    doCheck = false;
    nativeBuildInputs = [ pkgs.makeWrapper ];
    # The wrapper and the sandbox launcher sit beside the server (where it
    # looks for them; wrapProgram keeps the real binary in $out/bin); Bash comes from the
    # store through CODEX_BASH_PATH, which a user can still override.
    postInstall = ''
      wrapProgram $out/bin/codex-exec-mcp-server \
        --set-default CODEX_BASH_PATH ${bash}/bin/bash \
        --add-flags "--execve $out/bin/codex-execve-wrapper"
    '';
    meta = {
      description = "MCP server exposing a sandboxed shell tool; its patched Bash asks before every exec";
      license = lib.licenses.asl20;
      mainProgram = "codex-exec-mcp-server";
      platforms = lib.platforms.linux;
    };
  };

  uid = "65532";
  image = pkgs.dockerTools.streamLayeredImage {
    name = "codex-shell-tool-mcp";
    tag = version;
    contents = [
      server
      bash
      (pkgs.writeTextDir "etc/passwd" ''
        root:x:0:0:root:/root:/sbin/nologin
        mcp:x:${uid}:${uid}:mcp:/home/mcp:${bash}/bin/bash
      '')
      (pkgs.writeTextDir "etc/group" ''
        root:x:0:
        mcp:x:${uid}:
      '')
    ];
    fakeRootCommands = ''
      mkdir -p ./workspace ./home/mcp/.codex ./etc/codex/rules ./tmp ./bin
      chown ${uid}:${uid} ./workspace ./home/mcp ./home/mcp/.codex
      chmod 1777 ./tmp
      ln -sf ${bash}/bin/bash ./bin/sh
    '';
    config = {
      Entrypoint = [ "${server}/bin/codex-exec-mcp-server" ];
      User = "${uid}:${uid}";
      WorkingDir = "/workspace";
      Env = [
        "HOME=/home/mcp"
        "CODEX_HOME=/home/mcp/.codex"
      ];
      Labels = {
        "org.opencontainers.image.title" = "codex-shell-tool-mcp";
        "org.opencontainers.image.version" = version;
        "org.opencontainers.image.licenses" = "Apache-2.0 AND GPL-3.0-or-later";
        "io.modelcontextprotocol.server.name" = npm.mcpName;
      };
    };
  };
in
{
  inherit
    bash
    server
    image
    rustDev
    version
    ;
}
