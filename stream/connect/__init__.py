"""Connectors: stage changes delivered to CRMs and nurture tools (`leadstream connect KIND`).

One delivery core (`core`) reads `leads.stage-changes.v1` (and, with accounts,
`leads.account-stage-changes.v1`) in its own consumer group and drives one `Destination`
(`destination`): a signed webhook (`webhook`), HubSpot, Salesforce or Mautic. The webhook,
HubSpot (companies) and Salesforce (Accounts) also deliver account stage changes. The
core's arithmetic (backoff, token bucket, commit bookkeeping) is in `flow`, its metrics in
`telemetry`, and the HTTP client the destinations share in `http`.
"""
