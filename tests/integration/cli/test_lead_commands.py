"""`leadstream explain` and `leadstream forget` against a real worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import Traits
from schemas.examples import make_event

pytestmark = pytest.mark.integration


async def _produce(produce_events: Any, worker: Any, lead_id: str) -> None:
    now = datetime.now(UTC)
    common: dict[str, Any] = {"lead_id": lead_id, "anonymous_id": None}
    events = [
        make_event(
            "profile_updated",
            event_id=f"{lead_id}-p",
            occurred_at=now - timedelta(minutes=5),
            traits=Traits(industry="software", company_size=400, job_title="CTO", age=41),
            **common,
        ),
        make_event(
            "demo_requested",
            event_id=f"{lead_id}-d",
            occurred_at=now - timedelta(minutes=3),
            **common,
        ),
    ]
    await produce_events(worker.settings, events)


def _leadstream(worker: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _until(worker: Any, code: int, *args: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 60
    while True:
        result = _leadstream(worker, *args)
        if result.returncode == code or time.monotonic() > deadline:
            return result
        time.sleep(1)


async def test_explain_then_forget_a_lead(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    lead_id = f"lead-{unique}"
    await _produce(produce_events, served_worker, lead_id)
    explained = _until(served_worker, 0, "explain", lead_id, "--url", served_worker.base)
    assert explained.returncode == 0, explained.stderr
    assert f"lead {lead_id}" in explained.stdout
    assert "demo_request" in explained.stdout and "stage history:" in explained.stdout

    forgot = _leadstream(served_worker, "forget", lead_id, "--reason", "GDPR request")
    assert forgot.returncode == 0, forgot.stderr
    assert "sent lead_erased" in forgot.stdout

    gone = _until(served_worker, 5, "explain", lead_id, "--url", served_worker.base)
    assert gone.returncode == 5, gone.stdout + gone.stderr
    assert f"no lead {lead_id!r}" in gone.stderr


async def test_explain_an_account_and_forget_its_member(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    """A lead with a company address rolls up to the company's account; erasing the person
    takes their contribution out of the account (the read model shows no member left)."""
    lead_id, account = f"lead-{unique}", f"acme-{unique}.com"
    now = datetime.now(UTC)
    common: dict[str, Any] = {"lead_id": lead_id, "anonymous_id": None}
    await produce_events(
        served_worker.settings,
        [
            make_event(
                "profile_updated",
                event_id=f"{lead_id}-p",
                occurred_at=now - timedelta(minutes=5),
                traits=Traits(email=f"cto@{account}", company_size=400, job_title="CTO"),
                **common,
            ),
            make_event(
                "demo_requested",
                event_id=f"{lead_id}-d",
                occurred_at=now - timedelta(minutes=3),
                **common,
            ),
        ],
    )
    args = ("explain", "--account", account, "--url", served_worker.base)
    explained = _until(served_worker, 0, *args)
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert f"account {account} (b2b)" in text and "buying-group roles (1 of 4)" in text
    assert f"strongest member: {lead_id}" in text and "members: 1;" in text
    assert "new account" in text  # its first stage change
    lead = _leadstream(served_worker, "explain", lead_id, "--url", served_worker.base)
    assert f"account {account}" in lead.stdout, lead.stdout + lead.stderr

    forgot = _leadstream(served_worker, "forget", lead_id)
    assert forgot.returncode == 0, forgot.stderr
    deadline = time.monotonic() + 60
    while "members: 0;" not in (after := _leadstream(served_worker, *args)).stdout:
        assert time.monotonic() < deadline, after.stdout + after.stderr
        await asyncio.sleep(1)
    assert lead_id not in after.stdout

    missing = _leadstream(
        served_worker, "explain", "--account", "nobody.example", "--url", served_worker.base
    )
    assert missing.returncode == 5 and "no account 'nobody.example'" in missing.stderr
