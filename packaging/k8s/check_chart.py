#!/usr/bin/env python3
"""Renders the Skerry Helm chart with Helm's own engine and checks the result.

For every values file in the scenarios directory:
1. `helm lint --strict` (through helm-python-sdk, which embeds Helm's Go SDK:
   the same template engine, Sprig functions and values.schema.json check as
   the helm binary, which cannot be downloaded here);
2. `helm template`: renders offline and writes OUT/<scenario>.yaml;
3. validates every object against the Kubernetes OpenAPI schemas of each
   requested version, strictly (unknown fields are errors), with the
   kubernetes-validate package;
4. checks what schemas cannot see: each pod finds its Skerry file in its
   ConfigMap, every file that file names is mounted, Services and budgets
   select the pods they mean, probes and scrape annotations point at the
   admin port, and the balancer dials the StatefulSet's stable names;
5. with --skerry BIN, runs `skerry config check` on every rendered Skerry
   file (paths moved under a scratch root holding placeholder files).

Values files under SCENARIOS/rejected/ must instead be refused (by
values.schema.json or a template's `fail`) with the message their
`# expect: TEXT` line gives.

    check_chart.py CHART SCENARIOS OUT [--skerry BIN] [--kube-version V ...]

Exits 1 after listing every problem found.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

RELEASE = "demo"
NAMESPACE = "iot"
SKERRY_PATH = re.compile(r"/etc/skerry/[\w./-]+")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.scenario = ""

    def add(self, message: str) -> None:
        self.items.append(f"{self.scenario}: {message}")

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.add(message)


def render(chart_dir: Path, values: dict, problems: Problems) -> dict[str, str]:
    report = helm.lint(str(chart_dir), values, strict=True, namespace=NAMESPACE)
    for message in report.get("messages", []):
        if message["severity"] >= 2:
            problems.add(f"helm lint: {message['path']}: {message['error']}")
    for error in report.get("errors") or []:
        problems.add(f"helm lint: {error}")
    with helm.Chart.load(str(chart_dir)) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def objects(manifests: dict[str, str]) -> list[dict]:
    found = []
    for name in sorted(manifests):
        if not name.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(manifests[name]):
            if doc:
                found.append(doc)
    return found


def schema_check(docs: list[dict], versions: list[str], problems: Problems) -> None:
    for doc in docs:
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.absolute_path)
                problems.add(f"{what} against Kubernetes {version}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.add(f"{what}: no Kubernetes {version} schema: {e}")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, problems: Problems) -> dict | None:
    found = by_kind(docs, kind)
    problems.check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else None


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_checks(workload: dict, configmaps: dict[str, dict], secrets_mounted: dict, problems: Problems) -> list[tuple[str, str]]:
    """Checks one workload's pod; returns (config name, config text) pairs it runs."""
    name = workload["metadata"]["name"]
    template = workload["spec"]["template"]
    labels = template["metadata"]["labels"]
    annotations = template["metadata"].get("annotations", {})
    spec = template["spec"]
    problems.check(selects(workload["spec"]["selector"]["matchLabels"], labels), f"{name}: selector does not match its pods")
    problems.check("checksum/config" in annotations, f"{name}: no checksum/config annotation (config changes would not roll pods)")
    problems.check(spec.get("automountServiceAccountToken") is False, f"{name}: mounts a service account token it never uses")
    container = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = container.get(probe, {}).get("httpGet", {})
        problems.check(get.get("path") == path, f"{name}: {probe} is not on {path}")
        problems.check(get.get("port") in ports, f"{name}: {probe} port {get.get('port')} is not a container port")
    if "prometheus.io/port" in annotations:
        problems.check(int(annotations["prometheus.io/port"]) == ports.get("admin"), f"{name}: scrape port is not the admin port")
        problems.check(annotations.get("prometheus.io/path") == "/metrics", f"{name}: scrape path is not /metrics")
    ctx = spec.get("securityContext", {})
    problems.check(ctx.get("runAsNonRoot") is True and ctx.get("runAsUser") == 10001, f"{name}: not running as uid 10001")

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        problems.check(m["name"] in volumes or m["name"] in claims, f"{name}: mount {m['name']} has no volume")
        mounts[m["mountPath"]] = volumes.get(m["name"], {"claim": m["name"]})
    problems.check("/data" in mounts, f"{name}: nothing mounted at /data")

    # The config file the container's args name, per pod name.
    args = container.get("args", [])
    config_path = args[args.index("-c") + 1] if "-c" in args else None
    problems.check(config_path is not None, f"{name}: container does not run `skerry run -c FILE`")
    if config_path is None:
        return []
    directory, _, file_pattern = config_path.rpartition("/")
    volume = mounts.get(directory)
    cm_name = volume.get("configMap", {}).get("name") if volume else None
    problems.check(cm_name in configmaps, f"{name}: {directory} is not a ConfigMap of this chart")
    if cm_name not in configmaps:
        return []
    data = configmaps[cm_name].get("data", {})
    if "$(POD_NAME)" in file_pattern:
        env = {e["name"]: e for e in container.get("env", [])}
        field = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        problems.check(field == "metadata.name", f"{name}: POD_NAME is not the pod's name")
        pods = [f"{name}-{i}" for i in range(workload["spec"]["replicas"])]
        files = [file_pattern.replace("$(POD_NAME)", pod) for pod in pods]
    else:
        files = [file_pattern]
    run = []
    for f in files:
        problems.check(f in data, f"{name}: its pods read {directory}/{f}, which {cm_name} does not have")
        if f in data:
            run.append((f"{cm_name}/{f}", data[f]))
            # Every file the Skerry config names must be mounted for this pod.
            for path in SKERRY_PATH.findall(data[f]):
                d, _, base = path.rpartition("/")
                vol = mounts.get(d)
                problems.check(vol is not None, f"{name}: {f} names {path}, but nothing is mounted at {d}")
                if vol and "secret" in vol:
                    items = [i["path"] for i in vol["secret"].get("items", [])]
                    problems.check(not items or base in items, f"{name}: secret at {d} does not provide {base}")
                    secrets_mounted.setdefault(vol["secret"]["secretName"], set()).add(base)
    return run


def chart_checks(docs: list[dict], problems: Problems) -> list[tuple[str, str]]:
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    sts = one(docs, "StatefulSet", problems)
    deploy = one(docs, "Deployment", problems)
    if not sts or not deploy:
        return []
    secrets: dict[str, set] = {}
    run = pod_checks(sts, configmaps, secrets, problems) + pod_checks(deploy, configmaps, secrets, problems)

    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    headless = services.get(sts["spec"]["serviceName"])
    problems.check(headless is not None, f"StatefulSet serviceName {sts['spec']['serviceName']} is not a Service of the chart")
    if headless:
        problems.check(headless["spec"].get("clusterIP") == "None", "the StatefulSet's Service is not headless")
    for svc in services.values():
        selected = [w["metadata"]["name"] for w in (sts, deploy) if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        problems.check(len(selected) == 1, f"Service {svc['metadata']['name']} selects {selected}, not exactly one workload")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            owner = sts if sts["metadata"]["name"] in selected else deploy
            names = {p["name"] for p in owner["spec"]["template"]["spec"]["containers"][0]["ports"]}
            problems.check(target in names, f"Service {svc['metadata']['name']}: targetPort {target} is not a port of its pods")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for w in (sts, deploy):
        labels = w["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        problems.check(len(covering) == 1, f"{w['metadata']['name']} is covered by {len(covering)} PodDisruptionBudgets")

    # The balancer dials each node by its stable per-pod DNS name.
    lb_files = [text for name, text in run if name.startswith(deploy["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] + "/")]
    broker_port = {p["name"]: p["containerPort"] for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]}["mqtt"]
    if lb_files and headless:
        pool = yaml.safe_load(lb_files[0])["lb"]["pools"][0]
        sts_name = sts["metadata"]["name"]
        want = [
            {"name": f"{sts_name}-{i}", "address": f"{sts_name}-{i}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{broker_port}"}
            for i in range(sts["spec"]["replicas"])
        ]
        problems.check(pool["members"] == want, f"balancer pool members {pool['members']} are not the StatefulSet's pods {want}")
    for name, text in run:
        if name.startswith(sts["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] + "/"):
            node = yaml.safe_load(text)["broker"]["nodes"][0]
            problems.check(name.endswith(f"/{node['name']}.yaml"), f"{name}: node is named {node['name']}")
    return run


def skerry_check(binary: str, files: list[tuple[str, str]], problems: Problems) -> int:
    """`skerry config check` on each file, its absolute paths moved under a scratch root."""
    checked = 0
    with tempfile.TemporaryDirectory() as root:
        for name, text in files:
            moved = text.replace("/etc/skerry/", f"{root}/etc/skerry/").replace("/data/", f"{root}/data/")
            for path in SKERRY_PATH.findall(text):
                placeholder = Path(root + path)
                placeholder.parent.mkdir(parents=True, exist_ok=True)
                placeholder.write_text("placeholder-token\n")
            config = Path(root, "check", name.replace("/", "_"))
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(moved)
            result = subprocess.run([binary, "config", "check", str(config)], capture_output=True, text=True)
            problems.check(result.returncode == 0, f"skerry config check {name}:\n{result.stdout}{result.stderr}")
            checked += 1
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chart", type=Path)
    parser.add_argument("scenarios", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--skerry", help="skerry binary for `config check` of the rendered files")
    parser.add_argument("--kube-version", action="append", dest="versions")
    args = parser.parse_args()
    versions = args.versions or ["1.25.0", kubernetes_validate.latest_version()]
    args.out.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    scenarios = sorted(args.scenarios.glob("*.yaml"))
    if not scenarios:
        print(f"no scenarios in {args.scenarios}", file=sys.stderr)
        return 1
    for scenario in scenarios:
        problems.scenario = scenario.stem
        values = yaml.safe_load(scenario.read_text()) or {}
        before = len(problems.items)
        try:
            manifests = render(args.chart, values, problems)
        except helm.HelmError as e:  # type: ignore[attr-defined]
            problems.add(f"render failed: {e}")
            continue
        docs = objects(manifests)
        out = args.out / f"{scenario.stem}.yaml"
        # As `helm template` prints it.
        out.write_text("".join(
            f"---\n# Source: {name}\n{text.strip()}\n"
            for name, text in sorted(manifests.items())
            if name.endswith((".yaml", ".yml")) and text.strip()
        ))
        schema_check(docs, versions, problems)
        try:
            files = chart_checks(docs, problems)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            # The schema check above has said what is malformed.
            problems.add(f"cannot check the objects' wiring: {type(e).__name__}: {e}")
            files = []
        checked = skerry_check(args.skerry, files, problems) if args.skerry else 0
        kinds = ", ".join(sorted({d["kind"] for d in docs}))
        verdict = "ok" if len(problems.items) == before else f"{len(problems.items) - before} problem(s)"
        print(
            f"{scenario.stem}: {len(docs)} objects ({kinds}) checked against Kubernetes {', '.join(versions)}; "
            f"{checked} Skerry file(s) passed `skerry config check`; {verdict} -> {out}"
        )
    rejected = sorted((args.scenarios / "rejected").glob("*.yaml"))
    for scenario in rejected:
        problems.scenario = f"rejected/{scenario.stem}"
        text = scenario.read_text()
        expect = re.search(r"^# expect: (.+)$", text, re.M)
        if not expect:
            problems.add("no '# expect: TEXT' line")
            continue
        values = yaml.safe_load(text) or {}
        try:
            with helm.Chart.load(str(args.chart)) as chart:
                chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as e:  # type: ignore[attr-defined]
            reason = str(e).strip().splitlines()[-1]
            if expect.group(1) in str(e):
                print(f"rejected/{scenario.stem}: refused as it should be: {reason}")
            else:
                problems.add(f"refused, but not with {expect.group(1)!r}: {e}")
        else:
            problems.add("rendered, but these values must be refused")
    for p in problems.items:
        print(f"PROBLEM {p}", file=sys.stderr)
    total = len(scenarios) + len(rejected)
    passed = total - len({p.split(':', 1)[0] for p in problems.items})
    print(f"chart: {passed} passed, {total - passed} failed")
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
