//! `cargo xtask oci`: a container image without a Docker daemon.
//!
//! Writes `target/dist/codex-shell-tool-mcp-oci-<arch>.tar`, which is at the
//! same time an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/..`) and a Docker archive (`manifest.json` whose `Config` and
//! `Layers` point into the same blobs): Docker 20.10's `docker load` rejects a
//! plain OCI layout, newer Docker, podman and skopeo take either.
//!
//! One uncompressed layer:
//!
//! ```text
//! /usr/local/bin/{codex-exec-mcp-server,codex-execve-wrapper,codex-sandbox-exec,bash}
//! /bin/bash, /bin/sh  -> /usr/local/bin/bash (shebang scripts and `sh -c`)
//! /etc/passwd, /etc/group   root and mcp (65532), the user the image runs as
//! /etc/codex/rules/         system rules layer (mount rules here)
//! /home/mcp/.codex/         CODEX_HOME, owned by mcp
//! /tmp (1777), /workspace (owned by mcp; the working directory)
//! ```
//!
//! Everything is derived from the inputs and `SOURCE_DATE_EPOCH`, so the tar
//! is reproducible. `cargo xtask oci --docker-test` loads it into a local
//! dockerd (started if needed) and drives the server through `docker run -i`
//! (stdio) and as an HTTP sidecar (`--listen`), then builds
//! `docker/tools/Dockerfile` on it and runs a call using busybox tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use xshell::{Shell, cmd};

use crate::archive::{self, Tree};

/// The unprivileged user the image runs as (distroless' "nonroot" id).
const UID: u64 = 65532;
const BIN: &str = "/usr/local/bin";
/// The image must stay small: it ships three static binaries.
const MAX_UNCOMPRESSED: u64 = 10 * 1024 * 1024;

/// An image architecture (Docker/OCI naming) and its Rust target triple.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    fn parse(s: &str) -> Result<Arch> {
        match s {
            "amd64" | "x86_64" => Ok(Arch::Amd64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            other => bail!("unknown architecture {other:?} (amd64 or arm64)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub(crate) fn triple(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
}

pub(crate) fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let root = archive::project_root();
    let mut args = crate::util::Args::new(
        args,
        "cargo xtask oci [--arch amd64|arm64] [--vendor DIR] [--docker-test]",
    );
    let docker_test = args.flag("--docker-test");
    let arch = args
        .value("--arch")?
        .map_or(Ok(Arch::Amd64), |a| Arch::parse(&a))?;
    let vendor = args
        .value("--vendor")?
        .map_or_else(|| root.join("target/dist/vendor"), PathBuf::from);
    args.finish()?;
    if docker_test {
        return self::docker_test(sh, &root, &tarball_path(&root, arch));
    }
    build(sh, &root, &vendor.join(arch.triple()), arch).map(drop)
}

/// `cargo xtask dist` step: the image for the target just assembled.
pub(crate) fn dist_step(sh: &Shell, dist: &crate::dist::Dist) -> Result<()> {
    let arch = Arch::parse(dist.target.triple.split('-').next().unwrap_or_default())?;
    build(sh, &archive::project_root(), &dist.vendor, arch).map(drop)
}

pub(crate) fn tarball_path(root: &Path, arch: Arch) -> PathBuf {
    root.join(format!(
        "target/dist/codex-shell-tool-mcp-oci-{}.tar",
        arch.name()
    ))
}

/// The image reference `docker load` tags the image with.
pub(crate) fn image_tag(root: &Path) -> Result<String> {
    Ok(format!(
        "codex-shell-tool-mcp:{}",
        archive::workspace_version(root)?
    ))
}

/// The MCP registry name, kept in one place: npm/package.json's `mcpName`.
fn mcp_name(root: &Path) -> Result<String> {
    let path = root.join("npm/package.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    value["mcpName"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no mcpName in {}", path.display()))
}

/// Builds the image tar from one `vendor/<triple>` dir; returns its path.
pub(crate) fn build(sh: &Shell, root: &Path, vendor: &Path, arch: Arch) -> Result<PathBuf> {
    archive::check_vendor_dir(vendor)?;
    let version = archive::workspace_version(root)?;
    let epoch = archive::source_date_epoch(sh)?;
    let tag = image_tag(root)?;

    let layer_tree = rootfs(vendor)?;
    let size = layer_tree.payload_size();
    if size > MAX_UNCOMPRESSED {
        bail!("image payload is {size} bytes, over the {MAX_UNCOMPRESSED} byte budget");
    }
    let layer = layer_tree.to_tar(epoch)?;
    let layer_digest = archive::sha256_hex(&layer);

    let server = format!("{BIN}/codex-exec-mcp-server");
    let created = rfc3339(epoch);
    let config = json!({
        "created": created,
        "architecture": arch.name(),
        "os": "linux",
        "config": {
            "User": format!("{UID}:{UID}"),
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/home/mcp",
                "CODEX_HOME=/home/mcp/.codex",
                format!("CODEX_BASH_PATH={BIN}/bash"),
            ],
            "Entrypoint": [server, "--execve", format!("{BIN}/codex-execve-wrapper"), "--bash", format!("{BIN}/bash")],
            "WorkingDir": "/workspace",
            // For `--listen 0.0.0.0:8080` (Streamable HTTP); stdio needs none.
            "ExposedPorts": { "8080/tcp": {} },
            "Labels": {
                "org.opencontainers.image.title": "codex-shell-tool-mcp",
                "org.opencontainers.image.description": "MCP server with a sandboxed shell tool (stdio, or Streamable HTTP with --listen); mount your workspace at /workspace",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.licenses": "Apache-2.0 AND GPL-3.0-or-later",
                "org.opencontainers.image.created": created,
                "io.modelcontextprotocol.server.name": mcp_name(root)?,
            },
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        "history": [{ "created": created, "created_by": "cargo xtask oci" }],
    });
    let config = canonical(&config)?;
    let config_digest = archive::sha256_hex(&config);

    let manifest = canonical(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = archive::sha256_hex(&manifest);

    let index = canonical(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "platform": { "architecture": arch.name(), "os": "linux" },
            "annotations": {
                "io.containerd.image.name": format!("docker.io/library/{tag}"),
                "org.opencontainers.image.ref.name": version,
            },
        }],
    }))?;
    let docker_manifest = canonical(&json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [tag],
        "Layers": [format!("blobs/sha256/{layer_digest}")],
    }]))?;

    let mut image = Tree::default();
    image.dir("blobs", 0o755, 0);
    image.dir("blobs/sha256", 0o755, 0);
    image.file(&format!("blobs/sha256/{layer_digest}"), 0o644, 0, layer);
    image.file(&format!("blobs/sha256/{config_digest}"), 0o644, 0, config);
    image.file(
        &format!("blobs/sha256/{manifest_digest}"),
        0o644,
        0,
        manifest,
    );
    image.file("index.json", 0o644, 0, index);
    image.file("manifest.json", 0o644, 0, docker_manifest);
    image.file(
        "oci-layout",
        0o644,
        0,
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );

    let out = tarball_path(root, arch);
    archive::write_artifact(&out, &image.to_tar(epoch)?)?;
    eprintln!("image {tag} ({}), {size} bytes of files", arch.name());
    Ok(out)
}

/// The image's root file system.
fn rootfs(vendor: &Path) -> Result<Tree> {
    let mut t = Tree::default();
    t.dir("bin", 0o755, 0);
    t.symlink("bin/bash", &format!("{BIN}/bash"));
    t.symlink("bin/sh", &format!("{BIN}/bash"));
    t.dir("etc", 0o755, 0);
    t.dir("etc/codex", 0o755, 0);
    t.dir("etc/codex/rules", 0o755, 0);
    t.file(
        "etc/passwd",
        0o644,
        0,
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nmcp:x:{UID}:{UID}:mcp:/home/mcp:{BIN}/bash\n"
        )
        .into_bytes(),
    );
    t.file(
        "etc/group",
        0o644,
        0,
        format!("root:x:0:\nmcp:x:{UID}:\n").into_bytes(),
    );
    t.dir("home", 0o755, 0);
    t.dir("home/mcp", 0o755, UID);
    t.dir("home/mcp/.codex", 0o700, UID);
    t.dir("root", 0o700, 0);
    t.dir("tmp", 0o1777, 0);
    t.dir("usr", 0o755, 0);
    t.dir("usr/bin", 0o755, 0);
    t.dir("usr/local", 0o755, 0);
    t.dir("usr/local/bin", 0o755, 0);
    for name in archive::VENDOR_BINARIES {
        t.copy(&format!("usr/local/bin/{name}"), 0o755, &vendor.join(name))?;
    }
    t.dir("workspace", 0o755, UID);
    Ok(t)
}

/// Compact JSON; serde_json's map keeps keys sorted, so this is canonical.
fn canonical(value: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).context("serialising image json")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (days-from-civil, inverted).
fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Starts dockerd unless one answers, loads the image and runs the MCP smoke
/// tests: stdio (docker/mcp_smoke.py, `docker run -i --network none`), the
/// sidecar over HTTP with a token (docker/http_smoke.py), and the derived
/// image with real tools (docker/tools/Dockerfile, built from local images
/// and Debian's busybox-static only) running `ls | grep | sed`.
pub(crate) fn docker_test(sh: &Shell, root: &Path, tar: &Path) -> Result<()> {
    if !tar.is_file() {
        bail!("missing {}: run `cargo xtask oci` first", tar.display());
    }
    ensure_dockerd(sh)?;
    cmd!(sh, "docker load -i {tar}")
        .run()
        .context("docker load")?;
    let tag = image_tag(root)?;
    // What the sandbox enforces under Docker's default seccomp profile and
    // capabilities: the table in the log, and the protections that do not
    // depend on namespaces must hold (the exec check once refused every
    // exec here: process_vm_readv is filtered).
    let table = cmd!(sh, "docker run --rm --network none {tag} doctor")
        .ignore_status()
        .read()
        .context("docker run … doctor")?;
    println!("{table}");
    for protection in [
        "writes outside the writable roots",
        "rules for execs from any process",
        "set-uid and set-gid files",
        "capabilities",
    ] {
        if !table
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains(protection))
        {
            bail!("doctor in the image: `{protection}` does not hold:\n{table}");
        }
    }
    let script = root.join("docker/mcp_smoke.py");
    cmd!(sh, "python3 {script} {tag}")
        .run()
        .context("MCP smoke test against the image failed")?;
    let http_smoke = root.join("docker/http_smoke.py");
    cmd!(sh, "python3 {http_smoke} {tag}")
        .run()
        .context("MCP-over-HTTP smoke test against the image failed")?;

    let context = root.join("target/docker-tools");
    busybox_static(sh, &context)?;
    let dockerfile = root.join("docker/tools/Dockerfile");
    let tools_tag = format!(
        "codex-shell-tool-mcp-tools:{}",
        archive::workspace_version(root)?
    );
    cmd!(
        sh,
        "docker build --pull=false -f {dockerfile} --build-arg SHELL_TOOL={tag} -t {tools_tag} {context}"
    )
    .run()
    .context("building docker/tools/Dockerfile")?;
    cmd!(sh, "python3 {http_smoke} {tools_tag} --tools")
        .run()
        .context("the derived tools image failed its smoke test")?;
    Ok(())
}

/// Debian's static busybox in `context/busybox` (kept between runs):
/// `apt-get download busybox-static`, unpacked with `dpkg-deb -x`.
fn busybox_static(sh: &Shell, context: &Path) -> Result<()> {
    let busybox = context.join("busybox");
    if busybox.is_file() {
        return Ok(());
    }
    let download = context.join("download");
    if download.exists() {
        std::fs::remove_dir_all(&download)?;
    }
    std::fs::create_dir_all(&download)?;
    {
        let _dir = sh.push_dir(&download);
        if cmd!(sh, "apt-get download busybox-static").run().is_err() {
            // A fresh machine may have no package lists yet.
            cmd!(sh, "apt-get update -q")
                .run()
                .context("apt-get update")?;
            cmd!(sh, "apt-get download busybox-static")
                .run()
                .context("apt-get download busybox-static")?;
        }
    }
    let deb = std::fs::read_dir(&download)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = download.join("root");
    cmd!(sh, "dpkg-deb -x {deb} {unpacked}")
        .run()
        .context("dpkg-deb -x")?;
    std::fs::copy(unpacked.join("bin/busybox"), &busybox)
        .with_context(|| format!("no bin/busybox in {}", deb.display()))?;
    std::fs::remove_dir_all(&download)?;
    Ok(())
}

/// Makes `docker info` work: installs docker.io and starts dockerd if needed.
pub(crate) fn ensure_dockerd(sh: &Shell) -> Result<()> {
    if cmd!(sh, "docker info")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    if cmd!(sh, "sh -c 'command -v dockerd'")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        cmd!(sh, "apt-get update -q")
            .run()
            .context("apt-get update")?;
        cmd!(sh, "apt-get install -y -q docker.io")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("installing docker.io")?;
    }
    // Detached: the daemon outlives this xtask run on purpose (CI reuses it).
    cmd!(sh, "sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'")
        .run()
        .context("starting dockerd")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if cmd!(sh, "docker info")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok()
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string("/tmp/dockerd.log").unwrap_or_default();
            bail!("dockerd did not answer within 60 s; /tmp/dockerd.log:\n{log}");
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `cargo xtask ci` step `reproducible`: rebuilding the npm tarball and the
/// amd64 image from the same inputs gives byte-identical files.
pub(crate) fn ci_reproducible(sh: &Shell) -> Result<()> {
    let root = archive::project_root();
    let vendor = root.join("target/dist/vendor");
    let npm_tgz = crate::npm::tarball_path(&root)?;
    let image = tarball_path(&root, Arch::Amd64);
    let before = [digest(&npm_tgz)?, digest(&image)?];
    crate::npm::build(sh, &root, &vendor)?;
    build(sh, &root, &vendor.join(Arch::Amd64.triple()), Arch::Amd64)?;
    let after = [digest(&npm_tgz)?, digest(&image)?];
    for ((path, a), b) in [&npm_tgz, &image].iter().zip(&before).zip(&after) {
        if a != b {
            bail!(
                "{} is not reproducible: sha256 {a} then {b}",
                path.display()
            );
        }
        println!("reproducible: {} sha256 {a}", path.display());
    }
    Ok(())
}

fn digest(path: &Path) -> Result<String> {
    if !path.is_file() {
        bail!("missing {}: run `cargo xtask dist` first", path.display());
    }
    crate::util::sha256_file(path)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(499_162_500), "1985-10-26T08:15:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
