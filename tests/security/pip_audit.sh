#!/bin/sh
# Audit the packages installed in the venv, at their pinned versions, against PyPI's
# vulnerability data. Exit 0: no known vulnerability; 1: a known vulnerability (or a package
# that could not be audited at all); see docs/reliability/security.md.
#
#   tests/security/pip_audit.sh [VENV]        (default: .venv; needs pip-audit in that venv)
#
# PIP_AUDIT_REPORT_UNAUDITED=1 (as CI runs it): packages that could not be audited are listed
# but only a known vulnerability fails; otherwise an unaudited package fails too.
#
# pip-audit asks PyPI per release (/pypi/<name>/<version>/json). Where a proxy serves only
# the per-project document (/pypi/<name>/json), pip-audit can audit nothing and --strict
# fails; the fallback then reads the per-project document, whose `vulnerabilities` list is
# that of the latest release: authoritative for every package installed at its latest
# version, and a refusal to vouch (exit 1) for any other.
set -eu
VENV=${1:-.venv}
PY="$VENV/bin/python"
REQS=$(mktemp)
OUT=$(mktemp)
trap 'rm -f "$REQS" "$OUT"' EXIT
"$PY" -m pip freeze --all --exclude-editable --disable-pip-version-check > "$REQS"

status=0
"$PY" -m pip_audit --requirement "$REQS" --no-deps --disable-pip --strict --vulnerability-service pypi \
    --progress-spinner off --desc on > "$OUT" 2>&1 || status=$?
cat "$OUT"
if [ "$status" -eq 0 ]; then
    exit 0
fi
if grep -q "known vulnerabilit" "$OUT" && ! grep -q "No known vulnerabilities found" "$OUT"; then
    exit 1  # pip-audit found something: that is the answer
fi
if ! grep -q "could not be audited" "$OUT"; then
    exit "$status"  # some other failure (network, pip-audit missing): do not pretend
fi

echo "pip-audit could not reach PyPI's per-release data; reading the per-project documents instead."
exec "$PY" - "$REQS" <<'PYEOF'
import json
import sys
import urllib.request

failed = unknown = 0
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if not line or line.startswith("#") or "==" not in line:
        continue
    name, version = line.split("==", 1)
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as response:
            project = json.load(response)
    except Exception as exc:  # noqa: BLE001 - reported, and counted as not audited
        print(f"{name} {version}: not audited ({exc})")
        unknown += 1
        continue
    latest = project["info"]["version"]
    vulns = project.get("vulnerabilities") or []
    if version != latest:
        print(f"{name} {version}: not audited here (latest is {latest}; known in {latest}: {len(vulns)})")
        unknown += 1
        continue
    for vuln in vulns:
        failed += 1
        fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix yet"
        print(f"{name} {version}: {vuln.get('id')} {' '.join(vuln.get('aliases') or [])} fixed in {fixed}")
print(f"{failed} known vulnerabilities; {unknown} packages not audited")
import os

lenient = os.environ.get("PIP_AUDIT_REPORT_UNAUDITED") == "1"
sys.exit(1 if failed or (unknown and not lenient) else 0)
PYEOF
