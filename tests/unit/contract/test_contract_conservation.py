"""Property: whatever happens, and in whatever order transactions race, money is conserved.

Random sequences of blocks; each block holds one to four transactions endorsed on the
same snapshot, so they race exactly as concurrent requests do (some fail MVCC). After
every block, for every currency, the sum of all balances equals the sum of the supplies,
and no balance is negative.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.contract.conftest import BANKS, HK, SG, US, Ledger, new_ledger

ACCOUNTS = {US: ["u0", "u1", "u2"], HK: ["h0", "h1", "h2"], SG: ["s0", "s1", "s2"]}
JURISDICTION = {
    "u0": "US",
    "u1": "US",
    "u2": "CN",
    "h0": "HK",
    "h1": "CN",
    "h2": "CN",
    "s0": "SG",
    "s1": "SG",
    "s2": "US",
}
CURRENCIES = {US: ["USD"], HK: ["USD", "HKD", "CNH"], SG: ["USD", "SGD"]}

bank = st.sampled_from(BANKS)
index = st.integers(0, 2)
amount = st.integers(1, 5000)
operation = st.one_of(
    st.tuples(st.just("issue"), bank, index, amount, st.integers(0, 2)),
    st.tuples(st.just("redeem"), bank, index, amount, st.integers(0, 2)),
    st.tuples(st.just("transfer"), bank, index, index, amount, st.integers(0, 2)),
    st.tuples(st.just("pay"), bank, index, bank, index, amount),
    st.tuples(st.just("complete"), st.integers(0, 50)),
    st.tuples(st.just("reject"), st.integers(0, 50)),
    st.tuples(st.just("refund"), st.integers(0, 50)),
    st.tuples(st.just("freeze"), bank, index),
    st.tuples(
        st.just("expire"),
    ),
    st.tuples(
        st.just("settle"),
    ),
)
blocks = st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=12)


def _build() -> Ledger:
    ledger = new_ledger()
    for owner, accounts in ACCOUNTS.items():
        for account in accounts:
            ledger.open(owner, account, JURISDICTION[account])
    return ledger


class Run:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.payments: list[tuple[str, str, str]] = []  # (payment id, payer bank, payee bank)
        self.counter = 0

    def _ref(self) -> str:
        self.counter += 1
        return f"r{self.counter}"

    def simulate(self, op: tuple[Any, ...]) -> Any:
        ledger = self.ledger
        kind = op[0]
        if kind == "issue":
            _, owner, i, value, c = op
            account = ACCOUNTS[owner][i]
            currency = CURRENCIES[owner][c % len(CURRENCIES[owner])]
            return ledger.simulate(
                owner,
                "Issue",
                {"account_id": account, "currency": currency, "amount": value, "deposit_ref": self._ref()},
            )
        if kind == "redeem":
            _, owner, i, value, c = op
            account = ACCOUNTS[owner][i]
            currency = CURRENCIES[owner][c % len(CURRENCIES[owner])]
            return ledger.simulate(
                owner,
                "Redeem",
                {
                    "account_id": account,
                    "currency": currency,
                    "amount": value,
                    "withdrawal_ref": self._ref(),
                    "pending_credits": ledger.pending(owner, account),
                },
            )
        if kind == "transfer":
            _, owner, i, j, value, c = op
            source, target = ACCOUNTS[owner][i], ACCOUNTS[owner][j]
            currency = CURRENCIES[owner][c % len(CURRENCIES[owner])]
            return ledger.simulate(
                owner,
                "Transfer",
                {
                    "from_account": source,
                    "to_account": target,
                    "currency": currency,
                    "amount": value,
                    "transfer_id": self._ref(),
                    "pending_credits": ledger.pending(owner, source),
                },
            )
        if kind == "pay":
            _, payer_bank, i, payee_bank, j, value = op
            payer = ACCOUNTS[payer_bank][i]
            simulation = ledger.simulate(
                payer_bank,
                "InitiatePayment",
                {
                    "idempotency_key": self._ref(),
                    "payer_account": payer,
                    "payee_bank": payee_bank,
                    "payee_account": ACCOUNTS[payee_bank][j],
                    "currency": "USD",
                    "amount": value,
                    "pending_credits": ledger.pending(payer_bank, payer),
                },
            )
            if simulation.ok:
                self.payments.append((simulation.json()["payment_id"], payer_bank, payee_bank))
            return simulation
        if kind in ("complete", "reject", "refund"):
            if not self.payments:
                return None
            payment_id, payer_bank, payee_bank = self.payments[op[1] % len(self.payments)]
            if kind == "complete":
                return ledger.simulate(payee_bank, "CompletePayment", {"payment_id": payment_id})
            if kind == "reject":
                return ledger.simulate(
                    payee_bank, "RejectPayment", {"payment_id": payment_id, "reason": "test"}
                )
            return ledger.simulate(payer_bank, "RefundPayment", {"payment_id": payment_id})
        if kind == "freeze":
            _, owner, i = op
            return ledger.simulate(
                owner, "FreezeAccount", {"account_id": ACCOUNTS[owner][i], "reason": "test"}
            )
        if kind == "expire":
            ledger.channel.advance(301)
            return None
        if kind == "settle":
            return ledger.channel.simulate(SG, "OpenSettlementCycle", [self._ref()])
        raise AssertionError(kind)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks)
def test_supply_equals_balances_after_every_block(plan: list[list[tuple[Any, ...]]]) -> None:
    run = Run(_build())
    for block in plan:
        simulations = [s for s in (run.simulate(op) for op in block) if s is not None and s.ok]
        run.ledger.channel.commit(simulations)
        run.ledger.assert_conserved()
        for owner, accounts in ACCOUNTS.items():
            for account in accounts:
                assert all(v >= 0 for v in run.ledger.account(owner, account)["balances"].values())


def test_the_property_sees_real_traffic() -> None:
    """A fixed plan through the same machinery, so the property above cannot pass vacuously."""
    run = Run(_build())
    plan: list[list[tuple[Any, ...]]] = [
        [("issue", US, 0, 5000, 0)],
        [("pay", US, 0, HK, 0, 1000), ("issue", US, 1, 300, 0)],
        [("transfer", US, 0, 1, 500, 0)],
        [("complete", 0)],
        [("settle",)],
    ]
    for block in plan:
        simulations = [s for s in (run.simulate(op) for op in block) if s is not None and s.ok]
        assert run.ledger.channel.commit(simulations) == ["VALID"] * len(simulations)
        run.ledger.assert_conserved()
    assert run.ledger.balance(HK, "h0") == 1000
    assert run.ledger.supply()[(US, "USD")] == 5000 - 1000 + 300
    assert (run.ledger.balance(US, "u0"), run.ledger.balance(US, "u1")) == (3500, 800)
