"""`leadstream replay`: the checks made before anything is read or published."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stream.cli import EXIT_CONFIG, EXIT_INFRA, main
from stream.model_files import DEFAULT_MODELS, load_default_models
from stream.offline.replay import same_versions
from stream.scoring import parse_models

DEFAULT_FILE = Path(__file__).resolve().parents[3] / "stream" / "scoring" / DEFAULT_MODELS


@pytest.fixture
def new_file(tmp_path: Path) -> Path:
    path = tmp_path / "new.yaml"
    path.write_text(DEFAULT_FILE.read_text().replace('version: "2025-06-01"', 'version: "2"'))
    return path


def test_same_versions_names_the_models_a_replay_would_mix(new_file: Path) -> None:
    live = load_default_models()
    assert same_versions(live, live) == ["b2b 2025-06-01", "consumer 2025-06-01"]
    assert same_versions(parse_models(new_file.read_text(), source="new"), live) == []


def test_replay_exit_codes(
    new_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.delenv("LEADSTREAM_MODELS_PATH", raising=False)
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: 1\nmodels: []\n")
    assert main(["replay", "--model", str(broken)]) == EXIT_CONFIG
    assert str(broken) in capsys.readouterr().err
    assert main(["replay", "--model", str(DEFAULT_FILE)]) == EXIT_CONFIG
    assert "a replay must carry a new version" in capsys.readouterr().err
    assert main(["replay", "--model", str(new_file), "--live", str(new_file)]) == EXIT_CONFIG
    assert main(["replay", "--model", str(new_file)]) == EXIT_INFRA
    assert "cannot reach Kafka" in capsys.readouterr().err
