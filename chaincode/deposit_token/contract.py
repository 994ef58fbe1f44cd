"""The deposit-token contract: bank-issued tokens, private books, interbank payments, settlement.

Each function reads top to bottom: who is calling, the private input (transient
``request``) or public arguments, then the money rules in the module named after the
domain (``accounts``, ``tokens``, ``payments``, ``settlement``, ``corridor``,
``reference``, ``supply``). ``docs/contract-api.md`` describes every function for callers.
"""

from __future__ import annotations

from typing import Any

from chaincode.deposit_token import (
    accounts,
    corridor,
    disclosures,
    escrow,
    keys,
    payments,
    pvp,
    reference,
    settlement,
    supply,
    tokens,
)
from chaincode.deposit_token.accounts import Books
from chaincode.deposit_token.errors import refusal
from chaincode.deposit_token.ledger import Ledger
from chaincode.deposit_token.requests import Request, parse_json_argument
from chaincode.shim.contract import Context, Contract, ContractError, query, transaction

Result = dict[str, Any]


def _request(ctx: Context, *fields: str) -> Request:
    return Request.from_transient(ctx.stub.get_transient(), fields)


def _group_request(ctx: Context) -> tuple[Any, ContractError | None]:
    """A group's ``payments`` list as given, or the refusal of its request: raised by ``_group_items``
    after the caller's authority is checked, as every function refuses bad input."""
    try:
        return _request(ctx, "payments").raw("payments"), None
    except ContractError as refused:
        return None, refused


def _group_items(items: Any, bad_request: ContractError | None, maximum: int, what: str) -> list[Any]:
    """The group's items, or the refusal of a bad request or of a list that is not 1 to ``maximum`` long."""
    if bad_request is not None:
        raise bad_request
    if not isinstance(items, list) or not 1 <= len(items) <= maximum:
        raise refusal("invalid_request", f"'payments' must be a list of 1 to {maximum} {what}")
    return items


class DepositTokenContract(Contract):
    name = "deposit_token"
    version = "1.0.0"
    title = "Bank-issued deposit tokens"

    # -- reference data (regulator) -------------------------------------------
    @transaction
    def init_reference_data(self, ctx: Context, reference_data: str) -> Result:
        """Create or extend the reference data (regulator only; idempotent)."""
        ledger = Ledger(ctx.stub)
        return reference.init_reference_data(ctx, ledger, parse_json_argument(reference_data, "reference_data"))

    @transaction
    def set_payment_timeout(self, ctx: Context, seconds: str) -> Result:
        """Set after how many seconds a payer bank may refund an initiated payment (regulator only)."""
        if not seconds.isdigit() or len(seconds) > 9:
            raise refusal("invalid_request", "'seconds' must be a whole number of seconds")
        return reference.set_payment_timeout(ctx, Ledger(ctx.stub), int(seconds))

    @transaction
    def suspend_bank(self, ctx: Context, msp_id: str, reason: str) -> Result:
        """Suspend a bank: no new payment to or from it, no issue or transfer at it (regulator only).

        What is in flight still finishes and the bank still settles; ``reason`` is public.
        """
        return reference.suspend_bank(ctx, Ledger(ctx.stub), msp_id, reason)

    @transaction
    def reinstate_bank(self, ctx: Context, msp_id: str) -> Result:
        """Lift a bank's suspension (regulator only)."""
        return reference.reinstate_bank(ctx, Ledger(ctx.stub), msp_id)

    @transaction
    def set_corridor_policy(self, ctx: Context, policy_json: str) -> Result:
        """Make a new version of the corridor policy the one in force (regulator only).

        {rules, caps?, note?, base_version?}; the version it replaces is kept in the history.
        """
        ledger = Ledger(ctx.stub)
        config = reference.caller_regulator(ctx, ledger, "change the corridor policy")
        return corridor.set_policy(ledger, config, parse_json_argument(policy_json, "policy_json"))

    @query
    def get_corridor_policy(self, ctx: Context) -> Result:
        """The corridor policy in force: version, rules, caps, when and by which transaction it was set."""
        return corridor.public_policy(corridor.load_policy(Ledger(ctx.stub)))

    @query
    def get_corridor_policy_history(self, ctx: Context) -> Result:
        """Every version of the corridor policy, newest first."""
        return {"versions": [corridor.public_policy(version) for version in corridor.history(Ledger(ctx.stub))]}

    @query
    def get_reference_data(self, ctx: Context) -> Result:
        """Regulator, currencies, banks, corridor policy and payment timeout."""
        ledger = Ledger(ctx.stub)
        policy = corridor.public_policy(corridor.load_policy(ledger))
        return {**reference.reference_data(ledger), "corridor_policy": policy}

    @query
    def get_supply(self, ctx: Context) -> Result:
        """Supply of every token class (issuer bank, currency)."""
        ledger = Ledger(ctx.stub)
        return {"token_classes": supply.token_classes(ledger, reference.all_banks(ledger))}

    @query
    def get_supply_changes(self, ctx: Context) -> Result:
        """Ids of up to ``page_size`` supply changes of the caller's own token class, for FoldSupply.

        {currency, page_size?}.
        """
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        config = reference.load_config(ledger)
        request = _request(ctx, "currency", "page_size")
        currency = request.currency(config.currencies)
        limit = request.page_size(default=supply.MAX_FOLD, maximum=supply.MAX_FOLD)
        return {"currency": currency, "change_ids": supply.change_ids(ledger, bank.msp_id, currency, limit)}

    @transaction
    def fold_supply(self, ctx: Context) -> Result:
        """Fold supply changes of the caller's own token class into one (housekeeping; the supply is
        unchanged). {currency, change_ids} with ids from GetSupplyChanges."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        config = reference.load_config(ledger)
        request = _request(ctx, "currency", "change_ids")
        currency = request.currency(config.currencies)
        folded, total = supply.fold(ledger, bank.msp_id, currency, request.change_ids(supply.MAX_FOLD))
        ledger.emit("SupplyFolded", {"bank": bank.msp_id, "currency": currency, "folded": folded})
        return {"currency": currency, "folded": folded, "total": total}

    # -- accounts (bank, on its own peer) -------------------------------------
    @transaction
    def open_account(self, ctx: Context) -> Result:
        """Open an active account: {account_id, holder, jurisdiction, kyc_ref}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "account_id", "holder", "jurisdiction", "kyc_ref")
        account_id = request.account_id()
        holder = request.text("holder", max_length=200)
        jurisdiction = request.jurisdiction()
        kyc_ref = request.text("kyc_ref", max_length=128)
        opened = Books(ledger, bank).open_account(account_id, holder, jurisdiction, kyc_ref)
        if opened:
            ledger.emit("AccountOpened", {"bank": bank.msp_id})
        return {"status": accounts.ACTIVE, "opened": opened}

    @transaction
    def freeze_account(self, ctx: Context) -> Result:
        """Freeze an account: it can neither pay nor be paid. {account_id, reason}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "account_id", "reason")
        account_id = request.account_id()
        reason = request.text("reason", max_length=200)
        books = Books(ledger, bank)
        account = books.require_account(account_id)
        if account.status == accounts.CLOSED:
            raise refusal("account_closed", "a closed account cannot be frozen")
        account.status = accounts.FROZEN
        account.freeze_reason = reason
        books.save_account(account_id, account)
        ledger.emit("AccountFrozen", {"bank": bank.msp_id})
        return {"status": accounts.FROZEN}

    @transaction
    def unfreeze_account(self, ctx: Context) -> Result:
        """Make a frozen account active again. {account_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        account_id = _request(ctx, "account_id").account_id()
        books = Books(ledger, bank)
        account = books.require_account(account_id)
        if account.status != accounts.FROZEN:
            raise refusal("invalid_state", f"the account is {account.status}, not frozen")
        account.status = accounts.ACTIVE
        account.freeze_reason = None
        books.save_account(account_id, account)
        ledger.emit("AccountUnfrozen", {"bank": bank.msp_id})
        return {"status": accounts.ACTIVE}

    @transaction
    def close_account(self, ctx: Context) -> Result:
        """Close a frozen account whose balance is zero. {account_id, revision, pending_credits}.

        Freezing first stops new credits; ``revision`` and ``pending_credits`` must come
        from a ``GetAccount`` made after the freeze, so the close provably sees every credit.
        """
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "account_id", "revision", "pending_credits")
        account_id = request.account_id()
        revision = request.text("revision", max_length=80)
        pending = request.pending_credits()
        books = Books(ledger, bank)
        account = books.require_account(account_id)
        if account.status == accounts.CLOSED:
            return {"status": accounts.CLOSED, "closed": False}
        if account.status != accounts.FROZEN:
            raise refusal("invalid_state", "freeze the account first, so no credit can arrive while it closes")
        if revision != account.revision:
            raise refusal("invalid_state", "'revision' is stale: read the account again after the freeze")
        head = books.head(account_id)
        books.fold(account_id, head, pending)
        left = {ccy: amount for ccy, amount in head.balances.items() if amount != 0}
        if left:
            raise refusal(
                "account_not_empty",
                "the account still holds " + ", ".join(f"{amount} {ccy}" for ccy, amount in sorted(left.items())),
            )
        books.save_head(account_id, head)
        account.status = accounts.CLOSED
        books.save_account(account_id, account)
        ledger.emit("AccountClosed", {"bank": bank.msp_id})
        return {"status": accounts.CLOSED, "closed": True}

    @transaction
    def set_limits(self, ctx: Context) -> Result:
        """Debit limits per currency. {account_id, currency, per_transaction, daily} (null: none)."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config())
        config = reference.load_config(ledger)
        request = _request(ctx, "account_id", "currency", "per_transaction", "daily")
        account_id = request.account_id()
        currency = request.currency(config.currencies)
        per_transaction = request.optional_limit("per_transaction")
        daily = request.optional_limit("daily")
        if not bank.issues(currency):
            raise refusal("currency_not_issued", f"{bank.msp_id} does not issue {currency} tokens")
        books = Books(ledger, bank)
        account = books.require_account(account_id)
        if per_transaction is None and daily is None:
            account.limits.pop(currency, None)
        else:
            account.limits[currency] = accounts.Limits(per_transaction, daily)
        books.save_account(account_id, account)
        ledger.emit("LimitsSet", {"bank": bank.msp_id, "currency": currency})
        return {"currency": currency, "per_transaction": per_transaction, "daily": daily}

    @transaction
    def consolidate_account(self, ctx: Context) -> Result:
        """Fold pending credits into the balance head (housekeeping). {account_id, pending_credits}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "account_id", "pending_credits")
        account_id = request.account_id()
        pending = request.pending_credits()
        books = Books(ledger, bank)
        books.require_account(account_id)
        books.consolidate(account_id, pending)
        ledger.emit("AccountConsolidated", {"bank": bank.msp_id})
        return {"consolidated": True}

    @query
    def get_account(self, ctx: Context) -> Result:
        """The account, its exact balances and its pending credits. {account_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        account_id = _request(ctx, "account_id").account_id()
        books = Books(ledger, bank)
        account = books.require_account(account_id)
        balances, pending = books.balances(account_id)
        return {
            "account_id": account_id,
            **account.as_record(),
            "balances": balances,
            "pending_credits": pending,
        }

    @query
    def get_account_history(self, ctx: Context) -> Result:
        """Movements of an account, newest first. {account_id, page_size, bookmark}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "account_id", "page_size", "bookmark")
        account_id = request.account_id()
        page_size = request.page_size()
        bookmark = request.bookmark()
        books = Books(ledger, bank)
        books.require_account(account_id)
        entries, next_bookmark = books.history(account_id, page_size, bookmark)
        return {"entries": entries, "bookmark": next_bookmark}

    @query
    def get_book_totals(self, ctx: Context) -> Result:
        """The bank's liabilities per currency over all its accounts (reconciles against its supply)."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        balances, accounts_count = Books(ledger, bank).totals()
        return {"bank": bank.msp_id, "balances": balances, "accounts": accounts_count}

    # -- tokens -----------------------------------------------------------------
    @transaction
    def issue(self, ctx: Context) -> Result:
        """Issue the bank's token against a deposit. {account_id, currency, amount, deposit_ref}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config())
        config = reference.load_config(ledger)
        request = _request(ctx, "account_id", "currency", "amount", "deposit_ref")
        return tokens.issue(
            ledger, bank, request.account_id(), request.currency(config.currencies), request.amount(),
            request.reference("deposit_ref"),
        )  # fmt: skip

    @transaction
    def redeem(self, ctx: Context) -> Result:
        """Redeem tokens. {account_id, currency, amount, withdrawal_ref, pending_credits?}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config())
        config = reference.load_config(ledger)
        request = _request(ctx, "account_id", "currency", "amount", "withdrawal_ref", "pending_credits")
        return tokens.redeem(
            ledger, bank, request.account_id(), request.currency(config.currencies), request.amount(),
            request.reference("withdrawal_ref"), request.pending_credits(),
        )  # fmt: skip

    @transaction
    def transfer(self, ctx: Context) -> Result:
        """Move tokens between two accounts of the bank, atomically.

        {from_account, to_account, currency, amount, transfer_id, pending_credits?}.
        """
        ledger = Ledger(ctx.stub)
        # The corridor policy is read once the transfer is known to be new; fetching it
        # with the reference data saves a round trip.
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        config = reference.load_config(ledger)
        request = _request(ctx, "from_account", "to_account", "currency", "amount", "transfer_id", "pending_credits")
        return tokens.transfer(
            ledger, bank, request.account_id("from_account"), request.account_id("to_account"),
            request.currency(config.currencies), request.amount(), request.reference("transfer_id"),
            request.pending_credits(),
        )  # fmt: skip

    # -- interbank payments ---------------------------------------------------
    @transaction
    def initiate_payment(self, ctx: Context) -> Result:
        """Start a payment to another bank's customer (payer bank). See docs/contract-api.md."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        config = reference.load_config(ledger)
        request = _request(ctx, *payments.INITIATE_FIELDS)
        return payments.initiate(ledger, config, bank, request)

    @transaction
    def initiate_payments(self, ctx: Context) -> Result:
        """Start several payments to other banks' customers (payer bank) in one transaction.

        {payments: [InitiatePayment requests]}, at most ``MAX_INITIATION_GROUP``; each is judged
        after the ones before it, and any refusal refuses the whole group (``group_refused``,
        naming each refused item). See docs/contract-api.md.
        """
        ledger = Ledger(ctx.stub)
        items, bad_request = _group_request(ctx)
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        items = _group_items(items, bad_request, payments.MAX_INITIATION_GROUP, "payment requests")
        config = reference.load_config(ledger)
        return payments.initiate_many(ledger, config, bank, items)

    @transaction
    def complete_payment(self, ctx: Context) -> Result:
        """Credit the payee of an initiated payment (payee bank). {payment_id, details, salt}, the
        details and salt as ``GetPaymentDetails`` on the payer bank's peer returned them."""
        ledger = Ledger(ctx.stub)
        # The payment record and the corridor policy are read next: fetched with the caller's
        # bank when the request names a valid payment id (a bad request is refused below,
        # after the authority check, as before).
        try:
            candidate = payments.parse_payment_id(_request(ctx, *payments.COMPLETE_FIELDS).raw("payment_id"))
            also_read = [keys.payment(candidate), keys.corridor()]
        except ContractError:
            also_read = []
        bank = reference.caller_bank(ctx, ledger, *also_read)
        request = _request(ctx, *payments.COMPLETE_FIELDS)
        return payments.complete(ledger, bank, payments.parse_payment_id(request.raw("payment_id")), request)

    @transaction
    def complete_payments(self, ctx: Context) -> Result:
        """Credit the payees of several initiated payments (payee bank) in one transaction.

        {payments: [{payment_id, details, salt}, ...]}, at most ``MAX_COMPLETION_GROUP``; each item
        completes or is refused on its own (``results``, in order). See docs/contract-api.md.
        """
        ledger = Ledger(ctx.stub)
        items, bad_request = _group_request(ctx)
        named = [item.get("payment_id") for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        # Each item's record is read next: one request for all of them with the caller's bank.
        also_read = [keys.corridor(), *payments.record_keys(named[: payments.MAX_COMPLETION_GROUP])]
        bank = reference.caller_bank(ctx, ledger, *also_read)
        items = _group_items(items, bad_request, payments.MAX_COMPLETION_GROUP, "completion requests")
        return payments.complete_many(ledger, bank, items)

    @transaction
    def reject_payment(self, ctx: Context) -> Result:
        """Refuse an initiated payment (payee bank). {payment_id, reason} with reason a public code."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "payment_id", "reason")
        payment_id = payments.parse_payment_id(request.raw("payment_id"))
        return payments.reject(ledger, bank, payment_id, request.text("reason", max_length=40))

    @transaction
    def refund_payment(self, ctx: Context) -> Result:
        """Credit the payer back (payer bank): a rejected payment, or an initiated one past the timeout."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config())
        config = reference.load_config(ledger)
        payment_id = payments.parse_payment_id(_request(ctx, "payment_id").raw("payment_id"))
        return payments.refund(ledger, config, bank, payment_id)

    @query
    def get_payment(self, ctx: Context, payment_id: str) -> Result:
        """The public record; the two banks may ask for the private details with {"details": true}."""
        ledger = Ledger(ctx.stub)
        payment_id = payments.parse_payment_id(payment_id)
        request = Request.from_transient_or_empty(ctx.stub.get_transient(), ["details"])
        with_details = request.flag("details")
        caller = reference.caller_bank(ctx, ledger) if with_details else None
        return payments.get_payment(ledger, payment_id, caller, with_details)

    @query
    def get_payment_details(self, ctx: Context, payment_id: str) -> Result:
        """The details and salt of a payment from this peer's bank's books, for a client of the payer
        or the payee bank: the payee bank's gateway asks the payer bank's peer before completing."""
        ledger = Ledger(ctx.stub)
        payment_id = payments.parse_payment_id(payment_id)
        holder = reference.peer_bank(ctx, ledger, keys.payment(payment_id))
        return payments.payment_details(ledger, holder, ctx.client_identity.msp_id, payment_id)

    @query
    def get_payments_details(self, ctx: Context, ids_json: str) -> Result:
        """``GetPaymentDetails`` for several payments at once: {payment_ids: [...]}, 1 to 50 of them;
        one answer or refusal per id, in order (a completing payee bank's group, decision 0037)."""
        ledger = Ledger(ctx.stub)
        ids = parse_json_argument(ids_json, "ids_json").get("payment_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= payments.MAX_COMPLETION_GROUP:
            raise refusal(
                "invalid_request", f"'payment_ids' must be a list of 1 to {payments.MAX_COMPLETION_GROUP} payment ids"
            )
        holder = reference.peer_bank(ctx, ledger, *payments.record_keys(ids))
        return {"details": payments.payments_details(ledger, holder, ctx.client_identity.msp_id, ids)}

    @query
    def list_payments(self, ctx: Context, filter_json: str = "{}") -> Result:
        """Payment records, newest first: {bank?, payer_bank?, payee_bank?, status?, currency?,
        min_amount?, max_amount?, since?, until?, page_size?, bookmark?, scan_limit?}."""
        ledger = Ledger(ctx.stub)
        data = parse_json_argument(filter_json, "filter_json")
        request = Request(data, payments.LIST_FIELDS)
        currencies = reference.load_config(ledger).currencies if request.has("currency") else {}
        where = payments.parse_list_filter(data, currencies)
        return payments.list_payments(ledger, where, request.page_size(), request.bookmark())

    # -- escrow (payer bank, on its own books) ------------------------------------
    @transaction
    def lock_escrow(self, ctx: Context) -> Result:
        """Lock an amount for a named payee under release terms. See docs/contract-api.md."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        config = reference.load_config(ledger)
        return escrow.lock(ledger, config, bank, _request(ctx, *escrow.LOCK_FIELDS))

    @transaction
    def release_escrow(self, ctx: Context) -> Result:
        """Release part or all of an open escrow. {escrow_id, release_id, amount, by, attestor?}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        config = reference.load_config(ledger)
        return escrow.release(ledger, config, bank, _request(ctx, *escrow.RELEASE_FIELDS))

    @transaction
    def expire_escrow(self, ctx: Context) -> Result:
        """Settle an escrow past its expiry as its terms say (refund or release). {escrow_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.corridor())
        return escrow.expire(ledger, bank, escrow.parse_escrow_id(_request(ctx, "escrow_id").raw("escrow_id")))

    @query
    def get_escrow(self, ctx: Context) -> Result:
        """An escrow of the caller bank: terms, amounts locked, released, refunded, releases. {escrow_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        return escrow.get(ledger, bank, escrow.parse_escrow_id(_request(ctx, "escrow_id").raw("escrow_id")))

    @query
    def list_due_escrows(self, ctx: Context, limit: str = "100") -> Result:
        """Ids of the caller bank's open escrows past their expiry, soonest first (for the sweeper)."""
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise refusal("invalid_request", "'limit' must be a whole number from 1 to 1000")
        ledger = Ledger(ctx.stub)
        return escrow.due(ledger, reference.caller_bank(ctx, ledger), int(limit))

    # -- payment versus payment (the two banks of the trade) ------------------------
    @transaction
    def propose_pvp(self, ctx: Context) -> Result:
        """Offer an exchange and lock the proposer's leg (proposer bank). See docs/contract-api.md."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.config(), keys.corridor())
        config = reference.load_config(ledger)
        return pvp.propose(ledger, config, bank, _request(ctx, *pvp.PROPOSE_FIELDS))

    @transaction
    def accept_pvp(self, ctx: Context) -> Result:
        """Lock the counterparty's leg (acceptor bank): the point of no return. {pvp_id, payer_account}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger, keys.corridor())
        return pvp.accept(ledger, bank, _request(ctx, *pvp.ACCEPT_FIELDS))

    @transaction
    def refuse_pvp(self, ctx: Context) -> Result:
        """Decline an offer (acceptor bank). {pvp_id, reason} with reason a public code."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        request = _request(ctx, "pvp_id", "reason")
        return pvp.refuse(ledger, bank, pvp.parse_pvp_id(request.raw("pvp_id")), request.text("reason", max_length=40))

    @transaction
    def deliver_pvp_leg(self, ctx: Context) -> Result:
        """Credit the caller bank's leg once both legs are locked. {pvp_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        return pvp.deliver(ledger, bank, pvp.parse_pvp_id(_request(ctx, "pvp_id").raw("pvp_id")))

    @transaction
    def refund_pvp_leg(self, ctx: Context) -> Result:
        """Return the proposer's leg of a refused or expired offer (proposer bank). {pvp_id}."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        return pvp.refund(ledger, bank, pvp.parse_pvp_id(_request(ctx, "pvp_id").raw("pvp_id")))

    @query
    def get_pvp(self, ctx: Context, pvp_id: str) -> Result:
        """The public record; the two banks may ask for the settlement accounts with {"details": true}."""
        ledger = Ledger(ctx.stub)
        pvp_id = pvp.parse_pvp_id(pvp_id)
        with_details = Request.from_transient_or_empty(ctx.stub.get_transient(), ["details"]).flag("details")
        caller = reference.caller_bank(ctx, ledger) if with_details else None
        return pvp.get(ledger, pvp_id, caller, with_details)

    @query
    def get_pvp_details(self, ctx: Context, pvp_id: str) -> Result:
        """The four settlement accounts and their salt from this peer's bank's books, for a client of
        either bank of the PvP: the acceptor bank's gateway asks the proposer bank's peer."""
        ledger = Ledger(ctx.stub)
        pvp_id = pvp.parse_pvp_id(pvp_id)
        return pvp.counterparty_details(ledger, reference.peer_bank(ctx, ledger), ctx.client_identity.msp_id, pvp_id)

    @query
    def list_open_pvps(self, ctx: Context, bank: str, limit: str = "100") -> Result:
        """A bank's PvPs still waiting for a step, newest first."""
        if not isinstance(bank, str) or not reference.MSP_ID.fullmatch(bank):
            raise refusal("invalid_request", "'bank' must be an MSP id")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise refusal("invalid_request", "'limit' must be a whole number from 1 to 1000")
        return pvp.list_open(Ledger(ctx.stub), bank, int(limit))

    # -- settlement -------------------------------------------------------------
    @transaction
    def open_settlement_cycle(self, ctx: Context, cycle_id: str) -> Result:
        """Net every completed, unsettled payment into a new cycle (any bank or the regulator)."""
        ledger = Ledger(ctx.stub)
        org = reference.caller_org(ctx)
        if reference.load_bank(ledger, org) is None and org != reference.load_config(ledger).regulator:
            raise refusal("not_authorized", f"{org} is neither a registered bank nor the regulator")
        return settlement.open_cycle(ledger, org, cycle_id)

    @transaction
    def confirm_settlement(self, ctx: Context, cycle_id: str, external_ref: str) -> Result:
        """Confirm the caller bank's leg of a cycle, after reconciling it with the bank's books."""
        ledger = Ledger(ctx.stub)
        bank = reference.caller_bank(ctx, ledger)
        return settlement.confirm(ledger, bank, cycle_id, external_ref)

    @query
    def get_settlement_cycle(self, ctx: Context, cycle_id: str) -> Result:
        """A cycle with its payments, net positions and confirmations."""
        return settlement.get_cycle(Ledger(ctx.stub), cycle_id)

    @query
    def list_settlement_cycles(self, ctx: Context) -> Result:
        """Every settlement cycle, oldest first."""
        return settlement.list_cycles(Ledger(ctx.stub))

    # -- disclosure on request (regulator asks, a bank of the payment answers) ------------
    @transaction
    def request_disclosure(self, ctx: Context, payment_id: str, legal_basis: str) -> Result:
        """Ask the payment's banks for its private details, on a public legal basis (regulator only)."""
        ledger = Ledger(ctx.stub)
        config = reference.caller_regulator(ctx, ledger, "request a disclosure")
        return disclosures.request(ledger, config, payment_id, legal_basis)

    @transaction
    def approve_disclosure(self, ctx: Context, request_id: str) -> Result:
        """Deliver the payment's details and salt to the regulator only (payer or payee bank)."""
        ledger = Ledger(ctx.stub)
        return disclosures.approve(ledger, reference.caller_bank(ctx, ledger, keys.config()), request_id)

    @transaction
    def refuse_disclosure(self, ctx: Context, request_id: str, reason: str) -> Result:
        """Refuse a disclosure request, with a public reason (payer or payee bank)."""
        ledger = Ledger(ctx.stub)
        return disclosures.refuse(ledger, reference.caller_bank(ctx, ledger, keys.config()), request_id, reason)

    @query
    def get_disclosure(self, ctx: Context, request_id: str) -> Result:
        """A request with each bank's answer; {"details": true} adds what was delivered (regulator, or the bank)."""
        ledger = Ledger(ctx.stub)
        with_details = Request.from_transient_or_empty(ctx.stub.get_transient(), ["details"]).flag("details")
        return disclosures.get(ctx, ledger, request_id, with_details)

    @query
    def list_disclosures(self, ctx: Context, filter_json: str = "{}") -> Result:
        """Disclosure requests, oldest first: {bank?, status?} (status of that bank's answer, or any)."""
        data = parse_json_argument(filter_json, "filter_json")
        Request(data, ["bank", "status"])
        bank = data.get("bank")
        if bank is not None and (not isinstance(bank, str) or not reference.MSP_ID.fullmatch(bank)):
            raise refusal("invalid_request", "'bank' must be an MSP id")
        return disclosures.list_requests(Ledger(ctx.stub), bank, data.get("status"))
