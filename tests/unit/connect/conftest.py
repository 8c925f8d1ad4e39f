"""Local stand-ins of the CRMs' APIs (tests/crm_fakes), one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from crm_fakes.hubspot import HubspotFake
from crm_fakes.mautic import MauticFake
from crm_fakes.salesforce import SalesforceFake


@pytest.fixture
async def hubspot_fake() -> AsyncIterator[HubspotFake]:
    fake = HubspotFake()
    await fake.serve()
    yield fake
    await fake.close()


@pytest.fixture
async def salesforce_fake() -> AsyncIterator[SalesforceFake]:
    fake = SalesforceFake()
    await fake.serve()
    yield fake
    await fake.close()


@pytest.fixture
async def mautic_fake() -> AsyncIterator[MauticFake]:
    fake = MauticFake()
    await fake.serve()
    yield fake
    await fake.close()
