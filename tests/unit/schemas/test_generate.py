"""The generated documents: up to date (so CI fails on drift), complete, and truthful."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas import generate
from schemas.codec import (
    decode,
    decode_account_score,
    decode_account_stage_change,
    decode_dead_letter,
    decode_score,
    decode_stage_change,
    encode,
)
from schemas.examples import EVENT_EXAMPLES, OUTPUT_EXAMPLES
from schemas.topics import EVENT_TOPIC, TOPICS

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "schemas" / "generated"


def _load(relative: str) -> Any:
    return json.loads((GENERATED / relative).read_text(encoding="utf-8"))


def test_committed_documents_are_up_to_date() -> None:
    """Fails when a model changed without `python -m schemas.generate` being run."""
    result = subprocess.run(
        [sys.executable, "-m", "schemas.generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_reports_changed_missing_and_extra_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    args = ["--output", str(out), "--readme", str(tmp_path / "README.md")]
    assert generate.main(args) == 0
    assert generate.main(["--check", *args]) == 0
    (out / "asyncapi.yaml").write_text("asyncapi: 3.0.0\n")
    (out / "json-schema" / "PageViewed.json").unlink()
    (out / "json-schema" / "Old.json").write_text("{}")
    capsys.readouterr()
    assert generate.main(["--check", *args]) == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert "changed: asyncapi.yaml" in err
    assert "missing: json-schema/PageViewed.json" in err
    assert "not generated: json-schema/Old.json" in err
    assert "python -m schemas.generate" in err
    assert generate.main(args) == 0
    assert not (out / "json-schema" / "Old.json").exists()
    assert generate.main(["--check", *args]) == 0


def test_readme_section_is_added_checked_and_replaced_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\n## Quickstart\n\nRun it.\n")
    args = ["--output", str(tmp_path / "generated"), "--readme", str(readme)]
    assert generate.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\n## Quickstart\n\nRun it.\n\n## Event contract\n")
    assert text.endswith(generate.readme_section())
    readme.write_text(text.replace('"event_id": "evt-0001"', '"event_id": "evt-1"') + "## Later\n")
    capsys.readouterr()
    assert generate.main(["--check", *args]) == 1
    assert "changed: the '## Event contract' section of README.md" in capsys.readouterr().err
    assert generate.main(args) == 0
    assert readme.read_text() == text + "\n## Later\n"
    assert generate.main(["--check", *args]) == 0


def test_readme_examples_are_the_encoded_models() -> None:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Event contract", 1)[1]
    blocks = re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
    assert len(blocks) == len(TOPICS)
    for topic, block in zip(TOPICS, blocks, strict=True):
        payload = json.loads(block)
        decoders = {
            "leads.scores.v1": decode_score,
            "leads.stage-changes.v1": decode_stage_change,
            "leads.dead-letters.v1": decode_dead_letter,
            "leads.account-scores.v1": decode_account_score,
            "leads.account-stage-changes.v1": decode_account_stage_change,
        }
        if topic.name in decoders:
            message = decoders[topic.name](json.dumps(payload).encode())
        else:
            message = decode(json.dumps(payload).encode(), now=None, topic=topic.name)
        assert json.loads(encode(message)) == payload


def test_asyncapi_describes_every_topic() -> None:
    document = yaml.safe_load((GENERATED / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(channels) == {
        "leads.clickstream.v1",
        "leads.email.v1",
        "leads.social.v1",
        "leads.profiles.v1",
        "leads.crm-feedback.v1",
        "leads.scores.v1",
        "leads.stage-changes.v1",
        "leads.dead-letters.v1",
        "leads.account-scores.v1",
        "leads.account-stage-changes.v1",
    }
    for topic in TOPICS:
        kafka = channels[topic.name]["bindings"]["kafka"]
        assert kafka["partitions"] == 8
        assert kafka["topicConfiguration"]["cleanup.policy"] == [topic.cleanup_policy]
        assert len(channels[topic.name]["messages"]) == len(topic.value_types)
    assert channels["leads.scores.v1"]["bindings"]["kafka"]["topicConfiguration"] == {
        "cleanup.policy": ["compact"]
    }
    actions = {
        op["channel"]["$ref"].rsplit("/", 1)[1]: op["action"]
        for op in document["operations"].values()
    }
    assert actions["clickstream"] == "receive"
    assert actions["scores"] == "send"


def test_asyncapi_references_resolve() -> None:
    document = yaml.safe_load((GENERATED / "asyncapi.yaml").read_text(encoding="utf-8"))

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    all_refs = refs(document)
    assert len(all_refs) > 100
    for ref in all_refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


def test_every_asyncapi_example_is_valid_for_its_message_schema() -> None:
    document = yaml.safe_load((GENERATED / "asyncapi.yaml").read_text(encoding="utf-8"))
    messages = document["components"]["messages"]
    assert all("examples" in message for message in messages.values())
    for name, message in messages.items():
        schema = _load(f"json-schema/{name}.json")
        for example in message["examples"]:
            jsonschema.validate(example["payload"], schema)


def test_topic_schemas_accept_their_own_events_only() -> None:
    validators = {
        topic.name: jsonschema.Draft202012Validator(_load(f"json-schema/topics/{topic.name}.json"))
        for topic in TOPICS
    }
    for event_type, event in EVENT_EXAMPLES.items():
        payload = json.loads(encode(event))
        for name, validator in validators.items():
            assert validator.is_valid(payload) is (name == EVENT_TOPIC[event_type]), (
                event_type,
                name,
            )


def test_outbound_topic_schemas_accept_their_records() -> None:
    scores = jsonschema.Draft202012Validator(_load("json-schema/topics/leads.scores.v1.json"))
    changes = jsonschema.Draft202012Validator(
        _load("json-schema/topics/leads.stage-changes.v1.json")
    )
    letters = jsonschema.Draft202012Validator(
        _load("json-schema/topics/leads.dead-letters.v1.json")
    )
    record = {name: json.loads(encode(model)) for name, model in OUTPUT_EXAMPLES.items()}
    assert scores.is_valid(record["score_updated"])
    assert scores.is_valid(record["lead_erased"])
    assert not scores.is_valid(record["stage_changed"])
    assert changes.is_valid(record["stage_changed"])
    assert changes.is_valid(record["lead_erased"])
    assert letters.is_valid(record["dead_letter"])
    assert not letters.is_valid(record["score_updated"])


def test_json_schemas_require_type_and_forbid_unknown_fields() -> None:
    for path in sorted((GENERATED / "json-schema").glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["additionalProperties"] is False, path.name
        if path.stem != "ScoreKey":
            assert schema["required"][0] == "type", path.name
