"""Block and transaction queries through qscc, and the connect options, against the fake Gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_test_keys import Credentials
from fabric_client import Gateway, Identity, Ledger
from fabric_protos.peer import transaction_pb2
from fake_gateway import QSCC_HEIGHT, QSCC_TX_BLOCK, FakeGateway, connected


@pytest.fixture
def ledger(fake: FakeGateway, credentials: Credentials) -> Iterator[Ledger]:
    with connected(fake, credentials, keepalive_time=120, keepalive_timeout=10) as gateway:
        yield gateway.get_network("tokens").get_ledger()


def test_chain_info_and_height(ledger: Ledger, fake: FakeGateway) -> None:
    assert ledger.chain_info().height == QSCC_HEIGHT
    assert ledger.height() == QSCC_HEIGHT
    assert fake.evaluated[0]["chaincode"] == "qscc"
    assert fake.evaluated[0]["args"] == [b"GetChainInfo", b"tokens"]


def test_block_by_number_sends_the_number_as_text(ledger: Ledger, fake: FakeGateway) -> None:
    assert ledger.block(3).header.number == 3
    assert fake.evaluated[-1]["args"] == [b"GetBlockByNumber", b"tokens", b"3"]


@pytest.mark.parametrize("bad", [-1, True, "3"])
def test_block_number_must_be_a_non_negative_int(ledger: Ledger, bad: object) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        ledger.block(bad)  # type: ignore[arg-type]


def test_block_by_transaction_id_and_hash(ledger: Ledger, fake: FakeGateway) -> None:
    assert ledger.block_by_transaction_id("abc").header.number == QSCC_TX_BLOCK
    assert fake.evaluated[-1]["args"] == [b"GetBlockByTxID", b"tokens", b"abc"]
    assert ledger.block_by_hash(b"\x02" * 32).header.number == QSCC_TX_BLOCK
    assert fake.evaluated[-1]["args"] == [b"GetBlockByHash", b"tokens", b"\x02" * 32]


def test_transaction_by_id_gives_its_validation_code(ledger: Ledger) -> None:
    processed = ledger.transaction("abc")

    assert processed.validationCode == transaction_pb2.MVCC_READ_CONFLICT


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keepalive_time": 0}, "positive"),
        ({"keepalive_time": 60, "keepalive_timeout": -1}, "positive"),
        ({"keepalive_without_calls": True}, "needs keepalive_time"),
    ],
)
def test_bad_keepalive_options_are_refused(credentials: Credentials, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Gateway.connect(
            identity=Identity("USBankMSP", credentials.cert_pem),
            endpoint="127.0.0.1:1",
            insecure=True,
            **options,  # type: ignore[arg-type]
        )
