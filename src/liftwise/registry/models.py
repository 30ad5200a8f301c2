"""The model registry with a human approval gate, on MLflow's registry and aliases.

``register`` makes a race run's model a new version with alias ``challenger`` and its model
card; ``approve`` records who approved a version and why; ``promote`` moves ``champion`` to
an approved version only; ``rollback`` restores the champion before the current one. Every
step is appended to the audit log (:mod:`liftwise.registry.audit`) inside the same write
transaction that checks its preconditions, so two people promoting at once queue up and
the log's "from" and "to" versions always chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liftwise.errors import UserError
from liftwise.io import atomic_directory
from liftwise.registry.audit import AuditEntry, AuditLog
from liftwise.registry.store import client as mlflow_client
from liftwise.registry.store import not_found
from liftwise.registry.tracking import (
    BUNDLE_PATH,
    CARD_IMAGES,
    CARD_INPUTS,
    TAG_MODEL_ID,
    TAG_WINNER,
    WINNER_METRIC,
)
from liftwise.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
TAG_APPROVED_BY = "liftwise.approved_by"
TAG_APPROVED_AT = "liftwise.approved_at"
TAG_APPROVAL_NOTE = "liftwise.approval_note"
TAG_CARD = "liftwise.model_card"
TAG_CARD_MD = "liftwise.model_card_md"
CARD_FILES = ("model_card.md", "model_card.html", "model_card.json")


@dataclass(frozen=True)
class ModelRef:
    """One registered version, with its bundle available locally."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...]
    bundle_dir: Path  # loadable by liftwise.evaluate.bundle.load_bundle
    model_uri: str  # models:/NAME/VERSION


@dataclass(frozen=True)
class VersionInfo:
    """A version as listed (nothing downloaded): aliases, creation, winner, approval."""

    name: str
    version: int
    run_id: str
    aliases: tuple[str, ...]
    created: dt.datetime
    learner: str
    profit_at_k: float | None
    approved_by: str | None
    card: str | None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _created(timestamp_ms: int | None) -> dt.datetime:
    return dt.datetime.fromtimestamp((timestamp_ms or 0) / 1000, tz=dt.UTC)


class ModelRegistry:
    """Registered uplift models on the settings' MLflow registry, with the audit log
    at ``<data_dir>/registry_audit.db`` unless ``audit_path`` says otherwise."""

    def __init__(self, settings: Settings, *, audit_path: str | Path | None = None) -> None:
        self.settings = settings
        self.audit = AuditLog(audit_path or settings.data_dir / "registry_audit.db")
        self.cache_dir = settings.data_dir / "model_cache"
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = mlflow_client(self.settings)
        return self._client

    # ------------------------------------------------------------------ lookups

    def require_model(self, name: str) -> Any:
        """The registered model, or a one-line error listing the known ones."""
        try:
            return self.client.get_registered_model(name)
        except Exception as error:
            if not_found(error):
                known = sorted(m.name for m in self.client.search_registered_models())
                raise UserError(
                    f"unknown model '{name}' (registered: {', '.join(known) or 'none'}) "
                    f"in {self.settings.registry}",
                    option="NAME",
                ) from None
            raise

    def _version(self, name: str, version: int) -> Any:
        self.require_model(name)
        try:
            return self.client.get_model_version(name, str(version))
        except Exception as error:
            if not_found(error):
                known = ", ".join(str(v) for v in self._version_numbers(name))
                raise UserError(
                    f"model '{name}' has no version {version} (versions: {known or 'none'})",
                    option="VERSION",
                ) from None
            raise

    def _version_numbers(self, name: str) -> list[int]:
        found = self.client.search_model_versions(f"name = '{name}'")
        return sorted(int(v.version) for v in found)

    def _alias(self, name: str, alias: str) -> int | None:
        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except Exception as error:
            if not_found(error):
                return None
            raise

    def _bundle(self, run_id: str) -> Path:
        """The run's bundle in the local cache (downloaded once, atomically)."""
        target = self.cache_dir / run_id
        if not (target / BUNDLE_PATH / "model.joblib").is_file():
            with atomic_directory(target) as tmp:
                self.client.download_artifacts(run_id, BUNDLE_PATH, str(tmp))
        return target / BUNDLE_PATH

    def _ref(self, version: Any) -> ModelRef:
        return ModelRef(
            name=version.name,
            version=int(version.version),
            run_id=version.run_id,
            aliases=tuple(sorted(version.aliases or ())),
            bundle_dir=self._bundle(version.run_id),
            model_uri=f"models:/{version.name}/{version.version}",
        )

    def _fresh(self, name: str, version: int) -> ModelRef:
        return self._ref(self.client.get_model_version(name, str(version)))

    # ----------------------------------------------------------------- register

    def register(self, run_id: str, name: str, *, by: str | None = None) -> ModelRef:
        """A new version of ``name`` from a run logged by ``log_race``: alias
        ``challenger``, model card v1 logged to the run and linked from the version."""
        if not name.strip() or any(c in name for c in "/:'\""):
            raise UserError(
                f"model names are non-empty, without / : or quotes: {name!r}", option="NAME"
            )
        run = self._run(run_id)
        model_id = run.data.tags.get(TAG_MODEL_ID)
        if not model_id:
            raise UserError(
                f"run {run_id} holds no liftwise model (log races with log_race or "
                "`liftwise train --track`)",
                option="RUN_ID",
            )
        try:
            self.client.create_registered_model(
                name,
                tags={"liftwise.kind": "uplift"},
                description="liftwise uplift model: effects and expected profit per arm.",
            )
        except Exception as error:
            if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        previous = self._version_numbers(name)
        winner = run.data.tags.get(TAG_WINNER, "?")
        profit = run.data.metrics.get(WINNER_METRIC)
        # the logged model's own location: a models:/<id> source would be resolved through
        # MLflow's global tracking URI, not this client's
        source = self.client.get_logged_model(model_id).artifact_location
        version = self.client.create_model_version(
            name,
            source=source,
            run_id=run_id,
            model_id=model_id,
            tags={TAG_WINNER: winner},
            description=f"Race winner {winner}"
            + (f", Profit@K {profit:,.0f}" if profit is not None else "")
            + f" (run {run_id}).",
        )
        number = int(version.version)
        self.client.set_registered_model_alias(name, CHALLENGER, number)
        self._write_card(name, number, run, previous[-1] if previous else None)
        self.audit.append(
            model=name,
            action="register",
            version=number,
            by=by or _user(),
            note=f"run {run_id}, winner {winner}",
            run_id=run_id,
            registry_uri=self.settings.registry,
        )
        return self._fresh(name, number)

    def _run(self, run_id: str) -> Any:
        try:
            return self.client.get_run(run_id)
        except Exception as error:
            if not_found(error):
                raise UserError(
                    f"no run {run_id} in {self.settings.tracking}", option="RUN_ID"
                ) from None
            raise

    def _write_card(self, name: str, version: int, run: Any, previous: int | None) -> None:
        """Complete the run's card inputs for this version; log Markdown, HTML and JSON
        next to them (``card/<name>/v<version>/``) and link them from the version."""
        from liftwise.registry.card import ModelCard, complete_card, render_html, render_markdown

        run_id = run.info.run_id
        diff = None
        if previous is not None:
            before = self._run(self.client.get_model_version(name, str(previous)).run_id)
            old, new = before.data.metrics.get(WINNER_METRIC), run.data.metrics.get(WINNER_METRIC)
            diff = (
                f"Previous version v{previous}: {before.data.tags.get(TAG_WINNER, '?')}"
                + (f", Profit@K {old:,.0f}" if old is not None else "")
                + f"; this version: {run.data.tags.get(TAG_WINNER, '?')}"
                + (f", Profit@K {new:,.0f}" if new is not None else "")
                + " (validation splits differ: indicative only)."
            )
        with tempfile.TemporaryDirectory(prefix="liftwise-card-") as tmp:
            staged = Path(tmp)
            inputs = Path(self.client.download_artifacts(run_id, CARD_INPUTS, str(staged)))
            card = complete_card(
                ModelCard.model_validate_json(inputs.read_text()),
                name=name,
                version=version,
                registered_at=dt.datetime.now(dt.UTC),
                model_uri=f"models:/{name}/{version}",
                run_link=self._run_link(run),
                diff=diff,
            )
            out = staged / "out"
            out.mkdir()
            (out / "model_card.json").write_text(card.model_dump_json(indent=2))
            (out / "model_card.html").write_text(render_html(card))
            (out / "model_card.md").write_text(render_markdown(card, CARD_IMAGES))
            for graphic in card.quantitative_analysis.graphics.collection:
                if graphic.name in CARD_IMAGES:
                    (out / CARD_IMAGES[graphic.name]).write_bytes(base64.b64decode(graphic.image))
            folder = f"card/{name}/v{version}"
            self.client.log_artifacts(run_id, str(out), artifact_path=folder)
        self.client.set_model_version_tag(
            name, str(version), TAG_CARD, f"runs:/{run_id}/{folder}/model_card.html"
        )
        self.client.set_model_version_tag(
            name, str(version), TAG_CARD_MD, f"runs:/{run_id}/{folder}/model_card.md"
        )

    def _run_link(self, run: Any) -> str:
        experiment, run_id = run.info.experiment_id, run.info.run_id
        if self.settings.tracking.startswith(("http://", "https://")):
            base = self.settings.tracking.rstrip("/")
            return f"{base}/#/experiments/{experiment}/runs/{run_id}"
        return f"runs:/{run_id} (mlflow ui --backend-store-uri {self.settings.tracking})"

    # ------------------------------------------------------------ approval gate

    def approve(self, name: str, version: int, *, by: str, note: str) -> None:
        """Record that ``by`` approved exactly this version (audit log + version tags)."""
        self._version(name, version)
        if not note.strip():
            raise UserError("say why this version is approved (not empty)", parameter="note")
        with self.audit.transaction() as tx:
            entry = tx.append(
                model=name,
                action="approve",
                version=version,
                by=by,
                note=note.strip(),
                registry_uri=self.settings.registry,
            )
            for key, value in (
                (TAG_APPROVED_BY, entry.by),
                (TAG_APPROVED_AT, entry.at.isoformat()),
                (TAG_APPROVAL_NOTE, entry.note),
            ):
                self.client.set_model_version_tag(name, str(version), key, value)

    def promote(self, name: str, version: int, *, by: str | None = None) -> ModelRef:
        """Move ``champion`` to an approved version; the one it leaves becomes
        ``previous_champion``. Promoting the current champion changes nothing."""
        self._version(name, version)
        with self.audit.transaction() as tx:
            approval = tx.approved(name, version)
            if approval is None:
                raise UserError(
                    f"model '{name}' version {version} is not approved: run `liftwise model "
                    f"approve {name} {version} --by WHO --note TEXT` first",
                    option="VERSION",
                )
            current = self._alias(name, CHAMPION)
            if current == version:
                return self._fresh(name, version)
            self.client.set_registered_model_alias(name, CHAMPION, version)
            if current is not None:
                self.client.set_registered_model_alias(name, PREVIOUS_CHAMPION, current)
            if self._alias(name, CHALLENGER) == version:
                self.client.delete_registered_model_alias(name, CHALLENGER)
            tx.append(
                model=name,
                action="promote",
                version=version,
                by=by or _user(),
                note=f"approved by {approval.by}: {approval.note}",
                from_version=current,
                to_version=version,
                registry_uri=self.settings.registry,
            )
        return self._fresh(name, version)

    def rollback(self, name: str, *, by: str | None = None, note: str = "") -> ModelRef:
        """Give ``champion`` back to the version it had before the current champion's
        promotion (repeatable: each rollback goes one promotion further back)."""
        self.require_model(name)
        with self.audit.transaction() as tx:
            stack = tx.champion_stack(name)
            current = self._alias(name, CHAMPION)
            if current is None:
                raise UserError(f"model '{name}' has no champion to roll back", option="NAME")
            if not stack or stack[-1] != current:
                logged = f"v{stack[-1]}" if stack else "none"
                raise UserError(
                    f"model '{name}': alias champion is v{current} but the audit log says "
                    f"{logged} (moved outside liftwise?); promote the version you want instead",
                    option="NAME",
                )
            if len(stack) < 2:
                raise UserError(
                    f"model '{name}' has no previous champion to restore (v{current} is the first)",
                    option="NAME",
                )
            target = stack[-2]
            self._version(name, target)
            self.client.set_registered_model_alias(name, CHAMPION, target)
            if len(stack) >= 3:
                self.client.set_registered_model_alias(name, PREVIOUS_CHAMPION, stack[-3])
            elif self._alias(name, PREVIOUS_CHAMPION) is not None:
                self.client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
            tx.append(
                model=name,
                action="rollback",
                version=target,
                by=by or _user(),
                note=note,
                from_version=current,
                to_version=target,
                registry_uri=self.settings.registry,
            )
        return self._fresh(name, target)

    # ------------------------------------------------------------------ queries

    def champion(self, name: str) -> ModelRef | None:
        """The current champion, or ``None`` (also for an unknown model): one registry
        call, plus a one-off bundle download per new version."""
        try:
            version = self.client.get_model_version_by_alias(name, CHAMPION)
        except Exception as error:
            if not_found(error):
                return None
            raise
        return self._ref(version)

    def champion_at(self, name: str, when: dt.datetime) -> int | None:
        """Which version was champion at ``when`` (naive = UTC), from the audit log."""
        return self.audit.champion_at(name, when)

    def history(self, name: str) -> list[AuditEntry]:
        """Registrations, approvals, promotions and rollbacks of ``name``, oldest first."""
        return self.audit.entries(name)

    def versions(self, name: str) -> list[ModelRef]:
        """Every version, oldest first, bundles fetched (see :meth:`describe_versions`)."""
        self.require_model(name)
        return [self._fresh(name, v) for v in self._version_numbers(name)]

    def describe_versions(self, name: str) -> list[VersionInfo]:
        """Every version, oldest first, without downloading anything."""
        self.require_model(name)
        found = self.client.search_model_versions(f"name = '{name}'")
        infos = []
        for version in sorted(found, key=lambda v: int(v.version)):
            full = self.client.get_model_version(name, version.version)  # search omits aliases
            run = self.client.get_run(full.run_id)
            infos.append(
                VersionInfo(
                    name=name,
                    version=int(full.version),
                    run_id=full.run_id,
                    aliases=tuple(sorted(full.aliases or ())),
                    created=_created(full.creation_timestamp),
                    learner=full.tags.get(TAG_WINNER, "?"),
                    profit_at_k=run.data.metrics.get(WINNER_METRIC),
                    approved_by=full.tags.get(TAG_APPROVED_BY),
                    card=full.tags.get(TAG_CARD),
                )
            )
        return infos

    def card(self, name: str, version: int) -> dict[str, Path]:
        """The version's model card files, downloaded once to the local cache:
        ``{"md": ..., "html": ..., "json": ...}`` (plots next to the Markdown)."""
        found = self._version(name, version)
        folder = f"card/{name}/v{version}"
        target = self.cache_dir / "cards" / name / f"v{version}"
        if not (target / "model_card.html").is_file():
            with tempfile.TemporaryDirectory(prefix="liftwise-card-") as download:
                try:
                    local = self.client.download_artifacts(found.run_id, folder, download)
                except Exception as error:
                    if not_found(error) or isinstance(error, OSError):
                        raise UserError(
                            f"model '{name}' version {version} has no model card",
                            option="VERSION",
                        ) from None
                    raise
                with atomic_directory(target) as tmp:
                    shutil.copytree(local, tmp, dirs_exist_ok=True)
        return {kind: target / f"model_card.{kind}" for kind in ("md", "html", "json")}
