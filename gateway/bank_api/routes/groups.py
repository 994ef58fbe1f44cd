"""Corporate groups: their accounts, their treasurer's key and view, payments between them, standing orders.

A group links accounts of its entities, at this bank and at others, under one id. The bank's
operator makes the group, adds accounts and gives the treasurer a key (``TREASURER``, bound to
the group id). The treasurer sees the balances of the group's accounts at this bank, pays
between the group's accounts, and sets up standing orders (scheduled payments and sweeps,
standing_orders.py) paying from the group's accounts here. Every write is idempotent by its
Idempotency-Key, as payments are.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from flask import Blueprint, Response, request
from pydantic import Field
from sqlalchemy import select

from gateway.bank_api import representations
from gateway.bank_api import standing_orders as so
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, TREASURER, Principal, current_principal, requires
from gateway.bank_api.boundary import (
    BANK,
    Absent,
    AccountId,
    Amount,
    ApiKeyCreateRequest,
    Body,
    Currency,
    EmptyRequest,
    MspId,
    Remittance,
    Rule,
    accepts,
    body_of,
    one_of,
    text,
)
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.money import Currencies, MoneyError
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.routes.payments import pay_elsewhere, pay_here
from gateway.bank_api.storage.models import CorporateGroup, GroupAccount, StandingOrder, StandingOrderRun, utcnow
from gateway.bank_api.validation import bad_request, path_id

bp = Blueprint("groups", __name__, url_prefix="/v1")

GROUP_ID, ORDER_ID = so.GROUP_ID, so.ORDER_ID
MAX_GROUP_ACCOUNTS = 200
MAX_ORDERS_PER_GROUP = 500
RUNS_SHOWN = 100
# A start this far in the past is refused: a payment order would otherwise pay every period since.
START_TOLERANCE = timedelta(minutes=5)
START_HORIZON = timedelta(days=366)
_ZERO = re.compile(r"^0(\.0+)?$")
# What the document publishes of a target balance: zero, or an amount (checked where it becomes
# minor units, as an amount is).
TARGET_PATTERN = r"^(0(\.0+)?|0\.[0-9]*[1-9][0-9]*|[1-9][0-9]*(\.[0-9]+)?)$"


# -- access -------------------------------------------------------------------------------------------


def _group_not_found() -> ApiProblem:
    return ApiProblem(404, "group_not_found", "no corporate group with this id at this bank")


def _load_group(group_id: str) -> tuple[CorporateGroup, list[GroupAccount]]:
    """The group and its accounts, if this key may reach it (operators: every group; a treasurer: its own)."""
    path_id(group_id, GROUP_ID, "group_id")
    principal = current_principal()
    if not principal.is_operator and principal.group_id != group_id:
        raise ApiProblem(403, "forbidden", "this API key is not allowed to reach that group")
    with services().db.session(write=False) as session:
        group = session.get(CorporateGroup, group_id)
        if group is None:
            raise _group_not_found()
        accounts = list(
            session.scalars(
                select(GroupAccount).where(GroupAccount.group_id == group_id).order_by(GroupAccount.id)
            ).all()
        )
        session.expunge_all()
    return group, accounts


def _group_body(group: CorporateGroup, accounts: list[GroupAccount]) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "name": group.name,
        "accounts": [{"bank": a.bank, "account_id": a.account_id} for a in accounts],
        "created_at": representations.timestamp(group.created_at),
    }


def _member(accounts: list[GroupAccount], bank: str, account_id: str) -> bool:
    return any(a.bank == bank and a.account_id == account_id for a in accounts)


def _known_bank(field: str, bank: str) -> None:
    banks = services().reference_data().get("banks")
    if isinstance(banks, list) and banks:
        known = {b.get("msp_id") for b in banks if isinstance(b, dict)}
        if bank not in known:
            raise bad_request(f"{field} is not a bank of this network", "unknown_bank")


# -- groups -------------------------------------------------------------------------------------------


class GroupRequest(Body):
    group_id: Annotated[
        str,
        Field(pattern=GROUP_ID, min_length=1, max_length=48, description="Chosen by the bank: a-z, 0-9, _ and -"),
        Rule(what="a-z, 0-9, _ and -"),
    ]
    name: Annotated[str, text(128)]


@bp.post("/groups")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=GroupRequest)
def create_group() -> Response:
    request_body = body_of(GroupRequest)
    group_id, name = request_body.group_id, request_body.name
    with services().db.session() as session:
        if session.get(CorporateGroup, group_id) is not None:
            raise ApiProblem(409, "group_exists", "a corporate group with this id exists already")
        group = CorporateGroup(group_id=group_id, name=name, created_at=utcnow())
        session.add(group)
        session.flush()
        body = _group_body(group, [])
    return json_response(body, 201, {"Location": f"/v1/groups/{group_id}"})


@bp.get("/groups/<group_id>")
@requires(OPERATOR, TREASURER)
def get_group(group_id: str) -> Response:
    return json_response(_group_body(*_load_group(group_id)))


class GroupAccountRequest(Body):
    bank: Annotated[MspId, Field(description="The account's bank (default: this one)")] | Absent = None
    account_id: AccountId


@bp.post("/groups/<group_id>/accounts")
@requires(OPERATOR)
@idempotent(required=False)
@accepts(BANK, body=GroupAccountRequest)
def add_account(group_id: str) -> Response:
    """Add an entity's account; one at this bank must exist here, one elsewhere is taken as named."""
    group, accounts = _load_group(group_id)
    body = body_of(GroupAccountRequest)
    svc = services()
    bank = body.bank or svc.msp_id
    account_id = body.account_id
    if _member(accounts, bank, account_id):
        return json_response(_group_body(group, accounts))
    if len(accounts) >= MAX_GROUP_ACCOUNTS:
        raise bad_request(f"a group may have at most {MAX_GROUP_ACCOUNTS} accounts")
    if bank == svc.msp_id:
        svc.ledger.get_account(account_id)  # unknown here: the contract's 404 unknown_account
    else:
        _known_bank("bank", bank)
    with svc.db.session() as session:
        session.add(GroupAccount(group_id=group_id, bank=bank, account_id=account_id, added_at=utcnow()))
    return json_response(_group_body(*_load_group(group_id)), 201)


class TreasurerKeyRequest(ApiKeyCreateRequest):
    """The key's label; left out, it is "treasurer key" and four hex digits."""


@bp.post("/groups/<group_id>/api-keys")
@requires(OPERATOR)
@accepts(BANK, body=TreasurerKeyRequest, body_required=False)
def create_treasurer_key(group_id: str) -> Response:
    """The group treasurer's key: the group's balances here, payments and standing orders between its accounts."""
    _load_group(group_id)
    label = body_of(TreasurerKeyRequest).label or f"treasurer key {secrets.token_hex(2)}"
    issued = services().keys.create(TREASURER, group_id, label=label)
    return json_response({"group_id": group_id, "api_key": issued.api_key, "api_key_id": issued.key_id}, 201)


@bp.get("/groups/<group_id>/balances")
@requires(OPERATOR, TREASURER)
def group_balances(group_id: str) -> Response:
    """Balances of the group's accounts at this bank, and their totals per currency."""
    _, accounts = _load_group(group_id)
    svc = services()
    currencies = svc.currencies()
    here: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    for member in accounts:
        if member.bank != svc.msp_id:
            continue
        data = svc.ledger.get_account(member.account_id)
        balances = data.get("balances") or {}
        for currency, amount in balances.items():
            if isinstance(amount, int) and not isinstance(amount, bool):
                totals[str(currency)] = totals.get(str(currency), 0) + amount
        shown = representations.account(data, currencies)
        here.append({"account_id": member.account_id, "status": shown["status"], "balances": shown["balances"]})
    return json_response(
        {
            "group_id": group_id,
            "bank": svc.msp_id,
            "accounts": here,
            "totals": {c: currencies.format_amount(v, c) for c, v in sorted(totals.items())},
            "elsewhere": [{"bank": a.bank, "account_id": a.account_id} for a in accounts if a.bank != svc.msp_id],
        }
    )


# -- payments between the group's accounts ---------------------------------------------------------


class GroupPaymentRequest(Body):
    from_account: Annotated[AccountId, Field(description="A group account at this bank")]
    to_bank: MspId
    to_account: Annotated[AccountId, Field(description="A group account at to_bank")]
    currency: Currency
    amount: Amount
    remittance: Remittance | Absent = None


@bp.post("/groups/<group_id>/payments")
@requires(TREASURER)
@idempotent(required=True)
@accepts(BANK, body=GroupPaymentRequest)
def group_payment(group_id: str) -> Response:
    """The treasurer pays from a group account here to another group account, here or elsewhere."""
    _, accounts = _load_group(group_id)
    svc = services()
    currencies = svc.currencies()
    body = body_of(GroupPaymentRequest)
    from_account, to_bank, to_account = body.from_account, body.to_bank, body.to_account
    currency = currencies.known(body.currency, "currency")
    amount = currencies.parse_amount(body.amount, currency, "amount")
    remittance = body.remittance or None
    _check_members(accounts, from_account, to_bank, to_account, "from_account", "to_account")
    key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    request_key = hashlib.sha256(f"group-payment\n{group_id}\n{key}".encode()).hexdigest()
    if to_bank == svc.msp_id:
        return pay_here(from_account, to_account, currency, amount, remittance, request_key)
    return pay_elsewhere(from_account, to_bank, to_account, currency, amount, remittance, request_key)


def _check_members(
    accounts: list[GroupAccount], payer: str, payee_bank: str, payee: str, payer_field: str, payee_field: str
) -> None:
    own = services().msp_id
    if not _member(accounts, own, payer):
        raise bad_request(f"{payer_field} is not an account of this group at this bank", "not_a_group_account")
    if not _member(accounts, payee_bank, payee):
        raise bad_request(f"{payee_field} is not an account of this group at that bank", "not_a_group_account")
    if payee_bank == own and payee == payer:
        raise bad_request(f"{payee_field} is {payer_field} itself")


# -- standing orders ----------------------------------------------------------------------------------

_PAYMENT_ONLY = ("from_account", "to_bank", "to_account", "amount")
_SWEEP_ONLY = ("account", "header_bank", "header_account", "target_balance", "top_up", "on_credit")


class StandingOrderRequest(Body):
    """kind payment takes from_account, to_bank, to_account, amount; kind sweep takes account,
    header_bank, header_account, target_balance, every, and optionally top_up and on_credit."""

    kind: Annotated[str, one_of(so.KINDS)]
    currency: Currency
    every: Annotated[
        str, one_of(so.EVERY), Field(description="day, week or month; null or absent: once")
    ] | Absent = None
    # Its shape is checked in the view, whose refusals say what is wrong with the time.
    start_at: Annotated[
        str,
        Field(
            max_length=40,
            description="RFC 3339 time of the first run (default: now); not in the past, at most a year ahead",
        ),
    ] | Absent = None
    remittance: Remittance | Absent = None
    from_account: Annotated[AccountId, Field(description="payment: a group account at this bank")] | Absent = None
    to_bank: Annotated[MspId, Field(description="payment: the payee's bank")] | Absent = None
    to_account: Annotated[AccountId, Field(description="payment: a group account at to_bank")] | Absent = None
    amount: Amount | Absent = None
    account: Annotated[AccountId, Field(description="sweep: the swept group account at this bank")] | Absent = None
    header_bank: Annotated[MspId, Field(description="sweep: the header account's bank")] | Absent = None
    header_account: Annotated[AccountId, Field(description="sweep: the group's header account")] | Absent = None
    target_balance: Annotated[
        str,
        Field(
            description="Decimal string in the currency's exponent; 0 keeps the account empty",
            json_schema_extra={"pattern": TARGET_PATTERN, "maxLength": 40},
        ),
        Rule("invalid_amount", 'a decimal string, "0" or greater, such as "12.34"'),
    ] | Absent = None
    top_up: Annotated[bool, Field(description="sweep: fill a shortfall from the header (here only)")] | Absent = None
    on_credit: Annotated[
        bool, Field(description="sweep: also run when a payment lands on the account")
    ] | Absent = None


def _order_id(principal: Principal, key: str) -> str:
    scope = principal.idempotency_scope
    return "so_" + hashlib.sha256(f"standing-order\n{scope}\n{key}".encode()).hexdigest()[:32]


def _required(value: str | None, name: str, code: str = "invalid_request") -> str:
    """A field the order's kind needs (the model takes each as optional: the other kind has none)."""
    if value is None:
        raise bad_request(f"{name} is required", code)
    return value


def _start_at(value: str | None, now: datetime) -> datetime:
    if value is None:
        return now
    if not 10 <= len(value) <= 40:
        raise bad_request("start_at must be an RFC 3339 time such as 2026-12-01T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as error:
        raise bad_request("start_at must be an RFC 3339 time such as 2026-12-01T09:00:00Z") from error
    if parsed.tzinfo is None:
        raise bad_request("start_at must give its offset from UTC (Z or +hh:mm)")
    parsed = parsed.astimezone(UTC)
    if parsed < now - START_TOLERANCE:
        raise bad_request("start_at is in the past")
    if parsed > now + START_HORIZON:
        raise bad_request("start_at is more than a year ahead")
    return parsed


def _target_balance(value: str | None, currency: str, currencies: Currencies) -> int:
    value = _required(value, "target_balance", "invalid_amount")
    exponent = currencies.exponent(currency)
    if _ZERO.fullmatch(value) and len(value.partition(".")[2]) <= exponent:
        return 0  # a zero-balance account, the usual sweep
    try:
        return currencies.parse_amount(value, currency, "target_balance")
    except MoneyError as error:
        raise ApiProblem(400, error.code, error.message) from error


@bp.post("/groups/<group_id>/standing-orders")
@requires(OPERATOR, TREASURER)
@idempotent(required=True)
@accepts(BANK, body=StandingOrderRequest)
def create_standing_order(group_id: str) -> Response:
    _, accounts = _load_group(group_id)
    svc = services()
    currencies = svc.currencies()
    body = body_of(StandingOrderRequest)
    kind = body.kind
    # One model for both kinds: a field of the other kind is refused as unknown, as it would be by
    # a model of this kind alone (given, even as null).
    foreign = sorted(body.model_fields_set & set(_SWEEP_ONLY if kind == so.PAYMENT else _PAYMENT_ONLY))
    if foreign:
        raise bad_request(f"unknown field(s): {', '.join(foreign)}")
    currency = currencies.known(body.currency, "currency")
    every = body.every
    if kind == so.SWEEP and every is None:
        raise bad_request("every is required for a sweep: day, week or month")
    remittance = body.remittance or None
    now = so.StandingOrders(svc).now()
    start_at = _start_at(body.start_at, now)
    amount: int | None = None
    target: int | None = None
    top_up = on_credit = False
    if kind == so.PAYMENT:
        payer = _required(body.from_account, "from_account")
        payee_bank = _required(body.to_bank, "to_bank")
        payee = _required(body.to_account, "to_account")
        amount = currencies.parse_amount(_required(body.amount, "amount", "invalid_amount"), currency, "amount")
        _check_members(accounts, payer, payee_bank, payee, "from_account", "to_account")
    else:
        payer = _required(body.account, "account")
        payee_bank = _required(body.header_bank, "header_bank")
        payee = _required(body.header_account, "header_account")
        target = _target_balance(body.target_balance, currency, currencies)
        top_up, on_credit = bool(body.top_up), bool(body.on_credit)
        _check_members(accounts, payer, payee_bank, payee, "account", "header_account")
        if top_up and payee_bank != svc.msp_id:
            raise bad_request(
                "top_up needs the header account at this bank: a gateway can pay only from its own bank's accounts"
            )
    key = validate_key(request.headers.get(IDEMPOTENCY_HEADER), required=True)
    assert key is not None
    order_id = _order_id(current_principal(), key)
    stamp = utcnow()
    with svc.db.session() as session:
        at_limit = session.scalar(
            select(StandingOrder.order_id).where(StandingOrder.group_id == group_id).offset(MAX_ORDERS_PER_GROUP - 1)
        )
        if at_limit is not None:
            raise bad_request(f"a group may have at most {MAX_ORDERS_PER_GROUP} standing orders")
        order = session.get(StandingOrder, order_id)
        if order is None:
            order = StandingOrder(
                order_id=order_id, group_id=group_id, kind=kind, from_account=payer, to_bank=payee_bank,
                to_account=payee, currency=currency, amount=amount, target_balance=target, top_up=int(top_up),
                on_credit=int(on_credit), every=every, start_at=start_at, next_due_at=start_at, runs_claimed=0,
                status=so.ACTIVE, remittance=remittance, created_at=stamp, updated_at=stamp,
            )  # fmt: skip
            session.add(order)
            session.flush()
            so.notify(
                session, order, "standing_order.created", f"standing_order.created:{order_id}",
                so.order_body(order, currencies),
            )  # fmt: skip
        result = so.order_body(order, currencies)
    return json_response(result, 201, {"Location": f"/v1/groups/{group_id}/standing-orders/{order_id}"})


def _load_order(group_id: str, order_id: str) -> StandingOrder:
    _load_group(group_id)
    path_id(order_id, ORDER_ID, "order_id")
    with services().db.session(write=False) as session:
        order = session.get(StandingOrder, order_id)
        if order is None or order.group_id != group_id:
            raise ApiProblem(404, "standing_order_not_found", "this group has no standing order with this id")
        session.expunge(order)
        return order


@bp.get("/groups/<group_id>/standing-orders")
@requires(OPERATOR, TREASURER)
def list_standing_orders(group_id: str) -> Response:
    _load_group(group_id)
    currencies = services().currencies()
    with services().db.session(write=False) as session:
        rows = session.scalars(
            select(StandingOrder).where(StandingOrder.group_id == group_id).order_by(StandingOrder.created_at)
        ).all()
        orders = [so.order_body(row, currencies) for row in rows]
    return json_response({"standing_orders": orders})


@bp.get("/groups/<group_id>/standing-orders/<order_id>")
@requires(OPERATOR, TREASURER)
def get_standing_order(group_id: str, order_id: str) -> Response:
    order = _load_order(group_id, order_id)
    return json_response(so.order_body(order, services().currencies()))


@bp.get("/groups/<group_id>/standing-orders/<order_id>/runs")
@requires(OPERATOR, TREASURER)
def list_runs(group_id: str, order_id: str) -> Response:
    """The order's runs, newest due first (the latest hundred): paid, failed with the reason, or pending."""
    order = _load_order(group_id, order_id)
    currencies = services().currencies()
    with services().db.session(write=False) as session:
        rows = session.scalars(
            select(StandingOrderRun)
            .where(StandingOrderRun.order_id == order_id)
            .order_by(StandingOrderRun.due_at.desc(), StandingOrderRun.run_id)
            .limit(RUNS_SHOWN)
        ).all()
        runs = [so.run_body(row, order.currency, currencies) for row in rows]
    return json_response({"order_id": order_id, "runs": runs})


@bp.post("/groups/<group_id>/standing-orders/<order_id>/cancellation")
@requires(OPERATOR, TREASURER)
@idempotent(required=False)
@accepts(BANK, body=EmptyRequest, body_required=False)
def cancel_standing_order(group_id: str, order_id: str) -> Response:
    """No further run is claimed; a run already claimed finishes (its payment may be under way)."""
    _load_order(group_id, order_id)
    currencies = services().currencies()
    with services().db.session() as session:
        order = session.get(StandingOrder, order_id)
        assert order is not None
        if order.status == so.ACTIVE:
            order.status, order.next_due_at, order.updated_at = so.CANCELLED, None, utcnow()
            so.notify(
                session, order, "standing_order.cancelled", f"standing_order.cancelled:{order_id}",
                so.order_body(order, currencies),
            )  # fmt: skip
        body = so.order_body(order, currencies)
    return json_response(body)
