"""No secret is committed: private keys, cloud keys, tokens, or passwords other than the documented
development defaults (tourapp/tourapp for local services, the demo and admin users' passwords).

Test code is scanned for keys and tokens too, but its password assignments and URL credentials are
fixtures by nature (made-up users, a fake password proving redaction) and are not reported.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abpors]-[A-Za-z0-9-]{10,}\b"),
    "password assignment": re.compile(
        r"""(?i)\b(?:password|passwd|secret|api_key|secret_key)\w*\s*[:=]\s*["']([^"'\s]{6,})["']"""
    ),
    "credentials in URL": re.compile(r"[a-z][a-z0-9+.-]*://([^/:@\s]+):([^/@\s]+)@"),
}
# Values documented as development-only defaults (README, settings, scripts/services).
ALLOWED_VALUES = {
    "tourapp",
    "demo-password",
    "admin-password",
    "test-password",
    "e2e-password-123",
    "s3cret-Passw0rd!",
    "dev-only-insecure-secret-key-do-not-use-in-production-000000",
}
ALLOWED_URL_CREDENTIALS = {("tourapp", "tourapp"), ("guest", "guest")}
# Placeholders in documentation (``amqp://u:p@host``, ``user:<password>@``): not secrets.
PLACEHOLDER_PASSWORD = re.compile(r"(?i)^(?:.{1,3}|<[^>]*>|\*+|x+|password|pass|changeme|secret)$")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and path.stat().st_size < 1_000_000:
            files.append(path)
    return files


def _findings(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return []
    found = []
    in_tests = "tests" in path.relative_to(ROOT).parts
    for label, pattern in PATTERNS.items():
        if in_tests and label in ("password assignment", "credentials in URL"):
            continue
        for match in pattern.finditer(text):
            if label == "password assignment" and (match.group(1) in ALLOWED_VALUES or "{" in match.group(1)):
                continue
            if label == "credentials in URL" and (
                (match.group(1), match.group(2)) in ALLOWED_URL_CREDENTIALS
                or PLACEHOLDER_PASSWORD.match(match.group(2))
                or "$" in match.group(0)
            ):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}: {label}")
    return found


def test_no_tracked_file_contains_a_secret_beyond_the_documented_development_defaults():
    findings = [f for path in _tracked_text_files() if path.name != Path(__file__).name for f in _findings(path)]
    assert findings == []


def test_the_secret_scanner_catches_a_planted_key(tmp_path):
    # given a file with an AWS-style key and a password assignment (built at runtime: not in the repo)
    planted = tmp_path / "leak.py"
    planted.write_text("AWS_KEY = '" + "AKIA" + "ABCDEFGHIJKLMNOP'\npassword = '" + "hunter2-real'\n")
    # when it is scanned, then both are reported
    findings = [f.split(": ")[1] for f in _findings_outside_root(planted)]
    assert findings == ["AWS access key", "password assignment"]


def _findings_outside_root(path: Path) -> list[str]:
    text = path.read_text()
    return [
        f"{path.name}: {label}"
        for label, pattern in PATTERNS.items()
        for match in pattern.finditer(text)
        if not (label == "password assignment" and match.group(1) in ALLOWED_VALUES)
    ]
