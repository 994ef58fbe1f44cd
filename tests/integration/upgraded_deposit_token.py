"""The deposit-token contract's next version, as the live-upgrade test deploys it.

It is the current contract plus one field: the reference data now says which contract version
answered, and a query reports the version. Everything stored stays readable, so payments
initiated on the old version complete on this one.
"""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token.contract import DepositTokenContract
from chaincode.shim.contract import Context, query

VERSION = "1.1"


class UpgradedDepositTokenContract(DepositTokenContract):
    name = "deposit_token"
    version = "1.1.0"

    @query
    def get_reference_data(self, ctx: Context) -> dict[str, Any]:
        """Regulator, currencies, banks, corridor policy, payment timeout, and the contract version."""
        return {**super().get_reference_data(ctx), "contract_version": VERSION}

    @query
    def get_contract_version(self, ctx: Context) -> dict[str, Any]:
        """Which version of the contract answers."""
        return {"version": VERSION}
