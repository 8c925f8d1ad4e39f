"""Masking of personal data and secrets in log records.

`MaskingFilter` rewrites a record's message (and its formatted traceback) so that email
addresses, bearer tokens, credentials in URLs, ``key=value`` secrets, the secret path of the
Mailchimp webhook and any configured secret value never reach a log handler. `install` applies it
to every record the process creates (through the log record factory), whichever handlers a worker
sets up later.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Final

from pydantic import SecretStr

from stream.settings import Settings

__all__ = [
    "MASK",
    "MaskingFilter",
    "install",
    "mask",
    "secrets_of",
    "settings_secrets",
    "uninstall",
]

MASK: Final = "***"

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]*):[^/\s@]+@"
)
_BEARER = re.compile(r"(?i)\b(?P<kind>bearer|basic)(?P<sep>\s+)[A-Za-z0-9._~+/=-]+")
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>\b[\w-]*(?:token|secret|password|passwd|signature|authorization"
    r"|(?:api|signing|private)[_-]?key)[\w-]*)(?P<sep>[\"']?\s*=\s*[\"']?|[\"']?:\s*[\"']|[\"']:\s*|:(?=\S))"
    r"(?P<value>[^\s\"'&,;}]+)"
)
_EMAIL = re.compile(r"(?P<local>[A-Za-z0-9._%+-]+)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_MAILCHIMP_PATH = re.compile(r"(?P<path>/webhooks/mailchimp/)[^/\s?#\"']+")


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with secrets and email addresses replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
    text = _BEARER.sub(rf"\g<kind>\g<sep>{MASK}", text)
    text = _KEY_VALUE.sub(rf"\g<key>\g<sep>{MASK}", text)
    text = _MAILCHIMP_PATH.sub(rf"\g<path>{MASK}", text)
    return _EMAIL.sub(rf"{MASK}@\g<domain>", text)


class MaskingFilter(logging.Filter):
    """Rewrites every record it sees; never drops one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is still logged, masked
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = mask(message, self.secrets)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = mask(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.secrets)
        return True


_previous_factory: Callable[..., logging.LogRecord] | None = None


def install(secrets: Iterable[str] = ()) -> MaskingFilter:
    """Mask every log record this process creates from now on (replaces an earlier install)."""
    global _previous_factory  # noqa: PLW0603 - the log record factory is process-wide
    masking = MaskingFilter(secrets)
    if _previous_factory is None:
        _previous_factory = logging.getLogRecordFactory()
    base = _previous_factory

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        masking.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    return masking


def uninstall() -> None:
    """Restore the log record factory `install` replaced."""
    global _previous_factory  # noqa: PLW0603
    if _previous_factory is not None:
        logging.setLogRecordFactory(_previous_factory)
        _previous_factory = None


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values of `settings` that must never be logged."""
    return secrets_of(
        settings.auth_tokens,
        settings.mailgun_signing_key,
        settings.mailchimp_webhook_key,
        settings.link_signing_key,
        settings.postmark_webhook_password,
        settings.brevo_webhook_password,
        settings.mailjet_webhook_password,
        settings.customerio_signing_key,
        settings.rudderstack_token,
        settings.linkedin_client_secret,
        settings.linkedin_access_token,
        settings.meta_app_secret,
        settings.meta_verify_token,
        settings.meta_access_token,
        settings.connect_webhook_secret,
        settings.hubspot_access_token,
        settings.salesforce_client_secret,
        settings.mautic_password,
        settings.mautic_client_secret,
    )


def secrets_of(*values: SecretStr | str | Iterable[SecretStr] | None) -> list[str]:
    """The plain values of settings' secrets, for `install`."""
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, str):
            out.append(value)
        else:
            out.extend(item.get_secret_value() for item in value)
    return [s for s in out if len(s) >= 4]
