# GNU Bash from nixpkgs with our exec-wrapper patch, chosen by the version of
# nixpkgs' Bash (the pinned nixpkgs has 5.2p37; a nixpkgs with 5.3 takes the
# 5.3 entry of nix/bash-patches.nix). A Bash line without an entry fails
# evaluation with a message saying so, instead of a build with a patch that
# was never checked against it.
#
# nixpkgs applies Bash's own patches (the upstream bash5x-NNN series) with
# `patchFlags = [ "-p0" ]`; ours is a git-style -p1 patch, so it is applied
# separately in postPatch instead of being appended to `patches`.
#
# Only builtins are used here, so `cargo xtask ci` (step nix) can evaluate
# this file with a stand-in for `pkgs` and check the choice without nixpkgs.
{ pkgs }:
let
  patches = import ./bash-patches.nix;
  version = pkgs.bash.version;
  parts = builtins.splitVersion version;
  line =
    if builtins.length parts >= 2 then
      "${builtins.elemAt parts 0}.${builtins.elemAt parts 1}"
    else
      version;
  patch =
    patches.${line} or (throw (
      "nix/bash.nix: no exec-wrapper patch for nixpkgs' Bash ${version} (line ${line}); "
      + "patches exist for ${builtins.concatStringsSep ", " (builtins.attrNames patches)}. "
      + "Port patches/bash-exec-wrapper.patch to Bash ${line} and add it to nix/bash-patches.nix."
    ));
in
pkgs.bash.overrideAttrs (old: {
  pname = "bash-exec-wrapper";
  postPatch = (old.postPatch or "") + ''
    patch -p1 --fuzz=0 < ${patch}
  '';
  passthru = (old.passthru or { }) // {
    # Which patch this Bash carries, and for which line.
    execWrapperPatch = patch;
    execWrapperLine = line;
  };
  meta = (old.meta or { }) // {
    description = "GNU Bash ${version} that runs every program through $BASH_EXEC_WRAPPER (${builtins.baseNameOf patch} for Bash ${line})";
  };
})
