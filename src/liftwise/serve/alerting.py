"""The Prometheus alert rules shipped with liftwise (``alerts/liftwise-rules.yml``).

The rules watch the metrics ``liftwise serve`` exports (docs/serving.md, docs/rollouts.md):
per-variant error rate and p99 of a rollout, the service's single-decision p99, the
campaign budget's burn rate against its pacing and window, failed gates and aborted
rollouts. They are package data, so an installed liftwise writes the rules that match
its own metric names (``liftwise rollout alert-rules``); tests/test_alert_rules.py checks
them with ``promtool check rules`` and unit-tests every alert with ``promtool test rules``.
"""

from __future__ import annotations

from pathlib import Path

from liftwise.io import atomic_path

RULES_FILE = Path(__file__).resolve().parent / "alerts" / "liftwise-rules.yml"


def alert_rules() -> str:
    """The rules file's text (a Prometheus ``rule_files`` YAML document)."""
    return RULES_FILE.read_text(encoding="utf-8")


def write_alert_rules(target: str | Path) -> Path:
    """Write the rules to ``target`` atomically; returns the path written."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(alert_rules(), encoding="utf-8")
    return target
