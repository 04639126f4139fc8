#!/usr/bin/env bash
# Renders the Helm chart in packaging/k8s/skerry for every values file in
# packaging/k8s/scenarios/ and validates the result (see check_chart.py):
# helm lint --strict, offline `helm template`, Kubernetes JSON schemas
# (strict) for the oldest and newest supported Kubernetes, the chart's own
# wiring, and `skerry config check` on every rendered Skerry file.
#
#   bash packaging/k8s/validate.sh                   # skips `config check` without a binary
#   SKERRY_BIN=target/.../skerry bash packaging/k8s/validate.sh
#
# The helm binary cannot be downloaded here; helm-python-sdk (PyPI) embeds
# Helm's Go SDK (v4) as a shared library, so rendering is Helm's own. Both
# Python packages go into a virtualenv under the target directory.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
. "$(dirname "$0")/../scripts/lib.sh"
cd "$SKERRY_ROOT"

out=$(skerry_out_dir)/k8s
venv=$(skerry_out_dir)/k8s-venv
requirements=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0)

step "python environment in $venv"
if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
fi
"$venv/bin/pip" freeze --disable-pip-version-check | grep -Ei '^(helm-python-sdk|kubernetes-validate)=='

chart_app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' packaging/k8s/skerry/Chart.yaml)
[[ $chart_app == "$(skerry_version)" ]] ||
  die "Chart.yaml appVersion $chart_app is not the workspace version $(skerry_version)"

check=(--kube-version 1.25.0 --kube-version 1.37.0)
if [[ -n ${SKERRY_BIN:-} ]]; then
  check+=(--skerry "$SKERRY_BIN")
else
  echo "SKERRY_BIN not set: rendered Skerry files are not run through 'skerry config check'" >&2
fi
step "rendering and validating the chart"
"$venv/bin/python" packaging/k8s/check_chart.py packaging/k8s/skerry packaging/k8s/scenarios "$out" "${check[@]}"
