# Our exec-wrapper patch for each GNU Bash release line (major.minor), the
# key nix/bash.nix looks up with the version of nixpkgs' Bash. One file fits
# both lines today. `cargo xtask ci` (step nix) applies every entry to
# Debian's source of that line (xtask/src/nix.rs), and `cargo xtask bash`
# builds both lines from the same file.
{
  "5.2" = ../patches/bash-exec-wrapper.patch;
  "5.3" = ../patches/bash-exec-wrapper.patch;
}
