"""The user-facing text speaks to users: README, docs and settings carry no internal work-tracking
jargon, and settings read as one ordered file.

Readers of the README, ``docs/*.md`` and ``tourapp/settings.py`` are the project's users and
operators: a numbered work item ("issue 4"), a past working session ("session 3") or a bare
reference to course material ("the lesson's exercise 3") means nothing to them. Figures and their
history belong in ``docs/performance.md``, not in fences or asides.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_FACING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "tourapp" / "settings.py"]

JARGON = {
    "a numbered work item": re.compile(r"\bissues? #?\d+|\(#\d+\)", re.IGNORECASE),
    "a working session": re.compile(
        r"\bsessions? \d+|\b(?:this|that|last|previous|earlier|next) session\b|\bpast rounds?\b", re.IGNORECASE
    ),
    "course material without saying which": re.compile(r"\bthe lesson'?s?\b", re.IGNORECASE),
    "a section fence": re.compile(r"^#\s*---\s|\bend of (?:issue|session)\b", re.IGNORECASE | re.MULTILINE),
}


def _jargon(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in JARGON.items():
            match = pattern.search(line)
            if match:
                found.append(f"line {number}: {kind}: {match.group(0)!r}")
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# --- consumers (issue 5): limits", ["a numbered work item", "a section fence"]),
        ("# --- end consumers", ["a section fence"]),
        ("(the bookings and relay rows in session 4, the others in session 2)", ["a working session"]),
        ("earlier runs this session, before the web path got cheaper", ["a working session"]),
        ("# Which broker? RabbitMQ or Kafka (the lesson's exercise 3)", ["course material without saying which"]),
        ("the message-queue lesson's exercise 3 (A: emails, B: analytics, C: payments)", []),
        ("# ------------------------------------------------------------------ data stores", []),
        ("5.4-10.8 % in single pairs of alternating rounds; a session cookie", []),
    ],
)
def test_jargon_check_flags_work_items_sessions_and_fences_and_nothing_else(text, expected):
    # given one line of text / when it is checked / then exactly the expected kinds are reported
    assert [finding.split(": ")[1] for finding in _jargon(text)] == expected


@pytest.mark.parametrize("path", USER_FACING, ids=lambda path: str(path.relative_to(ROOT)))
def test_user_facing_text_has_no_internal_jargon(path):
    # given a README, docs page or the settings file
    text = path.read_text(encoding="utf-8")

    # when it is searched for work-tracking jargon
    found = _jargon(text)

    # then there is none
    assert not found, f"{path.relative_to(ROOT)} speaks to insiders:\n" + "\n".join(found)


def test_settings_define_each_setting_once_without_later_patches():
    # given the settings module's syntax tree
    tree = ast.parse((ROOT / "tourapp" / "settings.py").read_text(encoding="utf-8"))

    # when every assignment to a setting (an UPPERCASE name) is collected
    defined: dict[str, int] = {}
    patched = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign):
            patched.append(f"line {node.lineno}: {ast.unparse(node)}")
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                if target.id in defined:
                    patched.append(
                        f"line {node.lineno}: {target.id} assigned again (first on line {defined[target.id]})"
                    )
                defined.setdefault(target.id, node.lineno)
            elif isinstance(target, ast.Subscript):
                # DATABASES alone: parsed from DATABASE_URL, then completed on the lines right after.
                if "DATABASES" not in ast.unparse(target):
                    patched.append(f"line {node.lineno}: {ast.unparse(target)} patched by item")

    # then each is defined once, in one place, and no later section extends or patches it
    assert defined, "no settings found"
    assert not patched, "settings patched after their definition:\n" + "\n".join(patched)
