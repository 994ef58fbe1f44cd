"""The OpenAPI 3.0 document of a bank's gateway.

Written here: each operation's summary, responses per status, problem codes, links, security and
path parameters. Generated: every schema, from the request models next to the routes (boundary.py)
and from the answer models (answers/), decision 0034. Schemathesis runs against this document in
the tests: every answer must match it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from gateway.bank_api import validation as v
from gateway.bank_api.ledger import UNAVAILABLE_REASONS
from gateway.bank_api.problems import PROBLEM_MEDIA_TYPE, problem_body
from gateway.bank_api.readiness import READINESS_CODES

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(pattern: str | None = None, max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if pattern:
        schema["pattern"] = pattern
    if max_length:
        schema["maxLength"] = max_length
    return schema





_PROBLEM_CONTENT = {"application/problem+json": {"schema": _ref("Problem")}}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}

RESPONSES: dict[str, Schema] = {
    "BadRequest": {"description": "Malformed input; the detail names the field", "content": _PROBLEM_CONTENT},
    "Unauthenticated": {
        "description": "No API key, or an unknown or revoked one",
        "content": _PROBLEM_CONTENT,
    },
    "Forbidden": {"description": "The key may not do this", "content": _PROBLEM_CONTENT},
    "NotFound": {"description": "No such resource", "content": _PROBLEM_CONTENT},
    "Conflict": {
        "description": (
            "Refused in the current state; `code` says which (insufficient_funds, account_frozen, "
            "bank_suspended, corridor_cap_exceeded, ...). corridor_cap_exceeded: the payment crosses the "
            "regulator's cap (per payment, or per day for the paying bank) on the corridor between the two "
            "banks' jurisdictions; `detail` names the corridor and the policy version. bank_suspended: the "
            "regulator has suspended the payer's or the payee's "
            "bank, so it takes no new payment, issue or transfer; `detail` names the bank and the "
            "regulator's reason. Payments already under way still finish or are refunded. The refusal "
            "is stored under the Idempotency-Key: once the bank is reinstated, send the request again "
            "with a new key."
        ),
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": _ref("Problem"),
                "examples": {
                    "bank_suspended": {
                        "summary": "The payee's bank is suspended by the regulator",
                        "value": problem_body(
                            409,
                            "bank_suspended",
                            "HKBankMSP is suspended by the regulator since 2025-01-06T09:00:00.000000Z "
                            "(reason: AML review 2025-17); no new payment to or from it is accepted",
                        ),
                    },
                    "corridor_cap_exceeded": {
                        "summary": "The payment would cross a corridor cap set by the regulator",
                        "value": problem_body(
                            409,
                            "corridor_cap_exceeded",
                            "corridor cap USD US->HK (policy version 3): USBankMSP sent 480000 in this corridor "
                            "on 2025-01-06 (UTC); 25000 more would pass the daily cap of 500000",
                        ),
                    },
                    "insufficient_funds": {
                        "summary": "The paying account's balance is too low",
                        "value": problem_body(
                            409, "insufficient_funds", "account balance 1000 USD is below the debit 2500"
                        ),
                    },
                },
            }
        },
    },
    "UnsupportedMediaType": {"description": "The body is not JSON", "content": _PROBLEM_CONTENT},
    "PayloadTooLarge": {"description": "The body is too large", "content": _PROBLEM_CONTENT},
    "TooManyRequests": {
        "description": "Over the rate limit of the API key or of the client address; retry after the given delay",
        "headers": _RETRY_AFTER,
        "content": _PROBLEM_CONTENT,
    },
    "BadGateway": {"description": "The ledger failed to process the request", "content": _PROBLEM_CONTENT},
    "Unavailable": {
        "description": (
            "The ledger cannot take the request now; retry after the given delay. The `code` names why: "
            + "; ".join(f"`{reason.code}`: {reason.public_detail}" for reason in UNAVAILABLE_REASONS)
            + ". A write whose outcome is unknown is safe to repeat with the same Idempotency-Key."
        ),
        "headers": _RETRY_AFTER,
        "content": {"application/problem+json": {"schema": _ref("Unavailable")}},
    },
    "Overloaded": {
        "description": (
            "`overloaded`: the gateway already has as many write requests in flight as it takes "
            "(`max_concurrent_writes`); the request was refused before any work, so nothing was done. "
            "Retry after the given delay, with the same Idempotency-Key if the request had one."
        ),
        "headers": _RETRY_AFTER,
        "content": {"application/problem+json": {"schema": _ref("Unavailable")}},
    },
}

_WRITE_METHODS = ("post", "put", "patch", "delete")


def with_overload_responses(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Every write under /v1 may be refused by the gateway's cap on writes in flight (overload.py):
    one that does not list a 503 already (the ledger's, whose codes include `overloaded`) gets one."""
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            if method in _WRITE_METHODS and "503" not in operation["responses"]:
                operation["responses"]["503"] = {"$ref": "#/components/responses/Overloaded"}
    return paths


def _json(schema_name: str, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _problems(*names: str) -> dict[str, Schema]:
    table = {
        "400": "BadRequest",
        "401": "Unauthenticated",
        "403": "Forbidden",
        "404": "NotFound",
        "409": "Conflict",
        "413": "PayloadTooLarge",
        "415": "UnsupportedMediaType",
        "429": "TooManyRequests",
        "502": "BadGateway",
        "503": "Unavailable",
    }
    return {code: {"$ref": f"#/components/responses/{table[code]}"} for code in names}


_LEDGER_READ = ("400", "401", "403", "404", "502", "503")
_LEDGER_WRITE = ("400", "401", "403", "404", "409", "413", "415", "502", "503")

_SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]


def _op(
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    body: str | None = None,
    body_required: bool = True,
    params: list[Schema] | None = None,
    problems: tuple[str, ...] = _LEDGER_READ,
    description: str | None = None,
    secured: bool = True,
    rate_limited: bool = True,
) -> Schema:
    if rate_limited:
        problems = (*problems, "429")
    operation: Schema = {
        "summary": summary,
        "tags": [tag],
        "responses": {**responses, **_problems(*problems)},
    }
    if description:
        operation["description"] = description
    if secured:
        operation["security"] = _SECURED
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _path_param(name: str, pattern: str, max_length: int = 128) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": _string(pattern, max_length)}


_IDEMPOTENCY_REQUIRED = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "Client-chosen unique key; a retry with the same key and body replays the first answer",
    "schema": _string(r"^[\x20-\x7e]+$", 255, minLength=1),
}
_IDEMPOTENCY_OPTIONAL = {**_IDEMPOTENCY_REQUIRED, "required": False}
_REPLAYED = {"Idempotent-Replayed": {"description": "true on a replayed answer", "schema": {"type": "string"}}}
_LOCATION = {"Location": {"description": "URL of the new resource", "schema": {"type": "string"}}}

ACCOUNT = _path_param("account_id", v.ACCOUNT_ID, 64)


def _paths() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": _op(
                "Liveness: the process is up",
                "operations",
                {"200": _json("Status", "Up")},
                problems=(),
                secured=False,
                rate_limited=False,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: a payment can be made and completed now",
                "operations",
                {
                    "200": _json("Status", "Ready"),
                    "503": {
                        "description": "Not ready; the `code` names the first unmet condition: "
                        + "; ".join(f"`{code}`: {meaning}" for code, meaning in READINESS_CODES.items()),
                        "headers": _RETRY_AFTER,
                        "content": {"application/problem+json": {"schema": _ref("NotReady")}},
                    },
                },
                problems=(),
                secured=False,
                rate_limited=False,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                "operations",
                {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": _string()}},
                    }
                },
                problems=("401", "403"),
                secured=False,
                description="Open to clients on this machine (as Fabric's operations endpoints); others need the "
                "operator key.",
            )
        },
        "/v1/me": {
            "get": _op(
                "The caller's key, role and account",
                "accounts",
                {"200": _json("Me", "The caller")},
                problems=("401",),
            )
        },
        "/v1/accounts": {
            "post": _op(
                "Open an account for a merchant (operator)",
                "accounts",
                {
                    "201": _json(
                        "AccountOpened",
                        "Opened; the merchant's API key is in the answer, once",
                        {**_LOCATION, **_REPLAYED},
                    )
                },
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/accounts/{account_id}": {
            "get": _op(
                "An account with its balance per currency (operator, or the account's merchant)",
                "accounts",
                {"200": _json("Account", "The account")},
                params=[ACCOUNT],
            )
        },
        "/v1/accounts/{account_id}/history": {
            "get": _op(
                "The account's entries, newest first, a page at a time",
                "accounts",
                {"200": _json("HistoryPage", "A page of entries")},
                params=[ACCOUNT],
            )
        },
        "/v1/accounts/{account_id}/freeze": {
            "post": _op(
                "Freeze an account: it can neither pay nor be paid (operator)",
                "accounts",
                {"200": _json("Account", "Frozen")},
                params=[ACCOUNT],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/accounts/{account_id}/unfreeze": {
            "post": _op(
                "Unfreeze an account (operator)",
                "accounts",
                {"200": _json("Account", "Active again")},
                params=[ACCOUNT],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/accounts/{account_id}/close": {
            "post": _op(
                "Close an empty account (operator)",
                "accounts",
                {"200": _json("Account", "Closed")},
                params=[ACCOUNT],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/accounts/{account_id}/limits/{currency}": {
            "put": _op(
                "Set the per-transaction and daily limits of one currency (operator; null = no limit)",
                "accounts",
                {"200": _json("Account", "The account with its new limits")},
                params=[ACCOUNT, _path_param("currency", v.CURRENCY, 3)],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/accounts/{account_id}/api-keys": {
            "post": _op(
                "Issue another API key for the account's merchant (operator)",
                "accounts",
                {"201": _json("ApiKeyCreated", "The new key, shown once")},
                params=[ACCOUNT],
                problems=_LEDGER_WRITE,
            ),
            "get": _op(
                "The account's API keys, without their secrets (operator)",
                "accounts",
                {"200": _json("ApiKeyList", "Keys")},
                params=[ACCOUNT],
                problems=("400", "401", "403"),
            ),
        },
        "/v1/accounts/{account_id}/api-keys/{key_id}": {
            "delete": _op(
                "Revoke an API key (operator)",
                "accounts",
                {"204": {"description": "Revoked"}},
                params=[ACCOUNT, _path_param("key_id", v.OPAQUE_ID, 64)],
                problems=("400", "401", "403", "404"),
            )
        },
        "/v1/payments": {
            "post": _op(
                "Pay any account at any bank, in the same or another currency (merchant)",
                "payments",
                {
                    "201": _json(
                        "Payment",
                        "Accepted: interbank payments start as initiated",
                        {**_LOCATION, **_REPLAYED},
                    )
                },
                params=[_IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
                description=(
                    "Same Idempotency-Key and body: the first answer again (header Idempotent-Replayed). "
                    "Same key, different body: 409 idempotency_key_reused. While the regulator suspends "
                    "the payer's or the payee's bank: 409 bank_suspended, naming the bank and the reason."
                ),
            ),
            "get": _op(
                "Interbank payments of this bank (operator)",
                "payments",
                {"200": _json("PaymentPage", "A page of payments")},
            ),
        },
        "/v1/payments/{payment_id}": {
            "get": _op(
                "A payment with its timeline (operator, the payer or payee merchant, or their group's treasurer)",
                "payments",
                {"200": _json("Payment", "The payment")},
                params=[_path_param("payment_id", v.PAYMENT_ID, 128)],
            )
        },
        "/v1/issuances": {
            "post": _op(
                "Issue tokens to an account against a deposit (operator)",
                "treasury",
                {
                    "201": _json("IssueResult", "Issued", _REPLAYED),
                    "200": _json("IssueResult", "Already issued earlier", _REPLAYED),
                },
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/redemptions": {
            "post": _op(
                "Redeem tokens from an account for a withdrawal (operator)",
                "treasury",
                {
                    "201": _json("RedeemResult", "Redeemed", _REPLAYED),
                    "200": _json("RedeemResult", "Already redeemed", _REPLAYED),
                },
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/supply": {
            "get": _op("Supply of every token class (operator)", "treasury", {"200": _json("Supply", "Supply")})
        },
        "/v1/reference-data": {
            "get": _op(
                "Currencies, banks and this bank's FX rates",
                "treasury",
                {"200": _json("ReferenceData", "Reference data")},
            )
        },
        "/v1/fx-quote": {
            "get": _op(
                "What a payment in one currency delivers in another at this bank's rate now",
                "payments",
                {"200": _json("FxQuote", "The quote")},
                problems=("400", "401", "403", "502", "503"),
                description=(
                    "The rate and payee amount a payment with these fields, made now, would lock "
                    "(POST /v1/payments computes them the same way). 400 unsupported_currency_pair "
                    "when the bank quotes no rate between the two currencies."
                ),
            )
        },
        "/v1/positions": {
            "get": _op(
                "Net positions over completed payments not yet in a settlement cycle (operator)",
                "settlement",
                {"200": _json("CurrentPositions", "Positions")},
            )
        },
        "/v1/settlement-cycles": {
            "post": _op(
                "Open a settlement cycle over every completed, unsettled payment (operator)",
                "settlement",
                {"201": _json("SettlementCycle", "Opened", {**_LOCATION, **_REPLAYED})},
                params=[_IDEMPOTENCY_OPTIONAL],
                problems=_LEDGER_WRITE,
            ),
            "get": _op("Settlement cycles (operator)", "settlement", {"200": _json("CycleList", "Cycles")}),
        },
        "/v1/settlement-cycles/{cycle_id}": {
            "get": _op(
                "A settlement cycle with its positions (operator)",
                "settlement",
                {"200": _json("SettlementCycle", "The cycle")},
                params=[_path_param("cycle_id", v.CYCLE_ID, 64)],
            )
        },
        "/v1/settlement-cycles/{cycle_id}/confirmation": {
            "post": _op(
                "Confirm this bank's leg of a cycle after settling it outside the ledger (operator)",
                "settlement",
                {"200": _json("SettlementCycle", "The cycle after the confirmation")},
                params=[_path_param("cycle_id", v.CYCLE_ID, 64)],
                problems=_LEDGER_WRITE,
            )
        },
        **webhook_paths(
            "webhooks",
            "a webhook (merchant)",
            "Register a URL to be told about this account's payments (merchant)",
            "This account's webhooks (merchant)",
            "Deliveries are POSTs of {id, type, created_at, data} signed with header "
            "Bank-Api-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>.",
        ),
    }


PVP_ID = _path_param("pvp_id", r"^[0-9a-f]{64}$", 64)
ESCROW_ID = _path_param("escrow_id", r"^[0-9a-f]{64}$", 64)


def _escrow_paths() -> dict[str, Schema]:
    return {
        "/v1/escrows": {
            "post": _op(
                "Lock money for a payee under release terms (the buyer's merchant key)",
                "escrows",
                {"201": _json("Escrow", "Locked: the amount left the available balance", {**_LOCATION, **_REPLAYED})},
                params=[_IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
                description=(
                    "release_by: buyer, attestor (an attestor id with its own API key here) or both. At "
                    "expires_at the sweeper refunds what is left to the buyer or releases it to the payee "
                    "(on_expiry). Webhooks: escrow.locked, escrow.approved, escrow.released, escrow.refunded."
                ),
            )
        },
        "/v1/escrows/{escrow_id}": {
            "get": _op(
                "An escrow (operator, the buyer, the payee when it banks here, or its attestor)",
                "escrows",
                {"200": _json("Escrow", "The escrow")},
                params=[ESCROW_ID],
            )
        },
        "/v1/escrows/{escrow_id}/release": {
            "post": _op(
                "Release part or all of an open escrow (the buyer's or the attestor's key, as the terms say)",
                "escrows",
                {"200": _json("Escrow", "Released, or (release_by both) approved and awaiting the other party")},
                params=[ESCROW_ID, _IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
                description=(
                    "To the payee at once when it banks here, else as an interbank payment (payment_id). "
                    "A release above what is still locked, after the expiry or of a settled escrow is "
                    "refused (409)."
                ),
            )
        },
        "/v1/pvp": {
            "post": _op(
                "Offer an exchange of two currencies with a customer of another bank, both legs or neither (merchant)",
                "pvp",
                {"201": _json("Pvp", "Proposed: the proposer's leg is locked", {**_LOCATION, **_REPLAYED})},
                params=[_IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
                description=(
                    "Each currency moves on its issuer's books: amount from the proposer's account to "
                    "counterparty_receives_at here, counter_amount (amount x rate) from counterparty_account "
                    "to receive_account at the counterparty's bank. Unaccepted by the expiry, or refused, the "
                    "proposer's leg is refunded. Webhooks: pvp.proposed, pvp.locked, pvp.delivered, pvp.refunded."
                ),
            )
        },
        "/v1/pvp/{pvp_id}": {
            "get": _op(
                "A PvP (operator, or a merchant whose account settles a leg here)",
                "pvp",
                {"200": _json("Pvp", "The PvP")},
                params=[PVP_ID],
            )
        },
        "/v1/pvp/{pvp_id}/accept": {
            "post": _op(
                "Accept an offer: lock and deliver this leg (the counterparty's merchant key, at its bank)",
                "pvp",
                {"200": _json("Pvp", "Locked; this bank's leg delivered, the other follows")},
                params=[PVP_ID, _IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/pvp/{pvp_id}/refuse": {
            "post": _op(
                "Decline an offer (the counterparty's merchant key): the proposer's leg is refunded",
                "pvp",
                {"200": _json("Pvp", "Refused")},
                params=[PVP_ID, _IDEMPOTENCY_REQUIRED],
                problems=_LEDGER_WRITE,
            )
        },
        "/v1/attestors/{attestor_id}/api-keys": {
            "post": _op(
                "Issue an API key for an attestor (operator)",
                "escrows",
                {"201": _json("AttestorKeyCreated", "The new key, shown once")},
                params=[_path_param("attestor_id", r"^[a-z0-9][a-z0-9_.-]{0,63}$", 64)],
                problems=("400", "401", "403", "413", "415"),
            )
        },
    }


def webhook_paths(tag: str, one: str, register: str, listing: str, deliveries: str) -> dict[str, Schema]:
    """The webhook routes, the same for a bank's merchants and for the regulator's alerts (one
    implementation serves both, gateway/bank_api/routes/webhooks.py): only the owner and the events differ."""
    return {
        "/v1/webhooks": {
            "post": _op(
                register,
                tag,
                {"201": _json("WebhookCreated", "Registered; the signing secret is shown once", _LOCATION)},
                problems=("400", "401", "403", "413", "415"),
                description=deliveries,
            ),
            "get": _op(listing, tag, {"200": _json("WebhookList", "Webhooks")}, problems=("401", "403")),
        },
        "/v1/webhooks/{webhook_id}": {
            "delete": _op(
                f"Remove {one}",
                tag,
                {"204": {"description": "Removed"}},
                params=[_path_param("webhook_id", v.OPAQUE_ID, 64)],
                problems=("400", "401", "403", "404"),
            )
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "get": _op(
                f"Deliveries of {one}, newest first",
                tag,
                {"200": _json("DeliveryPage", "A page of deliveries")},
                params=[_path_param("webhook_id", v.OPAQUE_ID, 64)],
                problems=("400", "401", "403", "404"),
            )
        },
    }


# Operations that make an id, and where their answer carries it. OpenAPI links go from each to every
# operation whose path takes only ids it gives (found by walking the paths, so a new route is linked
# without a second list to keep), which lets clients and stateful fuzzers follow the API's flows.
_PRODUCERS: dict[tuple[str, str], dict[str, str]] = {
    ("/v1/accounts", "post"): {"account_id": "$response.body#/account/account_id"},
    ("/v1/accounts/{account_id}/api-keys", "post"): {
        "account_id": "$response.body#/account_id",
        "key_id": "$response.body#/api_key_id",
    },
    ("/v1/payments", "post"): {"payment_id": "$response.body#/payment_id"},
    ("/v1/settlement-cycles", "post"): {"cycle_id": "$response.body#/cycle_id"},
    ("/v1/webhooks", "post"): {"webhook_id": "$response.body#/id"},
    ("/v1/escrows", "post"): {"escrow_id": "$response.body#/escrow_id"},
    ("/v1/pvp", "post"): {"pvp_id": "$response.body#/pvp_id"},
}
# Request bodies that take an account just opened: issue to it, redeem from it, pay it.
_OPENED = "$response.body#/account/account_id"
_BODY_LINKS: dict[tuple[str, str], dict[str, str]] = {
    ("/v1/issuances", "post"): {"account_id": _OPENED},
    ("/v1/redemptions", "post"): {"account_id": _OPENED},
    ("/v1/payments", "post"): {"payee_account": _OPENED},
}


def _link_name(method: str, path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method} {path}").strip("_")


def _operation_ref(method: str, path: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _with_links(paths: dict[str, Schema]) -> dict[str, Schema]:
    for (path, method), values in _PRODUCERS.items():
        links: dict[str, Schema] = {}
        for target, operations in paths.items():
            names = set(re.findall(r"{(\w+)}", target))
            if not names or not names <= set(values):
                continue
            for verb in operations:
                links[_link_name(verb, target)] = {
                    "operationRef": _operation_ref(verb, target),
                    "parameters": {name: values[name] for name in sorted(names)},
                }
        if path == "/v1/accounts":
            for (target, verb), body in _BODY_LINKS.items():
                links[_link_name(verb, target)] = {"operationRef": _operation_ref(verb, target), "requestBody": body}
        created = paths[path][method]["responses"]["201"]
        created["links"] = links
    return paths


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    from gateway.bank_api import disclosure_openapi, groups_openapi
    from gateway.bank_api.answers import bank, common, components
    from gateway.bank_api.boundary import BANK, with_request_parts
    from gateway.bank_api.config import BANK as BANK_ROLE

    document = _document(disclosure_openapi, groups_openapi)
    document["components"]["schemas"].update(components(bank.PUBLISHED + common.PUBLISHED))
    return with_request_parts(document, BANK, BANK_ROLE)


def _document(disclosure_openapi: Any, groups_openapi: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Deposit-token bank API",
            "version": "1.0.0",
            "description": (
                "One bank's gateway to the deposit-token ledger. Amounts are decimal strings in the "
                'currency\'s exponent ("12.34" USD); errors are application/problem+json with a stable '
                "`code`. Send the API key as `Authorization: Bearer <key>`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": name}
            for name in (
                "accounts",
                "payments",
                "escrows",
                "pvp",
                "groups",
                "treasury",
                "settlement",
                "webhooks",
                "disclosure",
                "operations",
            )
        ],
        "paths": with_overload_responses(
            _with_links({**_paths(), **_escrow_paths(), **groups_openapi.paths(), **disclosure_openapi.bank_paths()})
        ),
        "components": {
            # Generated from the answer and request models (openapi_document).
            "schemas": {},
            "responses": RESPONSES,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
