"""Mautic: each stage change puts the lead's contact in the segment of its new stage.

Per batch (Mautic's REST API, https://developer.mautic.org/#rest-api):
1. `POST /api/contacts/batch/new` with the contacts (at most 200, Mautic's `api_batch_max_limit`):
   Mautic matches them on their unique identifier fields (email by default) and updates the
   contact it finds rather than creating another (mautic/mautic#5396), and answers the contacts
   with their ids and a status code per contact, in order;
2. `POST /api/segments/{id}/contacts/add` with `{"ids": [...]}` for each new stage's segment;
3. with `remove_from_previous`, `POST /api/segments/{id}/contacts/remove` for the segments of
   the stages the contacts left. Adding comes first, so a contact is never in neither segment.

A change whose stage has no segment and whose mapping sends no field is skipped without a call.

**Which contact.** With `match_field: email` (the default) the lead id is the contact's address
(`ada@example.com` or `email:ada@example.com`); any other `match_field` is the alias of a contact
field holding the lead id, which must be a unique identifier in Mautic's field settings.

**Sign-in.** HTTP Basic auth (enable it in Mautic's API settings) or OAuth 2.0 client
credentials (`POST /oauth/v2/token`; the token lasts 60 minutes by default and has no refresh
token, so a refused or expired token is fetched again once).
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Sequence
from typing import Any

import httpx

from stream.connect.crm_api import (
    Answer,
    ClientCredentials,
    TokenError,
    call,
    complete,
    section_for,
)
from stream.connect.destination import Change, Outcome, Verdict
from stream.connect.mapping import MauticMapping, email_of, mapping_from
from stream.errors import ConfigurationError
from stream.settings import Settings

__all__ = ["MAX_BATCH", "MauticDestination", "from_options"]

MAX_BATCH = 200
"""Mautic's default `api_batch_max_limit`."""


class _Auth:
    """Basic credentials, or an OAuth 2.0 client credentials token."""

    def __init__(
        self,
        basic: tuple[str, str] | None,
        oauth: ClientCredentials | None,
    ) -> None:
        self._basic = basic
        self._oauth = oauth

    async def header(self) -> str:
        if self._oauth is not None:
            return f"Bearer {(await self._oauth.token()).access_token}"
        assert self._basic is not None
        user, password = self._basic
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def refused(self) -> bool:
        """Forget a refused token; whether asking again can help."""
        if self._oauth is None:
            return False
        self._oauth.refused()
        return True


class MauticDestination:
    """Stage changes as Mautic contacts in per-stage segments."""

    name = "mautic"
    max_batch = MAX_BATCH

    def __init__(
        self,
        *,
        base_url: str,
        mapping: MauticMapping,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 10.0,
        rate_per_s: float = 10.0,
        burst: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._base = base_url.rstrip("/")
        self._mapping = mapping
        self._secrets = [s for s in (password, client_secret) if s]
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        if client_id and client_secret:
            form = {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
            oauth = ClientCredentials(
                self._client,
                f"{self._base}/oauth/v2/token",
                lambda: dict(form),
                secrets=self._secrets,
                vendor="Mautic",
            )
            self._auth = _Auth(None, oauth)
        elif username and password:
            self._auth = _Auth((username, password), None)
        else:
            raise ConfigurationError(
                "Mautic needs a username and password (Basic auth) or OAuth 2.0 client credentials"
            )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, path: str, body: Any) -> Answer:
        """POST `body` to the API, asking for a new token once if Mautic refuses it."""
        for attempt in range(2):
            answer = await call(
                self._client,
                "POST",
                f"{self._base}{path}",
                json=body,
                headers={"Authorization": await self._auth.header()},
                secrets=self._secrets,
            )
            if answer.status != 401 or attempt == 1 or not self._auth.refused():
                return answer
        raise AssertionError("unreachable")

    def _contact(self, change: Change) -> tuple[MauticMapping, dict[str, Any]] | Outcome:
        record = change.record
        section = section_for(self._mapping, "mautic", change)
        if isinstance(section, Outcome):
            return section
        fields = section.fields.values(record)
        if record.to_stage not in section.segments and not fields:
            return Outcome(
                Verdict.SKIPPED,
                f"stage {record.to_stage.value!r} has no segment in the mapping's mautic.segments",
            )
        if section.match_field == "email":
            email = email_of(record.lead_id)
            if email is None:
                return Outcome(
                    Verdict.PERMANENT,
                    f"lead id {record.lead_id!r} is not an email address, and contacts are "
                    "matched by email (set mautic.match_field in the mapping to a unique field "
                    "holding lead ids)",
                )
            key = email
        else:
            key = record.lead_id
        return section, {section.match_field: key, **fields}

    async def deliver(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        if len(changes) > MAX_BATCH:
            raise ValueError(f"Mautic takes at most {MAX_BATCH} contacts per call")
        outcomes: list[Outcome | None] = [None] * len(changes)
        sections: dict[int, MauticMapping] = {}
        contacts: dict[int, dict[str, Any]] = {}
        for index, change in enumerate(changes):
            made = self._contact(change)
            if isinstance(made, Outcome):
                outcomes[index] = made
            else:
                sections[index], contacts[index] = made
        try:
            if contacts:
                ids = await self._upsert_contacts(contacts, outcomes)
                await self._segments(changes, sections, ids, outcomes)
        except TokenError as exc:
            for index in contacts:
                if outcomes[index] is None:
                    outcomes[index] = exc.outcome
        return complete(outcomes)

    async def _upsert_contacts(
        self, contacts: dict[int, dict[str, Any]], outcomes: list[Outcome | None]
    ) -> dict[int, tuple[int, Answer]]:
        """Contact id (and the answer) per change index; failures written to `outcomes`."""
        answer = await self._call("/api/contacts/batch/new", list(contacts.values()))
        body = answer.json()
        found = body.get("contacts") if isinstance(body, dict) else None
        codes = body.get("statusCodes") if isinstance(body, dict) else None
        if not answer.ok or not isinstance(found, list | dict) or not isinstance(codes, list):
            failed = answer.outcome(_reason(answer)) if not answer.ok else _unreadable(answer)
            for index in contacts:
                outcomes[index] = failed
            return {}
        errors = body.get("errors") if isinstance(body, dict) else None
        errors = errors if isinstance(errors, dict) else {}
        ids: dict[int, tuple[int, Answer]] = {}
        by_position = _by_position(found, codes)
        for position, index in enumerate(contacts):
            code = codes[position] if position < len(codes) else None
            contact = by_position.get(position)
            if (
                isinstance(code, int)
                and code < 300
                and isinstance(contact, dict)
                and "id" in contact
            ):
                ids[index] = (int(contact["id"]), answer)
                continue
            error = errors.get(str(position)) or errors.get(position) or {}
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            verdict = (
                Verdict.TRANSIENT if isinstance(code, int) and code >= 500 else Verdict.PERMANENT
            )
            outcomes[index] = Outcome(
                verdict,
                f"Mautic refused the contact (HTTP {code}): {message}",
                exchange=answer.exchange,
            )
        return ids

    async def _segments(
        self,
        changes: Sequence[Change],
        sections: dict[int, MauticMapping],
        ids: dict[int, tuple[int, Answer]],
        outcomes: list[Outcome | None],
    ) -> None:
        adds: dict[int, list[int]] = {}
        removes: dict[int, list[int]] = {}
        for index in ids:
            record, section = changes[index].record, sections[index]
            target = section.segments.get(record.to_stage)
            if target is not None:
                adds.setdefault(target, []).append(index)
            before = section.segments.get(record.from_stage) if record.from_stage else None
            if section.remove_from_previous and before is not None and before != target:
                removes.setdefault(before, []).append(index)
        for action, plan in (("add", adds), ("remove", removes)):
            for segment, indexes in plan.items():
                pending = [i for i in indexes if outcomes[i] is None]
                if not pending:
                    continue
                answer = await self._call(
                    f"/api/segments/{segment}/contacts/{action}",
                    {"ids": [ids[i][0] for i in pending]},
                )
                self._segment_outcomes(
                    answer,
                    action=action,
                    segment=segment,
                    indexes=pending,
                    ids=ids,
                    outcomes=outcomes,
                )
        for index in ids:
            if outcomes[index] is None:
                outcomes[index] = Outcome.delivered()

    @staticmethod
    def _segment_outcomes(
        answer: Answer,
        *,
        action: str,
        segment: int,
        indexes: list[int],
        ids: dict[int, tuple[int, Answer]],
        outcomes: list[Outcome | None],
    ) -> None:
        if not answer.ok:
            failed = answer.outcome(
                f"Mautic segment {segment} ({action}): {_reason(answer) or answer.failure}"
            )
            for index in indexes:
                outcomes[index] = failed
            return
        body = answer.json()
        details = body.get("details") if isinstance(body, dict) else None
        for index in indexes:
            detail = details.get(str(ids[index][0])) if isinstance(details, dict) else None
            if isinstance(detail, dict) and detail.get("success") is False:
                outcomes[index] = Outcome(
                    Verdict.PERMANENT,
                    f"Mautic did not {action} contact {ids[index][0]} in segment {segment}",
                    exchange=answer.exchange,
                )


def _by_position(found: list[Any] | dict[str, Any], codes: list[Any]) -> dict[int, Any]:
    """The saved contacts by their position in the request: keyed by it, one per status code,
    or only the saved ones, in order."""
    if isinstance(found, dict):
        return {int(key): value for key, value in found.items() if str(key).isdigit()}
    if len(found) == len(codes):
        return dict(enumerate(found))
    saved = iter(found)
    return {
        position: next(saved, None)
        for position, code in enumerate(codes)
        if isinstance(code, int) and code < 300
    }


def _reason(answer: Answer) -> str:
    """Mautic's own words for a refused call (`{"errors": [{"message", "code", "type"}]}`)."""
    body = answer.json()
    errors = body.get("errors") if isinstance(body, dict) else None
    messages = [
        f"{e.get('type') or e.get('code')}: {e.get('message')}"
        for e in errors or []
        if isinstance(e, dict)
    ]
    if not messages or answer.status is None:
        return ""
    text = "; ".join(messages)
    if answer.status == 401:
        return f"Mautic refused the credentials ({text}): check the API user or credentials"
    return f"HTTP {answer.status}: {text}"


def _unreadable(answer: Answer) -> Outcome:
    return Outcome(
        Verdict.TRANSIENT,
        "Mautic's answer holds no contacts and status codes",
        exchange=answer.exchange,
    )


# ----------------------------------------------------------------------------- command line


def from_options(args: argparse.Namespace, settings: Settings) -> MauticDestination:
    """The destination the options and settings describe (credentials from the settings)."""
    url = getattr(args, "url", None) or settings.mautic_url
    if not url:
        raise ConfigurationError("LEADSTREAM_MAUTIC_URL (or --url) is not set")
    return MauticDestination(
        base_url=url,
        mapping=mapping_from(args, settings).mautic,
        username=settings.mautic_username,
        password=(
            settings.mautic_password.get_secret_value() if settings.mautic_password else None
        ),
        client_id=settings.mautic_client_id,
        client_secret=(
            settings.mautic_client_secret.get_secret_value()
            if settings.mautic_client_secret
            else None
        ),
        timeout=settings.connect_timeout_s,
    )
