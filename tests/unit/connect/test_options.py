"""Each CRM kind's command-line options and settings, down to a destination that delivers."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest
from crm_fakes import hubspot as hubspot_api
from crm_fakes import mautic as mautic_api
from crm_fakes import salesforce as salesforce_api
from crm_fakes.changes import make_change
from crm_fakes.hubspot import HubspotFake
from crm_fakes.mautic import MauticFake
from crm_fakes.salesforce import SalesforceFake
from pydantic import SecretStr

from schemas.stages import Stage
from stream.connect.crm import CRM_KINDS
from stream.connect.destination import Verdict
from stream.connect.mapping import MappingError
from stream.errors import ConfigurationError
from stream.settings import Settings


def _parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"leadstream connect {kind}",
        epilog=f"example:\n  leadstream connect {kind} {CRM_KINDS[kind].example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    CRM_KINDS[kind].add_arguments(parser)
    return parser


def _parse(kind: str, *argv: str) -> argparse.Namespace:
    return _parser(kind).parse_args(list(argv))


def _build(kind: str, args: argparse.Namespace, settings: Settings) -> Any:
    module, _, name = CRM_KINDS[kind].build.partition(":")
    return getattr(importlib.import_module(module), name)(args, settings)


@pytest.mark.parametrize("kind", sorted(CRM_KINDS))
def test_each_kind_example_parses(kind: str) -> None:
    """The example `--help` shows is a valid command line of the kind."""
    text = _parser(kind).format_help()
    assert "--mapping" in text
    example = CRM_KINDS[kind].example.split("#", 1)[0].split()
    args = _parse(kind, *example)
    assert args.mapping == Path("crm-mapping.yaml")


async def test_hubspot_from_the_settings_and_a_mapping_file(
    hubspot_fake: HubspotFake, tmp_path: Path
) -> None:
    mapping = tmp_path / "crm.yaml"
    mapping.write_text("hubspot:\n  properties: {score: leadstream_score, grade: null}\n")
    settings = Settings(hubspot_access_token=SecretStr(hubspot_api.TOKEN))
    args = _parse("hubspot", "--api-url", hubspot_fake.base_url, "--mapping", str(mapping))
    destination = _build("hubspot", args, settings)
    assert (destination.name, destination.max_batch, destination.rate_per_s) == (
        "hubspot",
        100,
        9.5,
    )
    (outcome,) = await destination.deliver([make_change("ada@example.com", Stage.SQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.DELIVERED
    contact = hubspot_fake.contact("email", "ada@example.com")
    assert contact is not None and "leadstream_grade" not in contact


async def test_salesforce_from_the_settings(salesforce_fake: SalesforceFake) -> None:
    salesforce_fake.add_lead(LastName="L", Company="C", Leadstream_Lead_Id__c="lead-1")
    settings = Settings(
        salesforce_client_id=salesforce_api.CLIENT_ID,
        salesforce_client_secret=SecretStr(salesforce_api.CLIENT_SECRET),
    )
    args = _parse("salesforce", "--login-url", salesforce_fake.base_url)
    destination = _build("salesforce", args, settings)
    assert (destination.max_batch, destination.rate_per_s) == (200, 1.0)
    (outcome,) = await destination.deliver([make_change("lead-1", Stage.SQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.DELIVERED


async def test_mautic_from_the_settings(mautic_fake: MauticFake, tmp_path: Path) -> None:
    mapping = tmp_path / "crm.yaml"
    mapping.write_text("mautic:\n  segments: {mql: 3}\n")
    settings = Settings(
        mautic_url=mautic_fake.base_url,
        mautic_client_id=mautic_api.CLIENT_ID,
        mautic_client_secret=SecretStr(mautic_api.CLIENT_SECRET),
        connect_mapping_file=mapping,
    )
    destination = _build("mautic", _parse("mautic"), settings)
    (outcome,) = await destination.deliver([make_change("bo@example.com", Stage.MQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.DELIVERED
    assert mautic_fake.tokens_issued == 1 and len(mautic_fake.segments[3]) == 1


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("hubspot", {}, "LEADSTREAM_HUBSPOT_ACCESS_TOKEN is not set"),
        ("salesforce", {}, "LEADSTREAM_SALESFORCE_CLIENT_ID is not set"),
        (
            "salesforce",
            {"salesforce_client_id": "x"},
            "LEADSTREAM_SALESFORCE_CLIENT_SECRET (client credentials flow) or",
        ),
        (
            "salesforce",
            {
                "salesforce_client_id": "x",
                "salesforce_username": "u",
                "salesforce_private_key_file": Path("/nonexistent/key.pem"),
            },
            "cannot read /nonexistent/key.pem",
        ),
        ("mautic", {}, "LEADSTREAM_MAUTIC_URL (or --url) is not set"),
        ("mautic", {"mautic_url": "https://m.example.com"}, "a username and password"),
    ],
)
def test_missing_settings_are_named(kind: str, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _build(kind, _parse(kind), Settings(**settings))  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_a_broken_mapping_file_stops_the_start(tmp_path: Path) -> None:
    mapping = tmp_path / "crm.yaml"
    mapping.write_text("hubspot:\n  id_propery: email\n")
    settings = Settings(hubspot_access_token=SecretStr("t"))
    with pytest.raises(MappingError, match="did you mean 'id_property'"):
        _build("hubspot", _parse("hubspot", "--mapping", str(mapping)), settings)


def test_account_stages_are_refused_by_the_kind_that_delivers_lead_stages_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kind = "mautic"
    from stream.cli import EXIT_CONFIG, main

    for name, value in {
        "LEADSTREAM_MAUTIC_URL": "https://m.example.com",
        "LEADSTREAM_MAUTIC_USERNAME": "u",
        "LEADSTREAM_MAUTIC_PASSWORD": "p",
        "LEADSTREAM_CONNECT_METRICS_PORT": "0",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["connect", kind, "--accounts"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"connect {kind} delivers lead stage changes only" in err
    monkeypatch.setenv("LEADSTREAM_CONNECT_ACCOUNTS", "true")
    assert main(["connect", kind]) == EXIT_CONFIG


def test_an_endpoint_of_account_events_needs_the_connector_to_read_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import EXIT_CONFIG, main

    monkeypatch.setenv("LEADSTREAM_CONNECT_METRICS_PORT", "0")
    monkeypatch.setenv("LEADSTREAM_CONNECT_WEBHOOK_SECRET", "whsec_" + "a" * 32)
    argv = ["connect", "webhook", "--url", "https://abm.example.com/in"]
    assert main([*argv, "--event", "account.stage_changed"]) == EXIT_CONFIG
    assert "takes account.stage_changed only" in capsys.readouterr().err


def _webhook_args(*models: str) -> argparse.Namespace:
    return argparse.Namespace(
        endpoints=None,
        url="https://hooks.example.com/leads",
        secret="whsec_" + "a" * 32,
        model=list(models),
        stage=[],
        event=[],
    )


def test_a_model_filter_naming_no_model_of_the_file_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A misspelt `--model` would match no stage change: the start names it, with the model
    it most likely meant."""
    from stream.connect import webhook

    with caplog.at_level("WARNING", logger="stream.connect.webhook"):
        destination = webhook.from_options(_webhook_args("b2bb", "consumer"), Settings())
    assert destination is not None
    warned = [r.getMessage() for r in caplog.records if r.name == "stream.connect.webhook"]
    assert len(warned) == 1
    assert "model 'b2bb'" in warned[0]
    assert "did you mean 'b2b'?" in warned[0]
    assert "'consumer'" not in warned[0]


def test_model_filters_of_the_file_are_not_warned_of(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from stream.connect import webhook
    from stream.model_files import load_default_models

    with caplog.at_level("WARNING", logger="stream.connect.webhook"):
        webhook.from_options(_webhook_args(*load_default_models().ids), Settings())
    assert not [r for r in caplog.records if r.name == "stream.connect.webhook"]
    # a model file of the user's own: its ids are the ones checked
    own = tmp_path / "models.yaml"
    own.write_text(
        (Path(webhook.__file__).parents[1] / "scoring" / "default_models.yaml")
        .read_text(encoding="utf-8")
        .replace("id: b2b\n", "id: enterprise\n")
        .replace("model: b2b ", "model: enterprise ")
    )
    with caplog.at_level("WARNING", logger="stream.connect.webhook"):
        webhook.from_options(_webhook_args("enterprise"), Settings(models_path=own))
        webhook.from_options(_webhook_args("b2b"), Settings(models_path=own))
    warned = [r.getMessage() for r in caplog.records if r.name == "stream.connect.webhook"]
    assert len(warned) == 1 and "model 'b2b'" in warned[0]
