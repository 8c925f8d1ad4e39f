"""Local stand-ins of the CRMs' APIs (tests/crm_fakes), one per test."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path


def _fakes_package() -> None:
    """tests/crm_fakes as the package ``crm_fakes`` (the tests run with
    ``--import-mode=importlib``, so the tests folder is not on the import path)."""
    if "crm_fakes" in sys.modules:
        return
    init = Path(__file__).resolve().parents[2] / "crm_fakes" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "crm_fakes", init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crm_fakes"] = module
    spec.loader.exec_module(module)


_fakes_package()

import pytest  # noqa: E402
from crm_fakes.hubspot import HubspotFake  # noqa: E402
from crm_fakes.mautic import MauticFake  # noqa: E402
from crm_fakes.salesforce import SalesforceFake  # noqa: E402


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
