"""The deployment files agree with the code: settings, routes, users, ports and budgets.

No container engine or cluster is needed: the Dockerfile is read line by line, the
Kubernetes manifests with PyYAML, and gunicorn.conf.py is executed like gunicorn does.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from cds_hooks import create_app
from cds_hooks.config import ENV_PREFIX, Settings, load_settings
from cds_hooks.runtime import runtime

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PATIENT_KEY = "test-patient-key-0123456789abcdef"
MB = 1000 * 1000
WORKER_BUDGET = 150 * MB  # docs/DEPLOY.md and DESIGN.md: under 150 MB resident per worker

SETTING_NAMES = {ENV_PREFIX + f.name.upper() for f in fields(Settings) if f.name != "clock"}
SECRET_SETTINGS = {"LIPCDS_DATABASE_URL", "LIPCDS_PATIENT_ID_KEY"}


# -- helpers ---------------------------------------------------------------------------------


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in k8s_documents()
        if d["kind"] == kind and name in (None, d.get("metadata", {}).get("name"))
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def deployment_pod() -> dict[str, Any]:
    return k8s("Deployment", "lipcds")["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = deployment_pod()["containers"]
    return only


def quantity(text: str) -> int:
    """A Kubernetes memory quantity in bytes (the suffixes we use)."""
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": MB, "G": 1000 * MB}
    match = re.fullmatch(r"(\d+)([KMG]i?)?", str(text))
    assert match, f"unexpected quantity {text!r}"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def dockerfile(instruction: str) -> list[str]:
    return [args for word, args in dockerfile_instructions() if word == instruction]


def env_example() -> tuple[dict[str, str], set[str]]:
    """Variables set in deploy/env.example, and those shown commented out."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match and match.group(1):
            commented.add(match.group(2))
        elif match:
            values[match.group(2)] = match.group(3)
    return values, commented


def gunicorn_conf() -> dict[str, Any]:
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("deploy") / "lipcds.db"
    app = create_app(
        {
            "env": "test",
            "database_url": f"sqlite:///{db}",
            "patient_id_key": PATIENT_KEY,
            "log_level": "ERROR",
        }
    )
    yield app
    runtime(app).store.dispose()


# -- settings named anywhere in deploy/ are real ------------------------------------------------


def test_every_lipcds_variable_named_in_deploy_files_is_a_setting():
    paths = [p for p in DEPLOY.rglob("*") if p.is_file()]
    paths.append(ROOT / "docs" / "DEPLOY.md")
    for path in paths:
        if not path.exists():
            continue
        named = set(re.findall(r"\bLIPCDS_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
        unknown = named - SETTING_NAMES
        assert not unknown, f"{path.relative_to(ROOT)} names unknown settings {sorted(unknown)}"


def test_env_example_lists_every_setting_with_a_comment():
    values, commented = env_example()
    listed = {name for name in values | dict.fromkeys(commented) if name.startswith(ENV_PREFIX)}
    assert listed == SETTING_NAMES
    lines = (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if re.match(r"(#\s*)?LIPCDS_[A-Z0-9_]+=", line):
            above = lines[index - 1]
            explained = above.startswith("# ") and not re.match(r"#\s*LIPCDS_\w+=", above)
            paired = re.match(r"LIPCDS_\w+=", above)  # two settings under one comment
            assert explained or paired, f"{line.split('=')[0]} has no comment"


def test_env_example_is_accepted_by_the_settings_loader():
    values, _ = env_example()
    settings = load_settings(environ=values)
    assert settings.is_production
    assert settings.auth_mode == "jwt"


def test_configmap_and_secret_are_accepted_by_the_settings_loader():
    data = dict(k8s("ConfigMap", "lipcds-config")["data"])
    assert not SECRET_SETTINGS & set(data), "secrets belong in the Secret, not the ConfigMap"
    secret = k8s("Secret", "lipcds-secrets")["stringData"]
    for item in container()["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            data[item["name"]] = secret[ref["key"]]
    settings = load_settings(environ=data)
    assert settings.is_production
    json.dumps(settings.trusted_issuers)  # parsed from the folded JSON


# -- Kubernetes --------------------------------------------------------------------------------


def test_deployment_runs_unprivileged_on_a_read_only_filesystem():
    pod = deployment_pod()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("privileged", False) is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert "/tmp" in mounts  # noqa: S108 - temporary files; the rest is read-only


def test_the_card_record_spool_is_a_writable_volume():
    spool = k8s("ConfigMap", "lipcds-config")["data"]["LIPCDS_SPOOL_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment_pod()["volumes"]}
    assert spool in mounts and "emptyDir" in volumes[mounts[spool]]


def test_deployment_user_is_the_image_user():
    (user,) = dockerfile("USER")
    uid, _, gid = user.partition(":")
    pod = deployment_pod()["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))


def test_deployment_has_replicas_a_disruption_budget_and_a_service():
    deployment = k8s("Deployment", "lipcds")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = k8s("PodDisruptionBudget", "lipcds")
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = k8s("Service", "lipcds")
    for selector in (pdb["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert selector.items() <= labels.items()
    port_names = {p["name"] for p in container()["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names


def test_probes_point_at_existing_routes_on_the_served_port(app):
    routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    client = app.test_client()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = container()[probe]["httpGet"]
        assert http["path"] in routes, f"{probe} -> {http['path']}, which is not a route"
        assert ports[http["port"]] == 8080
        assert client.get(http["path"]).status_code == 200
    assert container()["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container()["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert dockerfile("EXPOSE") == ["8080"]


def test_memory_limit_fits_the_workers_and_the_budget():
    workers = int(k8s("ConfigMap", "lipcds-config")["data"]["WEB_CONCURRENCY"])
    resources = container()["resources"]
    limit = quantity(resources["limits"]["memory"])
    request = quantity(resources["requests"]["memory"])
    # Each worker under its budget, plus one budget for the master holding the preload.
    assert limit >= (workers + 1) * WORKER_BUDGET
    assert limit <= (workers + 2) * WORKER_BUDGET, "a limit far above the budget hides leaks"
    assert request <= limit
    assert "cpu" in resources["requests"]


def test_secrets_come_from_the_secret():
    env = {item["name"]: item for item in container()["env"]}
    for name in SECRET_SETTINGS:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "lipcds-secrets"
        assert ref["key"] in k8s("Secret", "lipcds-secrets")["stringData"]
    (source,) = container()["envFrom"]
    assert source["configMapRef"]["name"] == k8s("ConfigMap")["metadata"]["name"]


def test_the_secret_example_is_not_applied_by_kustomize():
    resources = k8s("Kustomization")["resources"]
    assert "secret.example.yaml" not in resources
    assert all((K8S / name).is_file() for name in resources)


def test_termination_leaves_time_for_a_graceful_shutdown():
    conf = gunicorn_conf()
    pod = deployment_pod()
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) + conf["graceful_timeout"] < pod["terminationGracePeriodSeconds"]


# -- the image ---------------------------------------------------------------------------------


def test_image_is_python_311_slim_and_runs_as_a_numeric_non_root_user():
    assert dockerfile("FROM")
    assert all(line.split()[0] == "python:3.11-slim" for line in dockerfile("FROM"))
    users = dockerfile("USER")
    assert users, "the image must switch to an unprivileged user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    last_user = max(i for i, (w, _) in enumerate(dockerfile_instructions()) if w == "USER")
    last_cmd = max(i for i, (w, _) in enumerate(dockerfile_instructions()) if w == "CMD")
    assert last_user < last_cmd


def test_image_installs_the_postgres_and_redis_extras():
    (install,) = [r for r in dockerfile("RUN") if "pip install" in r]
    extras = re.search(r"\.\[([a-z,]+)\]", install)
    assert extras and set(extras.group(1).split(",")) == {"postgres", "redis"}
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"postgres", "redis"} <= set(pyproject["project"]["optional-dependencies"])


def test_image_cmd_serves_the_app_factory_with_the_gunicorn_settings():
    (cmd,) = dockerfile("CMD")
    argv = json.loads(cmd)
    assert argv[0] == "gunicorn"
    assert argv[-1] == "cds_hooks:create_app()"
    config = argv[argv.index("--config") + 1]
    copies = [shlex.split(c) for c in dockerfile("COPY")]
    assert ["deploy/gunicorn.conf.py", config] in [c[-2:] for c in copies]
    assert gunicorn_conf()["wsgi_app"] == "cds_hooks:create_app()"


def test_image_healthcheck_uses_the_liveness_route():
    (check,) = dockerfile("HEALTHCHECK")
    assert "/healthz" in check
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert argv[0] == "python"  # no curl in the slim image


def test_build_context_holds_what_the_image_copies():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for copy in dockerfile("COPY"):
        parts = shlex.split(copy)
        if any(p.startswith("--from") for p in parts):
            continue
        for source in parts[:-1]:
            assert source.rstrip("/*") in allowed, f"{source} is excluded from the context"


def test_sources_copied_into_the_image_exist():
    for copy in dockerfile("COPY"):
        parts = shlex.split(copy)
        if any(p.startswith("--from") for p in parts):
            continue
        for source in parts[:-1]:
            if "*" in source:
                continue  # a pattern may match nothing (README.md*)
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_image_env_header_names_the_production_settings():
    header = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").split("FROM", 1)[0]
    for name in ("LIPCDS_DATABASE_URL", "LIPCDS_PATIENT_ID_KEY", "LIPCDS_TRUSTED_ISSUERS"):
        assert name in header


# -- gunicorn ----------------------------------------------------------------------------------


def test_gunicorn_preloads_and_keeps_timeouts_short():
    conf = gunicorn_conf()
    assert conf["preload_app"] is True
    assert conf["workers"] >= 1 and conf["threads"] >= 1
    assert conf["timeout"] <= 30
    assert conf["graceful_timeout"] <= 30


def test_gunicorn_reads_workers_and_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9090")
    conf = gunicorn_conf()
    assert conf["workers"] == 3
    assert conf["bind"] == ["0.0.0.0:9090"]


def test_access_log_has_no_query_string_headers_or_user():
    fmt = gunicorn_conf()["access_log_format"]
    for atom in ("%(r)s", "%(q)s", "%(u)s", "%(f)s", "%(a)s"):
        assert atom not in fmt
    assert not re.search(r"%\(\{[^}]*\}[ioe]\)s", fmt), "no header or environ atoms"
    assert "%(U)s" in fmt  # the path, without its query string


def test_post_fork_gives_each_worker_its_own_database_pools(app):
    conf = gunicorn_conf()
    store = runtime(app).store
    pool_before = store.engine.pool
    server = SimpleNamespace(
        cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: app)
    )
    conf["post_fork"](server, worker=None)
    assert store.engine.pool is not pool_before


def test_post_fork_leaves_other_apps_alone():
    from flask import Flask

    conf = gunicorn_conf()
    other = Flask("baseline")
    server = SimpleNamespace(
        cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: other)
    )
    conf["post_fork"](server, worker=None)  # no lipcds runtime: nothing to do, no error
