{
  description = "codex-exec-mcp-server: an MCP shell tool whose patched Bash asks before every exec";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    # The overlay gives the exact Rust nix/packages.nix names (rustVersion,
    # the workspace's rust-version), independent of nixpkgs' rustc; its
    # locked revision must carry that version's manifest.
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      rust-overlay,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          f (
            import nixpkgs {
              inherit system;
              overlays = [ rust-overlay.overlays.default ];
            }
          )
        );
      packagesFor = pkgs: import ./nix/packages.nix { inherit pkgs; };
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          p = packagesFor pkgs;
        in
        {
          default = p.server;
          codex-exec-mcp-server = p.server;
          bash = p.bash;
          image = p.image;
        }
      );

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${(packagesFor pkgs).server}/bin/codex-exec-mcp-server";
        };
      });

      checks = forAllSystems (pkgs: import ./nix/checks.nix { inherit pkgs; packages = packagesFor pkgs; });

      devShells = forAllSystems (
        pkgs:
        let
          p = packagesFor pkgs;
        in
        {
          default = pkgs.mkShell {
            packages = [
              p.rustDev
              pkgs.nodejs
              pkgs.python3
              pkgs.gnumake
              pkgs.gcc
            ];
            # Tests that need the patched Bash find it here.
            CODEX_TEST_BASH = "${p.bash}/bin/bash";
          };
        }
      );

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
