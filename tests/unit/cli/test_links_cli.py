"""`leadstream links sign` and `links check`: tracked URLs from the command line, and their exit
codes (2 for a bad URL or missing base, 3 without a usable key, 1 for a link that does not
verify)."""

from __future__ import annotations

import pytest

from stream.cli import EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from stream.web.links import Link, LinkSigner

KEY = "cli-link-key-" + "c" * 32
BASE = "https://collect.example.com"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_LINK_SIGNING_KEY", KEY)
    monkeypatch.delenv("LEADSTREAM_LINK_BASE_URL", raising=False)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sign_prints_the_tracked_link_and_the_open_pixel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(
        [
            "links",
            "sign",
            "https://acme.example/pricing?plan=team",
            "--email",
            "Ada@Example.com",
            "--message",
            "m-42",
            "--campaign",
            "spring",
            "--link",
            "cta",
            "--base",
            BASE + "/",
            "--open",
        ],
        capsys,
    )
    assert code == EXIT_OK
    click, pixel = out.splitlines()
    assert click.startswith(f"{BASE}/r/")
    token = click.removeprefix(f"{BASE}/r/")
    assert pixel == f"{BASE}/o/{token}.gif"
    assert LinkSigner([KEY]).verify(token) == Link(
        "https://acme.example/pricing?plan=team",
        email="ada@example.com",
        message_id="m-42",
        campaign_id="spring",
        link_id="cta",
    )


def test_sign_takes_the_base_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_LINK_BASE_URL", "https://c.example.org/collect")
    code, out, _ = _run(["links", "sign", "https://acme.example/", "--lead", "lead-1"], capsys)
    assert code == EXIT_OK
    assert out.startswith("https://c.example.org/collect/r/1.") and len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["javascript:alert(1)", "--lead", "l"], EXIT_USAGE, "not an http or https URL"),
        (["data:text/html,x", "--lead", "l"], EXIT_USAGE, "not an http or https URL"),
        (["//evil.example/", "--lead", "l"], EXIT_USAGE, "not an http or https URL"),
        (["https://acme.example/", "--lead", "has space"], EXIT_USAGE, "lead_id is not an id"),
        (["https://acme.example/", "--email", "nobody"], EXIT_USAGE, "not an email address"),
        (["https://acme.example/", "--lead", "l", "--open"], EXIT_USAGE, "--open needs --message"),
    ],
)
def test_sign_refuses_what_cannot_be_a_link(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    got, out, err = _run(["links", "sign", *argv, "--base", BASE], capsys)
    assert (got, out) == (code, "")
    assert err.startswith("leadstream links sign: ") and message in err


def test_sign_needs_one_person_a_base_and_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["links", "sign", "https://acme.example/", "--lead", "a", "--email", "b@c.example"])
    assert usage.value.code == EXIT_USAGE
    capsys.readouterr()
    code, _, err = _run(["links", "sign", "https://acme.example/", "--lead", "l"], capsys)
    assert code == EXIT_USAGE and "LEADSTREAM_LINK_BASE_URL" in err
    monkeypatch.setenv("LEADSTREAM_LINK_SIGNING_KEY", "")
    code, _, err = _run(["links", "sign", "https://a.example/", "--lead", "l"], capsys)
    assert code == EXIT_CONFIG and "LEADSTREAM_LINK_SIGNING_KEY is not set" in err
    monkeypatch.setenv("LEADSTREAM_LINK_SIGNING_KEY", "too-short-secret")
    code, _, err = _run(["links", "sign", "https://a.example/", "--lead", "l"], capsys)
    assert code == EXIT_CONFIG and "shorter than 32" in err
    assert "too-short-secret" not in err


def test_check_reads_a_link_back(capsys: pytest.CaptureFixture[str]) -> None:
    signer = LinkSigner([KEY], BASE)
    click = signer.click_url("https://acme.example/", lead_id="lead-1", message_id="m-1")
    pixel = signer.open_url(lead_id="lead-1", message_id="m-1")
    for given in (click, pixel, click.removeprefix(f"{BASE}/r/")):
        code, out, _ = _run(["links", "check", given], capsys)
        assert code == EXIT_OK
        assert '"lead_id": "lead-1"' in out and '"message_id": "m-1"' in out
    code, out, err = _run(["links", "check", click[:-2]], capsys)
    assert (code, out) == (EXIT_ERROR, "")
    assert "not a valid link" in err
