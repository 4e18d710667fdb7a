#!/usr/bin/env python3
"""Renders every overlay of k8s/ with kustomize and checks what it would deploy.

1. Each overlay is built by `kubectl kustomize` (kubectl's own Kustomize) in a copy of k8s/ where
   every `*.env.example` stands in for the `*.env` file an operator writes (never committed).
2. Every object is validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
   an unknown or misspelled field is an error) for the oldest and the newest version we support;
   KEDA's ScaledObject, which those schemas lack, against a partial schema below.
3. The rendered objects are checked against each other and against the registry: one registry
   Deployment, references that resolve, settings that are real flags (adapters/server/src/
   config.rs), MCP hosts that name the Service, URLs that reach a Service port, probes, shutdown
   timing and the security context.
4. A self-test breaks a rendered overlay in the ways these checks exist for, and fails unless each
   is caught, so a check that stops working fails CI too.

Run with the Python of the venv that tests/clients/setup.sh makes (kubernetes-validate, PyYAML;
kubectl is installed next to it). Exits non-zero, naming the overlay and object, on any problem.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
CONFIG_RS = HERE.parent / "adapters" / "server" / "src" / "config.rs"
OVERLAYS = ["embedded", "replicated", "keda-worker"]
# The oldest Kubernetes these manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
REGISTRY = {"app.kubernetes.io/name": "agent-registry", "app.kubernetes.io/component": "server"}

# KEDA ships its schema only as a CRD in the cluster; this covers the fields ScaledObject v1alpha1
# has (keda.sh/docs/concepts/scaling-deployments), strictly, so a misspelling is caught.
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                **{
                    field: {"type": "integer", "minimum": 0}
                    for field in [
                        "pollingInterval",
                        "cooldownPeriod",
                        "initialCooldownPeriod",
                        "idleReplicaCount",
                        "minReplicaCount",
                        "maxReplicaCount",
                    ]
                },
                "fallback": {"type": "object"},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": {"type": "object"},
                            # KEDA reads every trigger setting as a string.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
}


def registry_settings() -> set[str]:
    """The environment variables the registry reads: every `env = "AGENT_REGISTRY_…"` of its flags."""
    names = set(re.findall(r'env\s*=\s*"(AGENT_REGISTRY_[A-Z0-9_]+)"', CONFIG_RS.read_text()))
    if len(names) < 20:
        sys.exit(f"found only {len(names)} settings in {CONFIG_RS}: has the flag syntax changed?")
    return names


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        sys.exit("kubectl not found: run `bash tests/clients/setup.sh` and use its deploy venv's python")
    return found


def render(overlay: str) -> list[dict]:
    """`kubectl kustomize` of one overlay, in a copy where each `.env.example` is its `.env`."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "k8s"
        shutil.copytree(HERE, tree, ignore=shutil.ignore_patterns("*.env", "__pycache__"))
        for example in tree.rglob("*.env.example"):
            shutil.copy(example, example.with_suffix(""))
        built = subprocess.run(
            [kubectl(), "kustomize", str(tree / "overlays" / overlay)], capture_output=True, text=True
        )
    if built.returncode != 0:
        raise SystemExit(f"{overlay}: kustomize build failed:\n{built.stderr}")
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def validate_schemas(objects: list[dict]) -> list[str]:
    problems = []
    for obj in objects:
        if obj.get("kind") == "ScaledObject":
            for error in jsonschema.Draft202012Validator(SCALED_OBJECT_SCHEMA).iter_errors(obj):
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{name_of(obj)}: {error.message} at /{where}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{name_of(obj)} (Kubernetes {version}): {error.message} at /{where}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{name_of(obj)}: no schema for {obj['apiVersion']} in Kubernetes {version}")
    return problems


class Render:
    """One overlay's objects, with the look-ups the consistency checks need."""

    def __init__(self, objects: list[dict]):
        self.objects = objects
        self.by_kind: dict[str, dict[str, dict]] = {}
        for obj in objects:
            self.by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj

    def named(self, kind: str, name: str) -> dict | None:
        return self.by_kind.get(kind, {}).get(name)

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        obj = self.named(kind, name)
        if obj is None:
            return None
        if kind == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            return values | (obj.get("stringData") or {})
        return dict(obj.get("data") or {})

    def workloads(self) -> list[tuple[dict, dict]]:
        """(object, pod template spec) of every Deployment and Job."""
        return [
            (obj, obj["spec"]["template"])
            for obj in self.objects
            if obj["kind"] in ("Deployment", "Job")
        ]

    def environment(self, container: dict, problems: list[str], where: str) -> dict[str, str]:
        """A container's variables as the kubelet would set them; unresolvable references reported."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
            values = self.data(kind, ref["name"])
            if values is None:
                if not ref.get("optional"):
                    problems.append(f"{where}: envFrom names {kind} {ref['name']}, which is not deployed")
                continue
            env |= {source.get("prefix", "") + k: v for k, v in values.items()}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            source = var.get("valueFrom", {})
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source:
                    ref = source[key]
                    values = self.data(kind, ref["name"])
                    if values is None or ref["key"] not in values:
                        problems.append(f"{where}: {var['name']} reads {kind} {ref['name']} key {ref['key']}, which is not deployed")
                    else:
                        env[var["name"]] = values[ref["key"]]
        return env


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check(overlay: str, objects: list[dict], settings: set[str]) -> list[str]:
    r = Render(objects)
    problems: list[str] = []

    seen: set[tuple] = set()
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            problems.append(f"{name_of(obj)}: defined twice")
        seen.add(key)

    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    if len(namespaces) != 1 or None in namespaces:
        problems.append(f"objects are spread over namespaces {sorted(map(str, namespaces))}: set `namespace:`")
    namespace = next(iter(namespaces - {None}), "default")
    if r.named("Namespace", namespace) is None:
        problems.append(f"namespace {namespace} is used but not created")

    registries = [
        obj for obj in objects
        if obj["kind"] == "Deployment" and matches(REGISTRY, obj["spec"]["template"]["metadata"].get("labels", {}))
    ]
    if len(registries) != 1:
        problems.append(f"{len(registries)} registry Deployments (labels {REGISTRY}); one consistent deployment has one")

    # Every pod: the security context, image tags, volumes that exist.
    for obj, template in r.workloads():
        pod = template["spec"]
        pod_security = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name_of(obj)}: mounts a service account token it does not use")
        for volume in pod.get("volumes") or []:
            for field, kind, key in (("persistentVolumeClaim", "PersistentVolumeClaim", "claimName"), ("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
                if field in volume and r.named(kind, volume[field][key]) is None:
                    problems.append(f"{name_of(obj)}: volume {volume['name']} names {kind} {volume[field][key]}, which is not deployed")
        for container in pod["containers"]:
            where = f"{name_of(obj)} container {container['name']}"
            security = container.get("securityContext") or {}
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not set")
            seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is {seccomp}, not RuntimeDefault")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in (security.get("capabilities") or {}).get("drop", []):
                problems.append(f"{where}: capabilities are not dropped (drop: [ALL])")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: the root filesystem is writable")
            image = container.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                problems.append(f"{where}: image {image!r} has no fixed tag")
            env = r.environment(container, problems, where)
            if container["name"] in ("agent-registry", "migrate"):
                for variable in sorted(env):
                    if variable not in settings:
                        problems.append(f"{where}: {variable} is not a setting of the registry (adapters/server/src/config.rs)")
            # In-namespace Service URLs (workers' REGISTRY_URL…) must reach a port the Service has.
            for variable, value in env.items():
                if not re.match(r"^https?://", value):
                    continue
                url = urlsplit(value)
                parts = (url.hostname or "").split(".")
                if len(parts) > 1 and (parts[1] != namespace or parts[2:] not in ([], ["svc"], ["svc", "cluster", "local"])):
                    continue  # not a name of this namespace's Services
                service = r.named("Service", parts[0])
                if service is None:
                    problems.append(f"{where}: {variable}={value} names Service {parts[0]}, which is not deployed")
                    continue
                port = url.port or (443 if url.scheme == "https" else 80)
                ports = [p["port"] for p in service["spec"]["ports"]]
                if port not in ports:
                    problems.append(f"{where}: {variable}={value} uses port {port}; Service {parts[0]} listens on {ports}")

    for registry in registries:
        problems += check_registry(r, registry, namespace, overlay)

    for service in r.by_kind.get("Service", {}).values():
        selector = service["spec"].get("selector", {})
        pods = [t for o, t in r.workloads() if o["kind"] == "Deployment" and matches(selector, t["metadata"].get("labels", {}))]
        if not pods:
            problems.append(f"{name_of(service)}: selects no Deployment's pods")
        jobs = [o for o, t in r.workloads() if o["kind"] == "Job" and matches(selector, t["metadata"].get("labels", {}))]
        if jobs:
            problems.append(f"{name_of(service)}: also selects the pods of {', '.join(map(name_of, jobs))}")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for template in pods:
                known = [p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])]
                numbers = [p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])]
                if target not in known + numbers:
                    problems.append(f"{name_of(service)}: targetPort {target} is no port of the pods it selects")

    for pdb in r.by_kind.get("PodDisruptionBudget", {}).values():
        selected = [o for o, t in r.workloads() if o["kind"] == "Deployment" and matches(pdb["spec"]["selector"]["matchLabels"], t["metadata"].get("labels", {}))]
        if not selected:
            problems.append(f"{name_of(pdb)}: selects no Deployment's pods")
        for obj in selected:
            if obj["spec"].get("replicas", 1) < 2:
                problems.append(f"{name_of(pdb)}: guards {name_of(obj)}, which has one replica, so no node can be drained")

    for scaled in r.by_kind.get("ScaledObject", {}).values():
        target = r.named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        if target is None:
            problems.append(f"{name_of(scaled)}: scales Deployment {scaled['spec']['scaleTargetRef']['name']}, which is not deployed")
            continue
        if "replicas" in target["spec"]:
            problems.append(f"{name_of(target)}: sets replicas, which every apply would put back over KEDA's count")
        env: dict[str, str] = {}
        for container in target["spec"]["template"]["spec"]["containers"]:
            env |= r.environment(container, [], "")
        for trigger in scaled["spec"]["triggers"]:
            variable = trigger["metadata"].get("hostFromEnv")
            if variable and variable not in env:
                problems.append(f"{name_of(scaled)}: hostFromEnv {variable} is not set in {name_of(target)}")
    return problems


def check_registry(r: Render, deployment: dict, namespace: str, overlay: str) -> list[str]:
    problems: list[str] = []
    pod = deployment["spec"]["template"]["spec"]
    container = next((c for c in pod["containers"] if c["name"] == "agent-registry"), None)
    if container is None:
        return [f"{name_of(deployment)}: no container named agent-registry"]
    where = f"{name_of(deployment)}"
    env = r.environment(container, [], where)

    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
        if got != path:
            problems.append(f"{where}: {probe} is on {got}, not {path}")

    # Endpoints are removed from Services after SIGTERM, not before: the pod must serve on for a
    # while, with the registry's own delay (not ready, still serving) or a preStop sleep.
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    command = (pre_stop.get("exec") or {}).get("command", [])
    sleep = int(command[1]) if command[:1] == ["sleep"] else int((pre_stop.get("sleep") or {}).get("seconds", 0))
    delay = int(env.get("AGENT_REGISTRY_SHUTDOWN_DELAY_SECONDS", "0"))
    grace = int(env.get("AGENT_REGISTRY_SHUTDOWN_GRACE_SECONDS", "10"))
    budget = pod.get("terminationGracePeriodSeconds", 30)
    if sleep + delay == 0:
        problems.append(f"{where}: neither AGENT_REGISTRY_SHUTDOWN_DELAY_SECONDS nor a preStop sleep: the listener closes while Services still route to the pod")
    elif sleep + delay + grace >= budget:
        problems.append(f"{where}: preStop {sleep} s + shutdown delay {delay} s + grace {grace} s do not fit in terminationGracePeriodSeconds {budget}")

    listen_port = int(env.get("AGENT_REGISTRY_LISTEN", "127.0.0.1:8080").rsplit(":", 1)[1])
    if not env.get("AGENT_REGISTRY_LISTEN", "").startswith(("0.0.0.0:", "[::]:")):
        problems.append(f"{where}: AGENT_REGISTRY_LISTEN={env.get('AGENT_REGISTRY_LISTEN')} is not reachable from outside the pod")
    if listen_port not in [p["containerPort"] for p in container.get("ports", [])]:
        problems.append(f"{where}: listens on {listen_port}, which is no containerPort")

    # MCP's DNS-rebinding check: in-cluster clients send the Service's names as Host.
    hosts = [h.strip() for h in env.get("AGENT_REGISTRY_MCP_ALLOWED_HOSTS", "").split(",") if h.strip()]
    if "*" not in hosts:
        services = [s for s in r.by_kind.get("Service", {}).values() if matches(s["spec"].get("selector", {}), REGISTRY)]
        wanted = [
            name
            for s in services
            for base in [s["metadata"]["name"]]
            for name in (base, f"{base}.{namespace}", f"{base}.{namespace}.svc", f"{base}.{namespace}.svc.cluster.local")
        ]
        public = urlsplit(env.get("AGENT_REGISTRY_PUBLIC_URL", "")).hostname
        wanted += [public] if public else []
        if not hosts:
            wanted = [w for w in wanted if w == public]  # the default allows the public host only
        for name in wanted:
            if name not in hosts:
                problems.append(f"{where}: AGENT_REGISTRY_MCP_ALLOWED_HOSTS lacks {name}: MCP clients using it get 403")

    proxies = [p.strip() for p in env.get("AGENT_REGISTRY_TRUSTED_PROXIES", "").split(",") if p.strip()]
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            problems.append(f"{where}: AGENT_REGISTRY_TRUSTED_PROXIES entry {proxy!r} is no address or network")
            continue
        if network.prefixlen < 16:
            problems.append(f"{where}: AGENT_REGISTRY_TRUSTED_PROXIES {proxy} is wider than an ingress: any pod could choose its address")

    database = env.get("AGENT_REGISTRY_DATABASE_URL", "")
    replicas = deployment["spec"].get("replicas", 1)
    strategy = deployment["spec"].get("strategy", {}).get("type", "RollingUpdate")
    if database.startswith("sqlite:"):
        if replicas != 1 or strategy != "Recreate":
            problems.append(f"{where}: SQLite with {replicas} replicas and {strategy}: one pod at a time (Recreate)")
        path = database.split("://", 1)[1]
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        if not any(path.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{where}: the SQLite file {path} is on no volume (the root is read-only, and a pod's files die with it)")
        if not env.get("AGENT_REGISTRY_BOOTSTRAP_TOKEN"):
            problems.append(f"{where}: no bootstrap token: nobody can get the first Admin key")
    elif database.startswith(("postgres:", "postgresql:")):
        if replicas > 1 and not env.get("AGENT_REGISTRY_REDIS_URL"):
            problems.append(f"{where}: {replicas} replicas without AGENT_REGISTRY_REDIS_URL keep liveness each in its own process")
        migrate_jobs = [o for o in r.by_kind.get("Job", {}).values() if "migrate" in o["spec"]["template"]["spec"]["containers"][0].get("args", [])]
        if not migrate_jobs and env.get("AGENT_REGISTRY_AUTO_MIGRATE") not in ("true", "1"):
            problems.append(f"{where}: PostgreSQL without a migrate Job or AGENT_REGISTRY_AUTO_MIGRATE: serve refuses the schema")
        for job in migrate_jobs:
            job_env = r.environment(job["spec"]["template"]["spec"]["containers"][0], [], "")
            if job_env.get("AGENT_REGISTRY_DATABASE_URL") != database:
                problems.append(f"{name_of(job)}: migrates {job_env.get('AGENT_REGISTRY_DATABASE_URL')!r}, not the registry's database")
            if job["spec"]["template"]["spec"]["containers"][0]["image"] != container["image"]:
                problems.append(f"{name_of(job)}: runs another image than the registry's")
    else:
        problems.append(f"{where}: AGENT_REGISTRY_DATABASE_URL {database!r} is neither sqlite:// nor postgres://")
    return problems


def self_test(overlay: str, objects: list[dict], settings: set[str]) -> list[str]:
    """Each breakage must be reported: proof that the checks above still check."""

    def registry(objs):
        return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "agent-registry")

    def container(objs):
        return registry(objs)["spec"]["template"]["spec"]["containers"][0]

    def config(objs):
        return next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("agent-registry-"))

    def worker_config(objs):
        return next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("image-resizer-"))

    breakages = {
        "a misspelled field": lambda o: container(o).__setitem__("imagePullPolicyy", "Always"),
        "a field of the wrong type": lambda o: registry(o)["spec"].__setitem__("replicas", "three"),
        "a second registry Deployment": lambda o: o.append(copy.deepcopy(registry(o)) | {"metadata": {"name": "agent-registry-2", "namespace": "agent-registry"}}),
        "a setting the registry does not have": lambda o: config(o)["data"].__setitem__("AGENT_REGISTRY_TRUSTED_PROXY", "10.0.0.1"),
        "an MCP host list without the Service": lambda o: config(o)["data"].__setitem__("AGENT_REGISTRY_MCP_ALLOWED_HOSTS", "agent-registry.example.com"),
        "a liveness probe as startup probe": lambda o: container(o)["startupProbe"]["httpGet"].__setitem__("path", "/healthz"),
        "capabilities kept": lambda o: container(o)["securityContext"].pop("capabilities"),
        "an unresolved Secret": lambda o: container(o)["envFrom"].append({"secretRef": {"name": "nowhere"}}),
        "a latest image": lambda o: container(o).__setitem__("image", "agent-registry:latest"),
        "trusting every address": lambda o: config(o)["data"].__setitem__("AGENT_REGISTRY_TRUSTED_PROXIES", "0.0.0.0/0"),
    }
    if overlay == "keda-worker":
        breakages["REGISTRY_URL on the container port"] = lambda o: worker_config(o)["data"].__setitem__("REGISTRY_URL", "http://agent-registry:8080")
        breakages["a misspelled ScaledObject field"] = lambda o: next(x for x in o if x["kind"] == "ScaledObject")["spec"].__setitem__("maxReplicas", 3)
    if overlay == "replicated":
        breakages["a migrate Job on another database"] = lambda o: next(x for x in o if x["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]["env"].__setitem__(1, {"name": "AGENT_REGISTRY_DATABASE_URL", "value": "postgres://elsewhere/db"})
    if overlay == "embedded":
        breakages["two replicas on SQLite"] = lambda o: registry(o)["spec"].__setitem__("replicas", 2)

    missed = []
    for what, breakage in breakages.items():
        broken = copy.deepcopy(objects)
        breakage(broken)
        # The consistency checks read objects that passed the schemas, as in main().
        changed = [obj for obj in broken if obj not in objects]
        if not (validate_schemas(changed) or check(overlay, broken, settings)):
            missed.append(f"self-test: {what} in {overlay} went unnoticed")
    return missed


def main() -> int:
    settings = registry_settings()
    failed = False
    for overlay in OVERLAYS:
        objects = render(overlay)
        # The consistency checks assume well-formed objects: they run once the schemas pass.
        problems = validate_schemas(objects) or check(overlay, objects, settings)
        if not problems:
            problems = self_test(overlay, objects, settings)
        for problem in problems:
            print(f"k8s/overlays/{overlay}: {problem}", file=sys.stderr)
        failed |= bool(problems)
        kinds = ", ".join(sorted(name_of(o) for o in objects))
        print(f"{overlay}: {'INVALID' if problems else 'ok'}: {len(objects)} objects ({kinds})", flush=True)
    print(f"schemas: Kubernetes {', '.join(KUBERNETES_VERSIONS)} (kubernetes-validate {kubernetes_validate.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
