"""deploy/ and the Dockerfile against the code: the dashboard queries exported metrics; compose files use the
project's image, real settings names, matching ports and the image's health check; the Kubernetes manifests
render with `kubectl kustomize` and validate against the Kubernetes schemas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from app.fakes.upstream import FakeUpstream
from app.settings import Settings
from tests.helpers import ROOT, GatewayProcess

DASHBOARD = ROOT / "deploy" / "grafana" / "acedata-proxy.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported_names(gateway: GatewayProcess) -> set[str]:
    text = httpx.get(gateway.url + "/metrics").text
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)) | set(re.findall(r"^([a-z_]+)[{ ]", text, re.M))


def declared(name: str, exported: set[str]) -> bool:
    return name in exported or any(name.endswith(s) and name.removesuffix(s) in exported for s in SUFFIXES)


def test_dashboard_queries_name_exported_metrics(gateway: GatewayProcess, fake: FakeUpstream):
    httpx.post(gateway.url + "/openai/responses", json={"model": "gpt-4.1", "input": "hi"})
    exported = exported_names(gateway)
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    titles = " ".join(panel["title"].lower() for panel in panels)
    topics = ["request rate", "error rate", "duration", "first byte", "by model", "by key", "in-flight"]
    topics += ["spend per key", "budget remaining"]
    for topic in topics:
        assert topic in titles, topic
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bacedata_proxy_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            used |= names
    missing = {name for name in used if not declared(name, exported)}
    assert not missing
    assert len(used) >= 8
    assert "acedata_proxy_budget_remaining_tokens" in used


def test_configs_parse():
    prometheus = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert "metrics_path: /metrics" in prometheus
    tomllib.loads((ROOT / "pyproject.toml").read_text())


COMPOSE_FILES = sorted((ROOT / "deploy" / "compose").rglob("*.yaml"))
COMPOSE_FILES = [path for path in COMPOSE_FILES if "services" in (yaml.safe_load(path.read_text()) or {})]
IMAGE = "acedata-proxy:latest"
DEFAULT = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def with_defaults(value: str) -> str:
    """A compose value as it is with no variables set: ${NAME:-default} becomes default."""
    return DEFAULT.sub(lambda match: match.group(2), value)


def setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        choices = field.validation_alias.choices  # type: ignore[union-attr]  # every setting has an AliasChoices
        names |= {choice for choice in choices if isinstance(choice, str) and choice.isupper()}
    return names


def gateways(path: Path) -> dict[str, dict[str, Any]]:
    services = yaml.safe_load(path.read_text())["services"]
    return {name: spec for name, spec in services.items() if with_defaults(spec.get("image", "")) == IMAGE}


def dockerfile_healthcheck() -> list[str]:
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("HEALTHCHECK"))
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return command


def test_dockerfile_builds_on_any_base_as_an_unclashing_user():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("# syntax=docker/dockerfile:1")
    assert re.search(r"^ARG BASE_IMAGE=\S+$", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.M)) == 2  # a build stage and a slim final one
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "useradd --no-log-init --uid 10001" in text
    assert not re.search(r"\sproxy$", text, re.M)  # Debian's base-passwd already has a user `proxy`
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    module = dockerfile_healthcheck()[-1]
    assert (ROOT / (module.replace(".", "/") + ".py")).exists()
    assert "docker build -t acedata-proxy ." in (ROOT / "docs" / "deployment.md").read_text()


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.parent.name + "/" + path.name)
def test_compose_gateways_match_the_code(path: Path):
    found = gateways(path)
    assert found, f"no service runs {IMAGE}"
    known = setting_names()
    grace = Settings.model_fields["shutdown_grace"].default
    serving = 0
    for name, spec in found.items():
        if spec.get("healthcheck", {}).get("disable"):  # the image used for something else than serving
            assert "entrypoint" in spec, name
            continue
        serving += 1
        environment = spec.get("environment", {})
        unknown = {key for key in environment if key.startswith(("PROXY_", "ACEDATACLOUD_")) and key not in known}
        assert not unknown, name
        assert spec["healthcheck"]["test"] == ["CMD", *dockerfile_healthcheck()], name
        assert float(spec["stop_grace_period"].removesuffix("s")) > grace, name
    assert serving >= 1


def test_team_stack_ports_agree():
    directory = ROOT / "deploy" / "compose" / "team"
    services = yaml.safe_load((directory / "compose.yaml").read_text())["services"]
    ports = {
        with_defaults(str(spec["environment"]["PROXY_PORT"])) for spec in gateways(directory / "compose.yaml").values()
    }
    assert len(ports) == 2

    def rendered(service: str, template: str) -> str:
        text = (directory / template).read_text()
        for placeholder, value in re.findall(
            r'-e "s/@(\w+)@/([^/]*)/"', with_defaults(services[service]["command"][0])
        ):
            text = text.replace(f"@{placeholder}@", value)
        assert "@" not in re.sub(r"#.*", "", text), template
        return text

    nginx = rendered("nginx", "nginx.conf")
    assert set(re.findall(r"server 127\.0\.0\.1:(\d+);", nginx)) == ports
    assert "proxy_buffering off;" in nginx
    targets = yaml.safe_load(rendered("prometheus", "prometheus.yml"))["scrape_configs"][0]["static_configs"][0]
    exporters = {
        with_defaults(str(spec["environment"]["PROXY_METRICS_PORT"]))
        for spec in gateways(directory / "compose.yaml").values()
    }  # the replicas' metrics listeners: the gateway ports show clients no key names
    assert len(exporters) == 2
    assert not exporters & ports
    assert {target.split(":")[1] for target in targets["targets"]} == exporters
    redis_port = with_defaults(services["redis"]["command"][services["redis"]["command"].index("--port") + 1])
    for spec in gateways(directory / "compose.yaml").values():
        assert with_defaults(spec["environment"]["PROXY_REDIS_URL"]) == f"redis://127.0.0.1:{redis_port}/0"


def test_sidecar_app_calls_the_gateway_on_its_port():
    services = yaml.safe_load((ROOT / "deploy" / "compose" / "sidecar.yaml").read_text())["services"]
    assert "PROXY_PORT" not in services["acedata-proxy"]["environment"]
    assert f"http://127.0.0.1:{Settings.model_fields['port'].default}/openai/" in services["app"]["command"][0]
    assert "pip" not in json.dumps(services)  # nothing installed at run time


def rendered_manifests() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (Debian: apt-get install kubernetes-client)"
    result = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "k8s")], capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def test_kubernetes_manifests_validate():
    manifests = rendered_manifests()
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    kinds = sorted(manifest["kind"] for manifest in manifests)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim",
                     "PodDisruptionBudget", "Service", "Service"]  # fmt: skip
    gateway = next(m for m in manifests if m["metadata"]["name"] == "acedata-proxy" and m["kind"] == "Deployment")
    pod = gateway["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["shutdown_grace"].default
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= container["resources"].keys()
    environment = {variable["name"]: variable for variable in container["env"]}
    assert set(environment) <= setting_names()
    assert environment["ACEDATACLOUD_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "acedata-proxy"
    assert pod["volumes"][0]["secret"]["secretName"] == "acedata-proxy"
    assert pod["securityContext"]["runAsUser"] == 10001
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert int(environment["PROXY_METRICS_PORT"]["value"]) == ports["metrics"] != ports["http"]
    service = next(m for m in manifests if m["metadata"]["name"] == "acedata-proxy" and m["kind"] == "Service")
    assert [port["targetPort"] for port in service["spec"]["ports"]] in (["http"], [ports["http"]])
    scrape = next(m for m in manifests if m["kind"] == "ConfigMap")["data"]["acedata-proxy-scrape.yml"]
    kept = yaml.safe_load(scrape)["scrape_configs"][0]["relabel_configs"][1]
    assert (kept["source_labels"], kept["regex"]) == (["__meta_kubernetes_pod_container_port_name"], "metrics")


def test_a_broken_manifest_is_caught():
    deployment = next(m for m in rendered_manifests() if m["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_the_team_stacks_redis_keeps_its_data_across_a_restart():
    """Redis holds the usage ledger and the budgets' counts: persistence on, on a named volume (compose) or a
    claim (Kubernetes); before, `--appendonly no` lost every key's spend at each restart."""
    services = yaml.safe_load((ROOT / "deploy" / "compose" / "team" / "compose.yaml").read_text())["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    data = command[command.index("--dir") + 1]
    assert any(volume.endswith(":" + data) and not volume.startswith((".", "/")) for volume in redis["volumes"])
    [deployment] = [d for d in rendered_manifests() if d["metadata"]["name"] == "acedata-proxy-redis"
                    and d["kind"] == "Deployment"]  # fmt: skip
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "acedata-proxy-redis"
