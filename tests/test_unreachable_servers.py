"""An unreachable MLflow server is one line naming its URI within seconds, before any long
work: `model` commands and `train --track` no longer wait minutes for MLflow's retries."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from liftwise.errors import UserError
from liftwise.registry.store import reach_servers
from liftwise.settings import Settings

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
HANG_GUARD_SECONDS = 120  # a hang detector, not a timing assertion


def liftwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "liftwise", *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        cwd=cwd,
        env=env,
    )


def assert_one_line_naming(result: subprocess.CompletedProcess[str], uri: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and uri in lines[0], result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["model", "list", "m"],
        ["model", "champion", "m"],
        ["model", "approve", "m", "1"],
        ["serve", "--model-name", "m", "--budget", "5", "--port", "0"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_model_commands_name_an_unreachable_server(tmp_path: Path, command: list[str]) -> None:
    extra = ["--by", "me", "--note", "ok"] if command[1] == "approve" else []
    where = ["--data-dir", str(tmp_path / "data")]
    result = liftwise(*command, *extra, *where, "--tracking-uri", CLOSED, cwd=tmp_path)
    assert_one_line_naming(result, CLOSED)


def test_train_refuses_an_unreachable_server_before_the_race(tmp_path: Path) -> None:
    data = tmp_path / "exp.csv"
    data.write_text(
        "unit_id,arm,converted,x\n"
        + "".join(f"{i},{'ab'[i % 2]},{i % 3 == 0:d},{i}\n" for i in range(200))
    )
    out = tmp_path / "race"
    result = liftwise(
        "train", "--data", str(data), "--treatment", "arm", "--control", "a",
        "--outcome", "converted", "--out", str(out), "--tracking-uri", CLOSED,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_naming(result, CLOSED)
    assert not out.exists()  # refused before the race wrote anything


def _serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free local port for the test's duration; yields its URI."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def not_mlflow() -> Iterator[str]:
    """An HTTP server that answers every request with 404 (something, but not MLflow)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    yield from _serving(NotFound)


def test_a_server_that_is_not_mlflow_is_named(not_mlflow: str, tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path, tracking_uri=not_mlflow)
    with pytest.raises(UserError, match=r"answers /health with HTTP 404: not an MLflow"):
        reach_servers(settings)


def test_embedded_stores_need_no_probe(tmp_path: Path) -> None:
    reach_servers(Settings.load(data_dir=tmp_path))


@pytest.fixture
def health_only() -> Iterator[str]:
    """A server that passes the /health probe, then fails every MLflow call (503): the
    tracking server that goes away in the middle of a command."""

    class HealthOnly(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/health":
                body = b"OK"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(503)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    yield from _serving(HealthOnly)


def test_a_server_lost_after_the_probe_is_one_line(health_only: str, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    result = liftwise("model", "list", "m", *where, "--tracking-uri", health_only, cwd=tmp_path)
    assert_one_line_naming(result, health_only)
    assert "lost the MLflow server" in result.stderr
