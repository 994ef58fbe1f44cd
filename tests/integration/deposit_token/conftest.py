"""Fixtures shared by the deposit-token integration tests: the banks' clients, and conservation
(supply equals balances for every token class) checked before and after every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deposit_token_support import Consortium, gateways_paused


@pytest.fixture(scope="module")
def banks(profile_path: Path, state_dir: Path) -> Iterator[Consortium]:
    # the REST gateways' followers would complete payments these tests drive step by step
    with gateways_paused(state_dir):
        consortium = Consortium(profile_path)
        yield consortium
        consortium.close()


@pytest.fixture(autouse=True)
def conserved(banks: Consortium) -> Iterator[None]:
    banks.assert_conserved()
    yield
    banks.assert_conserved()
