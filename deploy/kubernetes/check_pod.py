"""Checks what deploy/kubernetes/deployment.yaml promises, beyond the schema
(which `kubernetes-validate --strict` checks): every container non-root with
a read-only root file system and no privilege escalation, no service account
token, the shell-tool sidecar with a liveness probe on /healthz and its token
from a Secret, and the workspace an emptyDir both containers mount.

usage: python check_pod.py deploy/kubernetes/deployment.yaml
"""

import sys

import yaml


def check(condition, what):
    if not condition:
        sys.exit(f"check_pod: {what}")


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    check(len(deployments) == 1, f"{path}: expected one Deployment")
    pod = deployments[0]["spec"]["template"]["spec"]
    check(pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "the pod must run as non-root")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    for c in containers:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: root file system must be read-only")
        check(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: privilege escalation must be off")
    sidecars = [c for c in containers if "codex-shell-tool-mcp" in c.get("image", "")]
    check(len(sidecars) == 1, "expected one shell-tool container")
    sidecar = sidecars[0]
    check(sidecar.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", "sidecar: liveness probe on /healthz")
    args = sidecar.get("args", [])
    check("--listen" in args and "--auth-token-file" in args, f"sidecar: --listen and --auth-token-file expected in {args}")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    token_dir = args[args.index("--auth-token-file") + 1].rsplit("/", 1)[0]
    token_mounts = [m for m in sidecar.get("volumeMounts", []) if m["mountPath"] == token_dir]
    check(token_mounts and "secret" in volumes[token_mounts[0]["name"]], "sidecar: the token file must come from a Secret")
    mounts = [{m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == "/workspace"} for c in containers]
    shared = set.intersection(*mounts)
    check(len(shared) == 1 and "emptyDir" in volumes[shared.pop()], "both containers must mount one emptyDir at /workspace")
    print(f"check_pod: {path} ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
