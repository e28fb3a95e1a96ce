# The flake's packages for one system: the patched Bash, the server (wrapped so
# it finds the wrapper and that Bash), and a layered container image.
{ pkgs }:
let
  inherit (pkgs) lib;
  workspace = lib.importTOML ../Cargo.toml;
  version = workspace.workspace.package.version;
  npm = lib.importJSON ../npm/package.json;

  # The exact Rust the flake builds with, from rust-overlay (whose locked
  # revision must carry it): the workspace's `rust-version` (Cargo.toml),
  # the oldest Rust Cargo.lock builds with. `cargo xtask ci` (step
  # flake-toolchain) checks the two are equal and that this Rust builds the
  # shipped binaries with --locked.
  rustVersion = "1.89.0";
  rust = pkgs.rust-bin.stable.${rustVersion}.minimal;
  rustDev = pkgs.rust-bin.stable.${rustVersion}.default.override {
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
    # The wrapper and the sandbox launcher sit beside the server, where it
    # looks for them (wrapProgram keeps the real binary in $out/bin, as
    # .codex-exec-mcp-server-wrapped, so "beside" still holds); Bash comes
    # from the store through CODEX_BASH_PATH, which a user can still
    # override, as `--execve` and `--bash`.
    postInstall = ''
      wrapProgram $out/bin/codex-exec-mcp-server \
        --set-default CODEX_BASH_PATH ${bash}/bin/bash
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
    rustVersion
    version
    ;
}
