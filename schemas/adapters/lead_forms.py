"""What LinkedIn Lead Gen Forms and Meta Lead Ads have in common: the answers of a lead form.

Both name their standard questions in snake case (Meta's `field_data` names, LinkedIn's
`predefinedField` lower-cased): `email`, `work_email`, `first_name`, `last_name`, `full_name`,
`phone_number`, `work_phone_number`, `job_title`, `company_name`, `industry`, `country`, `state`,
`city`, ... `traits_from_answers` turns those into the profile's `Traits`; every other answer goes
to `Traits.custom` under its name. A country is kept as the profile's country only when it is a
two-letter code (LinkedIn answers with the country's name: that goes to `custom.country`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from schemas.events import Traits

__all__ = ["answer_email", "traits_from_answers"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EMAIL_FIELDS = ("email", "work_email")
_PHONE_FIELDS = ("phone_number", "work_phone_number", "phone")
_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "job_title": "job_title",
    "company_name": "company",
    "company": "company",
    "industry": "industry",
    "state": "region",
    "province": "region",
}
_USED = {*_EMAIL_FIELDS, *_PHONE_FIELDS, *_FIELDS, "full_name", "country"}


def answer_email(answers: Mapping[str, str]) -> str | None:
    """The form's email address (`email`, else `work_email`), lower-cased, if it looks like one."""
    for name in _EMAIL_FIELDS:
        value = answers.get(name, "").strip()
        if _EMAIL.match(value) and len(value) <= 320:
            return value.lower()
    return None


def _short(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:256] or None


def traits_from_answers(
    answers: Mapping[str, str], *, custom: Mapping[str, str] | None = None
) -> Traits:
    """The profile attributes a lead form's answers give (`custom` adds attributes of its own)."""
    values: dict[str, str | None] = {}
    for name, target in _FIELDS.items():
        if (value := _short(answers.get(name))) is not None:
            values.setdefault(target, value)
    full = _short(answers.get("full_name"))
    if full and not (values.get("first_name") or values.get("last_name")):
        first, _, rest = full.partition(" ")
        values["first_name"], values["last_name"] = first, (rest.strip() or None)
    phone = next((p for p in (_short(answers.get(n)) for n in _PHONE_FIELDS) if p), None)
    country = _short(answers.get("country"))
    code = country.upper() if country and re.fullmatch(r"[A-Za-z]{2}", country) else None
    extra = dict(custom or {})
    if country and code is None:
        extra.setdefault("country", country)
    for name, value in answers.items():
        if name not in _USED and value.strip():
            extra.setdefault(name[:128], value[:4096])
    return Traits.model_validate(
        {
            **values,
            "email": answer_email(answers),
            "phone": phone,
            "country": code,
            "custom": dict(list(extra.items())[:100]),
        }
    )
