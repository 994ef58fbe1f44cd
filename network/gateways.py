"""Starts one REST gateway per bank (gateway/bank_api), once that package can serve."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from network.consortium import Consortium


def start_gateways(net: Consortium) -> None:
    try:
        import gateway.bank_api.cli  # noqa: F401
    except ImportError:
        net.progress("    (REST gateways not available yet: gateway.bank_api.cli is missing)")
        return
