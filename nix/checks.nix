# `nix flake check`: build everything and exercise the patched Bash, the
# server binary and the npm launcher without network or a real sandbox.
{ pkgs, packages }:
let
  inherit (packages) bash server version;
  # Stands in for codex-execve-wrapper: argv is [wrapper, resolved, argv0, ...].
  fakeWrapper = pkgs.writeScript "fake-exec-wrapper" ''
    #!${bash}/bin/bash
    echo "wrapped $1 as $2"
  '';
in
{
  inherit server bash;

  # The patch routes an exec through BASH_EXEC_WRAPPER and leaves Bash alone
  # without it.
  bash-exec-wrapper = pkgs.runCommand "check-bash-exec-wrapper" { } ''
    out_with=$(BASH_EXEC_WRAPPER=${fakeWrapper} ${bash}/bin/bash -c '${pkgs.coreutils}/bin/true')
    test "$out_with" = "wrapped ${pkgs.coreutils}/bin/true as ${pkgs.coreutils}/bin/true" \
      || { echo "with wrapper: got '$out_with'"; exit 1; }
    out_without=$(${bash}/bin/bash -c '${pkgs.coreutils}/bin/echo plain')
    test "$out_without" = plain || { echo "without wrapper: got '$out_without'"; exit 1; }
    touch $out
  '';

  server-version = pkgs.runCommand "check-server-version" { } ''
    ${server}/bin/codex-exec-mcp-server --version | tee version
    grep -F ${version} version
    touch $out
  '';

  npm-launcher = pkgs.runCommand "check-npm-launcher" { nativeBuildInputs = [ pkgs.nodejs ]; } ''
    cp -r ${../npm} npm
    chmod -R u+w npm
    patchShebangs npm
    cd npm
    HOME=$TMPDIR node --test test/launcher.test.js
    touch $out
  '';
}
