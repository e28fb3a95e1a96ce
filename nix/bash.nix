# GNU Bash from nixpkgs with patches/bash-exec-wrapper.patch.
#
# nixpkgs applies Bash's own patches (the upstream bash52-NNN series) with
# `patchFlags = [ "-p0" ]`; ours is a git-style -p1 patch, so it is applied
# separately in postPatch instead of being appended to `patches`.
{ pkgs }:
pkgs.bash.overrideAttrs (old: {
  pname = "bash-exec-wrapper";
  postPatch = (old.postPatch or "") + ''
    patch -p1 < ${../patches/bash-exec-wrapper.patch}
  '';
  meta = old.meta // {
    description = "GNU Bash that runs every program through $BASH_EXEC_WRAPPER";
  };
})
