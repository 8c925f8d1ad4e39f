"""Connectors: stage changes delivered to CRMs and nurture tools (`leadstream connect KIND`).

One delivery core (`core`) reads `leads.stage-changes.v1` in its own consumer group and drives one
`Destination` (`destination`): a signed webhook, HubSpot, Salesforce or Mautic.
"""
