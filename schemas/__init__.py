"""The Leadstream event contract: models of every message on every topic.

Importable by producers and consumers without Faust or a Kafka client.

- `schemas.events`: inbound events (`InboundEvent` and the per-topic unions), `EVENT_TYPES`.
- `schemas.outputs`: outbound records (`ScoreUpdated`, `StageChanged`, `LeadErasedRecord`,
  `DeadLetter`) and the deterministic event ids.
- `schemas.stages`: `Stage` and its HubSpot and Salesforce values.
- `schemas.topics`: the topic catalogue (names, keys, value types, partitions, cleanup policies).
- `schemas.codec`: bytes ↔ models (`decode`, `encode`, keys); `schemas.errors`: `DecodeError`.
- `schemas.adapters`: vendor payloads (SendGrid, Mailgun, Mailchimp, Segment, Snowplow, HubSpot)
  to events.
- `schemas.examples`: one example of every message, and `make_event`/`make_output` factories.
- `python -m schemas.generate`: the JSON Schema and AsyncAPI documents in `schemas/generated/`.
- `python -m stream.bench.codec`: codec throughput.
"""
