"""Vendor adapters: pure functions from real vendor payloads to Leadstream events.

One module per vendor (`sendgrid`, `mailgun`, `mailchimp`, `segment`, `snowplow`, `hubspot`,
`customerio`, `rudderstack`, `linkedin`, `meta`); `machine` judges machine-made events and
`lead_forms` reads the answers of social lead forms.
Each returns a `Conversion`: the events it could make, and every part of the payload it could not
use, with the reason (`Rejected`), so nothing is dropped silently. Adapters read no clock: the
time the payload was received is an argument, used when the vendor gives no event time. They
check no signatures either: the HTTP collector does that before calling them (see
`mailgun.verify_signature` and `stream.web.signatures`). LinkedIn's and Meta's notifications only
name a lead: their modules split the work into `notices` (what to fetch) and `convert_lead` (the
events of a fetched lead), and the collector fetches in between.
"""

from schemas.adapters.base import Conversion, Rejected

__all__ = ["Conversion", "Rejected"]
