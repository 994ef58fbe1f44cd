"""The corporate-group and standing-order routes (routes/groups.py) in the bank's OpenAPI document."""

from __future__ import annotations

from gateway.bank_api import standing_orders as so
from gateway.bank_api.openapi import (
    _IDEMPOTENCY_OPTIONAL,
    _IDEMPOTENCY_REQUIRED,
    _LOCATION,
    _REPLAYED,
    Schema,
    _json,
    _op,
    _path_param,
)

TAG = "groups"
GROUP_ID, ORDER_ID = so.GROUP_ID, so.ORDER_ID
GROUP = _path_param("group_id", GROUP_ID, 48)
ORDER = _path_param("order_id", ORDER_ID, 35)
_WRITE = ("400", "401", "403", "404", "409", "413", "415", "502", "503")
_READ = ("400", "401", "403", "404", "502", "503")
_EVENTS = ", ".join(so.ORDER_EVENT_TYPES)



def paths() -> dict[str, Schema]:
    return {
        "/v1/groups": {
            "post": _op(
                "Make a corporate group (operator)",
                TAG,
                {"201": _json("Group", "The group, with no account yet", {**_LOCATION, **_REPLAYED})},
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=_WRITE,
            )
        },
        "/v1/groups/{group_id}": {
            "get": _op(
                "A group and its accounts (operator, or the group's treasurer)",
                TAG,
                {"200": _json("Group", "The group")},
                params=[GROUP],
                problems=_READ,
            )
        },
        "/v1/groups/{group_id}/accounts": {
            "post": _op(
                "Add an entity's account to the group (operator)",
                TAG,
                {
                    "200": _json("Group", "The account was in the group already"),
                    "201": _json("Group", "Added", _REPLAYED),
                },
                params=[GROUP, _IDEMPOTENCY_OPTIONAL],
                problems=_WRITE,
                description="An account at this bank must exist here; one at another bank is taken as named.",
            )
        },
        "/v1/groups/{group_id}/api-keys": {
            "post": _op(
                "Make the group treasurer's API key (operator); shown once",
                TAG,
                {"201": _json("TreasurerKeyCreated", "The key")},
                params=[GROUP],
                problems=("400", "401", "403", "404", "413", "415"),
                description=(
                    "The key reads the group's balances at this bank, pays between the group's accounts, "
                    "manages its standing orders and its webhooks (/v1/webhooks), and reaches nothing else."
                ),
            )
        },
        "/v1/groups/{group_id}/balances": {
            "get": _op(
                "Balances of the group's accounts at this bank, and totals per currency",
                TAG,
                {"200": _json("GroupBalances", "Balances")},
                params=[GROUP],
                problems=_READ,
            )
        },
        "/v1/groups/{group_id}/payments": {
            "post": _op(
                "Pay from a group account here to another group account, here or at another bank (treasurer)",
                TAG,
                {"201": _json("Payment", "Paid (same bank) or initiated (another bank)", {**_LOCATION, **_REPLAYED})},
                params=[GROUP, _IDEMPOTENCY_REQUIRED],
                problems=_WRITE,
                description="An ordinary payment: the contract's balance, limit, frozen and corridor rules hold.",
            )
        },
        "/v1/groups/{group_id}/standing-orders": {
            "post": _op(
                "Set up a scheduled payment or a sweep (operator or treasurer)",
                TAG,
                {"201": _json("StandingOrder", "Active", {**_LOCATION, **_REPLAYED})},
                params=[GROUP, _IDEMPOTENCY_REQUIRED],
                problems=_WRITE,
                description=(
                    "Runs are made by the gateway's sweeper when due (every sweep_interval_seconds), each "
                    "exactly once: a run is claimed before it pays and its payment's idempotency key derives "
                    "from the order and the due time. A run the contract refuses is recorded failed with its "
                    f"reason and the next one is still attempted. Webhooks: {_EVENTS}."
                ),
            ),
            "get": _op(
                "The group's standing orders",
                TAG,
                {"200": _json("StandingOrderList", "Standing orders")},
                params=[GROUP],
                problems=_READ,
            ),
        },
        "/v1/groups/{group_id}/standing-orders/{order_id}": {
            "get": _op(
                "A standing order",
                TAG,
                {"200": _json("StandingOrder", "The standing order")},
                params=[GROUP, ORDER],
                problems=_READ,
            )
        },
        "/v1/groups/{group_id}/standing-orders/{order_id}/runs": {
            "get": _op(
                "The order's runs, newest due first (the latest hundred)",
                TAG,
                {"200": _json("StandingOrderRuns", "Runs: pending, paid, failed (with the reason) or nothing_due")},
                params=[GROUP, ORDER],
                problems=_READ,
            )
        },
        "/v1/groups/{group_id}/standing-orders/{order_id}/cancellation": {
            "post": _op(
                "Cancel a standing order: no further run is claimed",
                TAG,
                {"200": _json("StandingOrder", "Cancelled (or finished already)", _REPLAYED)},
                params=[GROUP, ORDER, _IDEMPOTENCY_OPTIONAL],
                problems=_WRITE,
            )
        },
    }
