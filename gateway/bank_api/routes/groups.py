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
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from gateway.bank_api import representations
from gateway.bank_api import standing_orders as so
from gateway.bank_api.app import services
from gateway.bank_api.auth import OPERATOR, TREASURER, Principal, current_principal, requires
from gateway.bank_api.idempotency import validate_key
from gateway.bank_api.money import Currencies, MoneyError
from gateway.bank_api.problems import ApiProblem
from gateway.bank_api.routes.common import IDEMPOTENCY_HEADER, idempotent, json_response
from gateway.bank_api.routes.payments import REMITTANCE_MAX, pay_elsewhere, pay_here
from gateway.bank_api.storage.models import CorporateGroup, GroupAccount, StandingOrder, StandingOrderRun, utcnow
from gateway.bank_api.validation import ACCOUNT_ID, MSP_ID, Fields, bad_request, json_object, path_id

bp = Blueprint("groups", __name__, url_prefix="/v1")

GROUP_ID, ORDER_ID = so.GROUP_ID, so.ORDER_ID
MAX_GROUP_ACCOUNTS = 200
MAX_ORDERS_PER_GROUP = 500
RUNS_SHOWN = 100
# A start this far in the past is refused: a payment order would otherwise pay every period since.
START_TOLERANCE = timedelta(minutes=5)
START_HORIZON = timedelta(days=366)
_ZERO = re.compile(r"^0(\.0+)?$")


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


@bp.post("/groups")
@requires(OPERATOR)
@idempotent(required=False)
def create_group() -> Response:
    fields = Fields(json_object(), ("group_id", "name"))
    group_id = fields.required_text("group_id", pattern=GROUP_ID, max_length=48, what="a-z, 0-9, _ and -")
    name = fields.required_text("name", max_length=128)
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


@bp.post("/groups/<group_id>/accounts")
@requires(OPERATOR)
@idempotent(required=False)
def add_account(group_id: str) -> Response:
    """Add an entity's account; one at this bank must exist here, one elsewhere is taken as named."""
    group, accounts = _load_group(group_id)
    fields = Fields(json_object(), ("bank", "account_id"))
    svc = services()
    bank = fields.text("bank", pattern=MSP_ID, max_length=64, required=False, what="an MSP id") or svc.msp_id
    account_id = fields.required_text("account_id", pattern=ACCOUNT_ID, max_length=64)
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


@bp.post("/groups/<group_id>/api-keys")
@requires(OPERATOR)
def create_treasurer_key(group_id: str) -> Response:
    """The group treasurer's key: the group's balances here, payments and standing orders between its accounts."""
    _load_group(group_id)
    fields = Fields(json_object(), ("label",))
    label = fields.text("label", max_length=128, required=False) or f"treasurer key {secrets.token_hex(2)}"
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


@bp.post("/groups/<group_id>/payments")
@requires(TREASURER)
@idempotent(required=True)
def group_payment(group_id: str) -> Response:
    """The treasurer pays from a group account here to another group account, here or elsewhere."""
    _, accounts = _load_group(group_id)
    svc = services()
    currencies = svc.currencies()
    fields = Fields(json_object(), ("from_account", "to_bank", "to_account", "currency", "amount", "remittance"))
    from_account = fields.required_text("from_account", pattern=ACCOUNT_ID, max_length=64)
    to_bank = fields.required_text("to_bank", pattern=MSP_ID, max_length=64, what="an MSP id")
    to_account = fields.required_text("to_account", pattern=ACCOUNT_ID, max_length=64)
    currency = fields.currency("currency", currencies)
    assert currency is not None
    amount = fields.amount("amount", currency, currencies)
    assert amount is not None
    remittance = fields.text("remittance", max_length=REMITTANCE_MAX, required=False) or None
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

_COMMON = ("kind", "currency", "every", "start_at", "remittance")
_PAYMENT_FIELDS = (*_COMMON, "from_account", "to_bank", "to_account", "amount")
_SWEEP_FIELDS = (*_COMMON, "account", "header_bank", "header_account", "target_balance", "top_up", "on_credit")


def _order_id(principal: Principal, key: str) -> str:
    scope = principal.idempotency_scope
    return "so_" + hashlib.sha256(f"standing-order\n{scope}\n{key}".encode()).hexdigest()[:32]


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false")
    return value


def _start_at(body: dict[str, Any], now: datetime) -> datetime:
    value = body.get("start_at")
    if value is None:
        return now
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
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


def _target_balance(body: dict[str, Any], currency: str, currencies: Currencies) -> int:
    value = body.get("target_balance")
    if value is None:
        raise bad_request("target_balance is required", "invalid_amount")
    exponent = currencies.exponent(currency)
    if isinstance(value, str) and _ZERO.match(value) and len(value.partition(".")[2]) <= exponent:
        return 0  # a zero-balance account, the usual sweep
    try:
        return currencies.parse_amount(value, currency, "target_balance")
    except MoneyError as error:
        raise ApiProblem(400, error.code, error.message) from error


@bp.post("/groups/<group_id>/standing-orders")
@requires(OPERATOR, TREASURER)
@idempotent(required=True)
def create_standing_order(group_id: str) -> Response:
    _, accounts = _load_group(group_id)
    svc = services()
    currencies = svc.currencies()
    body = json_object()
    kind = body.get("kind")
    if kind not in so.KINDS:
        raise bad_request("kind must be payment or sweep")
    fields = Fields(body, _PAYMENT_FIELDS if kind == so.PAYMENT else _SWEEP_FIELDS)
    currency = fields.currency("currency", currencies)
    assert currency is not None
    every = body.get("every")
    if every is not None and every not in so.EVERY:
        raise bad_request("every must be day, week or month (or null: once)")
    if kind == so.SWEEP and every is None:
        raise bad_request("every is required for a sweep: day, week or month")
    remittance = fields.text("remittance", max_length=REMITTANCE_MAX, required=False) or None
    now = so.StandingOrders(svc).now()
    start_at = _start_at(body, now)
    amount: int | None = None
    target: int | None = None
    top_up = on_credit = False
    if kind == so.PAYMENT:
        payer = fields.required_text("from_account", pattern=ACCOUNT_ID, max_length=64)
        payee_bank = fields.required_text("to_bank", pattern=MSP_ID, max_length=64, what="an MSP id")
        payee = fields.required_text("to_account", pattern=ACCOUNT_ID, max_length=64)
        amount = fields.amount("amount", currency, currencies)
        _check_members(accounts, payer, payee_bank, payee, "from_account", "to_account")
    else:
        payer = fields.required_text("account", pattern=ACCOUNT_ID, max_length=64)
        payee_bank = fields.required_text("header_bank", pattern=MSP_ID, max_length=64, what="an MSP id")
        payee = fields.required_text("header_account", pattern=ACCOUNT_ID, max_length=64)
        target = _target_balance(body, currency, currencies)
        top_up, on_credit = _flag(body, "top_up"), _flag(body, "on_credit")
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
def cancel_standing_order(group_id: str, order_id: str) -> Response:
    """No further run is claimed; a run already claimed finishes (its payment may be under way)."""
    _load_order(group_id, order_id)
    Fields(json_object(), ())
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
