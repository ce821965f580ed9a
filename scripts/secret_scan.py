"""Secret scan of the tree and of the whole git history with detect-secrets (TESTPLAN K6); exit 1 on a finding.

Run by `make lint`. Every tracked text file, and every line ever added or removed in any commit (`git log -p
--all`), is scanned by detect-secrets' pattern detectors: AWS, GitHub, OpenAI, Slack, Stripe, private keys,
JWTs, URLs with passwords and the rest. The distinct lines of both are scanned as one text (detect-secrets' cost
grows with files and lines: this keeps the scan to seconds), and findings are mapped back to a file and line.

Not used, with the reason: the two high-entropy detectors and the keyword detector, which flag every trace
id, hashed key id and `"api_key": "<hash>"` field of the provider export samples under fixtures/ (hundreds of
findings, none a secret); the pattern detectors still scan those files. A line that must hold a clearly
fake key carries `# pragma: allowlist secret`; the exclusions below are the only others.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

ROOT = Path(__file__).resolve().parent.parent
DISABLED = {"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector"}
# Files that exist to hold fake secrets, and documented example URLs.
EXCLUDED_FILES = re.compile(
    r"^tests/overuse/test_redaction\.py$"
)  # planted fake keys for the H6 redaction test
EXCLUDED_LINES = re.compile(
    r"postgres://(user:pass|spendwatch:spendwatch)@"
)  # README / scripts/pg.sh examples


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def tree_text() -> tuple[str, list[tuple[str, int]]]:
    """Every tracked text file as one text, and for each of its lines the (path, line) it came from."""
    lines: list[str] = []
    origin: list[tuple[str, int]] = []
    for name in _git("ls-files", "-z").decode().split("\0"):
        path = ROOT / name
        if not name or EXCLUDED_FILES.match(name) or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            lines.append(line)
            origin.append((name, number))
    return "\n".join(lines) + "\n", origin


def history_text() -> tuple[str, list[tuple[str, int]]]:
    """Every added and removed line of every commit, with the commit and file it belongs to."""
    lines: list[str] = []
    origin: list[tuple[str, int]] = []
    commit, name = "", ""
    raw = _git("log", "-p", "--all", "--no-color", "--no-ext-diff", "--format=commit %H")
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("commit "):
            commit = line[7:19]
        elif line.startswith("+++ b/") or line.startswith("--- a/"):
            name = line[6:]
        elif line[:1] in "+-" and not line.startswith(("+++", "---")) and not EXCLUDED_FILES.match(name):
            lines.append(line[1:])
            origin.append((f"{commit}:{name}", 0))
    return "\n".join(lines) + "\n", origin


def scan(text: str, origin: list[tuple[str, int]]) -> list[str]:
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as directory:
        path = Path(directory) / "distinct-lines.txt"
        path.write_text(text, encoding="utf-8")
        with default_settings() as settings:
            settings.disable_plugins(*DISABLED)
            secrets = SecretsCollection(root=str(ROOT))
            secrets.scan_file(str(path.relative_to(ROOT)))
    lines = text.splitlines()
    findings = set()
    for _, secret in secrets:
        if EXCLUDED_LINES.search(lines[secret.line_number - 1]):
            continue
        where, line = origin[secret.line_number - 1]
        findings.add(f"{where}{f':{line}' if line else ''}: {secret.type}")
    return sorted(findings)


def distinct_lines() -> tuple[str, list[tuple[str, int]]]:
    """Each line of the tree and the history once, with where it was first seen (the tree first)."""
    first_seen: dict[str, tuple[str, int]] = {}
    for text, origin in (tree_text(), history_text()):
        for line, where in zip(text.splitlines(), origin, strict=True):
            first_seen.setdefault(line, where)
    return "\n".join(first_seen) + "\n", list(first_seen.values())


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    findings = scan(*distinct_lines())
    for finding in findings:
        print(finding)
    print(f"secret scan: {len(findings)} finding(s) in the tree and the git history")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
