"""The consortium changes while it runs, with REST payments flowing through every change.

A network of its own (ports 19700+): the changes are permanent (a bank joins for good), so the
shared test network stays as the other tests expect it. Each test ends with every payment the
flow sent in a final state, every flow account's balance matching the completed payments, and
each issuer's supply equal to what it owes its customers.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from fabric_client import Gateway, GatewayError
from fabric_client.identity import Identity
from fabric_client.profile import connect_org, load_profile
from fabric_client.signer import ECDSASigner

from network import channel_config
from network.channel_config import ConfigUpdateError
from network.consortium import Consortium, NetworkError
from network.credentials import reissue_client, restart_gateway, revoke, rotate_peer_tls
from network.material import MaterialError
from network.membership import BankJoin, NewBank, running_topology
from network.org import CLIENT
from network.topology import DEFAULT_TOPOLOGY, load_topology
from network.upgrade import upgrade_chaincode
from tests.integration import upgraded_deposit_token as upgraded
from tests.integration.bank_api_support import BankGateway, gateways_of, ready_gateways, unique, wait_for
from tests.integration.deposit_token_support import Org as ClientOrg
from tests.integration.deposit_token_support import Refused
from tests.integration.payment_flow import PaymentFlow

ROOT = Path(__file__).resolve().parents[2]
BASE = int(os.environ.get("DT_TEST_CHANGES_PORT", "19700"))
STATE = (ROOT / ".state" / f"changes-{BASE}").resolve()
EU = "EUBankMSP"
JP = "JPBankMSP"
FOUNDERS = ("USBankMSP", "HKBankMSP", "SGBankMSP")

pytestmark = pytest.mark.network


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BANK_API_WEBHOOK_ALLOWED_TARGETS": "127.0.0.1"}
    return subprocess.run(
        [sys.executable, "-m", "network", "--base-port", str(BASE), "--state-dir", str(STATE), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def consortium() -> Consortium:
    """The running consortium as its live topology describes it (with the banks that joined)."""
    return Consortium(load_topology(running_topology(STATE, DEFAULT_TOPOLOGY)), STATE, BASE, progress=print)


def gateways() -> dict[str, BankGateway]:
    return gateways_of(json.loads((STATE / "profile.json").read_text()))


@pytest.fixture(scope="module")
def flow() -> Iterator[PaymentFlow]:
    """The network, up, with payments flowing between the founding banks."""
    cli("down")
    result = cli("up")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = ready_gateways(json.loads((STATE / "profile.json").read_text()))
    payments = PaymentFlow({})
    for msp_id in FOUNDERS:
        payments.add_bank(msp_id, found[msp_id])
    payments.start()
    try:
        yield payments
    finally:
        payments.stop()
        cli("down")


def _evaluate(msp_id: str, function: str) -> Any:
    org = ClientOrg(msp_id, connect_org(STATE / "profile.json", msp_id))
    try:
        return org.evaluate(function)
    finally:
        org.gateway.close()


Gaps = list[tuple[str, dict[str, int], dict[str, int]]]


def _supplies(banks: list[str], reader: str | None) -> dict[tuple[str, str], int]:
    """Every bank's supply per currency, read on ``reader``'s peer (each issuer's own when None)."""
    supply: dict[tuple[str, str], int] = {}
    viewed = _evaluate(reader, "GetSupply")["token_classes"] if reader is not None else None
    for bank in banks:
        classes = viewed if viewed is not None else _evaluate(bank, "GetSupply")["token_classes"]
        supply |= {(c["issuer"], c["currency"]): c["supply"] for c in classes if c["issuer"] == bank and c["supply"]}
    return supply


def supply_gaps(banks: list[str], reader: str | None = None) -> tuple[dict[str, int], Gaps] | None:
    """Each issuer's supply, read on ``reader``'s peer (the issuer's own when None), and the banks whose
    book totals differ from it; None when the ledger moved while it was read.

    Books and supply are two queries, and a payment the gateways complete after the flow paused (a
    retried completion, say) can commit between them. Supply is read before and after the books, and
    only a read during which it did not change is compared.
    """
    before = _supplies(banks, reader)
    books = {bank: {c: a for c, a in _evaluate(bank, "GetBookTotals")["balances"].items() if a} for bank in banks}
    if _supplies(banks, reader) != before:
        return None
    gaps = []
    for bank in banks:
        issued = {currency: amount for (issuer, currency), amount in before.items() if issuer == bank}
        if books[bank] != issued:
            gaps.append((bank, books[bank], issued))
    return {f"{issuer}/{currency}": amount for (issuer, currency), amount in before.items()}, gaps


def settled_gaps(banks: list[str], reader: str | None, timeout: float) -> tuple[dict[str, int], Gaps]:
    """The first read during which nothing moved and books matched supply, or the last one at the deadline."""
    last: list[tuple[dict[str, int], Gaps]] = []

    def agreed() -> bool:
        read = supply_gaps(banks, reader)
        if read is None:
            return False
        last[:] = [read]
        return not read[1]

    wait_for(agreed, timeout=timeout, interval=1)
    assert last, f"the ledger kept moving for {timeout:.0f}s while books and supply were read"
    return last[0]


def conserved(banks: list[str], flow: PaymentFlow) -> dict[str, int]:
    """Each issuer's supply equals its book totals: exactly on its own peer, and on the regulator's
    (its supervisory view) once private data has reached it.

    Every cross-bank payment moves supply, so the flow pauses for the check, and the reads repeat
    until in-flight payments finished. The regulator's peer receives supply changes by gossip and,
    when it missed one, by reconciliation; the figure says how long it lagged.
    """
    flow.stop()
    try:
        supply, gaps = settled_gaps(banks, None, timeout=90)
        assert not gaps, (gaps, {bank: _privdata_log(bank) for bank, _, _ in gaps})
        started = time.monotonic()
        _, lagging = settled_gaps(banks, "RegulatorMSP", timeout=240)
        print(f"FIGURE regulator's supply view caught up after {time.monotonic() - started:.1f}s")
        assert not lagging, (lagging, _privdata_log("RegulatorMSP"))
        return supply
    finally:
        flow.start()


def _privdata_log(msp_id: str) -> str:
    """The private-data lines of the org's peer log, for a failure's message."""
    log = STATE / "logs" / f"peer.{msp_id}.log"
    if not log.exists():
        candidates = sorted(STATE.glob(f"**/logs/peer.{msp_id}.log"))
        log = candidates[0] if candidates else log
    if not log.exists():
        return f"(no log at {log})"
    lines = [
        line for line in log.read_text(errors="replace").splitlines() if "privdata" in line or "pvtdata" in line.lower()
    ]
    return "\n".join(lines[-30:])


def test_a_bank_joins_while_payments_flow(flow: PaymentFlow) -> None:
    net = consortium()
    wait_for(lambda: flow.count() >= 6, timeout=120)
    started, sent_before = time.monotonic(), flow.count()
    # EUBank runs an ordering node too: it joins the Raft consenter set in the same update
    eubank = NewBank(name="EUBank", msp_id=EU, jurisdiction="EU", currencies=("EUR",), host="127.0.0.6", orderers=1)
    join = BankJoin(net.topology, STATE, BASE, eubank, progress=print)
    join.prepare()
    summary = join.propose()
    assert {r["policy"] for r in summary["requirements"]} == {"/Channel/Application/Admins", "/Channel/Orderer/Admins"}
    assert "/Channel/Orderer/ConsensusType" in {r["modifies"] for r in summary["requirements"]}

    # Two of the four members sign: the tool refuses before sending, naming how many are missing.
    us, hk, sg, regulator = (join.net.topology.org(m) for m in (*FOUNDERS, "RegulatorMSP"))
    join.sign([us, regulator])
    with pytest.raises(ConfigUpdateError) as refused:
        join.submit(regulator)
    assert "/Channel/Application/Admins" in str(refused.value)
    assert "1 more signature missing" in str(refused.value)
    assert "HKBankMSP" in str(refused.value) and "SGBankMSP" in str(refused.value)
    # Sent anyway, the orderer refuses it too, and the channel is unchanged.
    with pytest.raises(MaterialError) as rejected:
        channel_config.submit(join.net, join.update_dir, regulator, force=True)
    assert "not satisfied" in str(rejected.value) or "policy" in str(rejected.value), rejected.value
    assert not join.is_member()

    # A signature over something else does not count: the file is refused by name.
    forged = join.update_dir / channel_config.SIGNATURES / "SGBankMSP.sig"
    other = join.update_dir.parent / "other"
    other.mkdir(exist_ok=True)
    (other / channel_config.UPDATE_FILE).write_bytes(b"not this update")
    forged.write_bytes(channel_config.sign_as_org(join.net, other, sg).read_bytes())
    with pytest.raises(ConfigUpdateError, match=r"SGBankMSP\.sig: the signature of SGBankMSP does not match"):
        join.submit(regulator)
    forged.unlink()

    join.sign([hk])  # the third of four: a majority
    join.submit(regulator)
    assert join.is_member()
    join.join()
    info = join.net.orderer_channel_info(f"orderer0.{EU}")
    assert (info["consensusRelation"], info["status"]) == ("consenter", "active"), info
    join.chaincode()
    join.register()
    join.gateway()
    eu_gateway = gateways()[EU]
    assert wait_for(eu_gateway.ready, timeout=60)
    sent_at_join = flow.count()
    flow.add_bank(EU, eu_gateway)
    first = flow.wait_completed_since(sent_at_join, EU, timeout=180)
    to_first_payment = time.monotonic() - started
    during = sent_at_join - sent_before
    print(f"\nFIGURE add-bank: {to_first_payment:.1f}s from the start of the join to the first completed payment "
          f"of EUBank ({first.payer_bank} -> {first.payee_bank}); {during} payments sent during the join")  # fmt: skip

    # EUBank pays and is paid by every founding bank.
    wanted = {(EU, bank) for bank in FOUNDERS} | {(bank, EU) for bank in FOUNDERS}

    def completed_pairs() -> set[tuple[str, str]]:
        return {(s.payer_bank, s.payee_bank) for s in list(flow.sent)
                if (s.payer_bank, s.payee_bank) in wanted and flow.status(s) == "completed"}  # fmt: skip

    wait_for(lambda: completed_pairs() == wanted, timeout=240, interval=2)
    assert completed_pairs() == wanted

    # A second join of the same bank is refused, by the tool and by the channel.
    again = cli("add-bank", "--name", "EUBank", "--msp-id", EU, "--jurisdiction", "EU", "--currencies", "EUR")
    assert again.returncode == 1 and "already a member of the consortium" in again.stderr, again.stderr
    with pytest.raises(ConfigUpdateError, match="already a member of channel"):
        join.propose()

    # The regulator's supply view shows the new bank's tokens.
    supply = conserved([*FOUNDERS, EU], flow)
    assert supply.get(f"{EU}/EUR", 0) > 0, supply

    # EUBank takes part in the next settlement cycle and confirms its leg.
    banks = gateways()
    cycle_id = unique("cycle")
    opened = wait_for(
        lambda: (r := banks["USBankMSP"].post("/v1/settlement-cycles", {"cycle_id": cycle_id})).status_code != 503
        and r, timeout=300)  # fmt: skip
    assert opened and opened.status_code == 201, opened.text if opened else "503 throughout"
    cycle = opened.json()
    assert EU in cycle["banks"], cycle["banks"]
    for currency in {ccy for by_ccy in cycle["positions"].values() for ccy in by_ccy}:
        assert sum(Decimal(by.get(currency, "0")) for by in cycle["positions"].values()) == 0
    for msp_id in cycle["banks"]:
        confirmed = confirm(banks[msp_id], cycle_id)
        assert confirmed.status_code == 200, confirmed.text
    assert banks["USBankMSP"].get(f"/v1/settlement-cycles/{cycle_id}").json()["status"] == "settled"

    figures = flow.settle_and_check()
    print(f"FIGURE add-bank payments: {figures}")
    assert figures["completed"] > during
    conserved([*FOUNDERS, EU], flow)
    # the live topology lists the bank, so the network tool sees its nodes
    status = cli("status", "--json")
    names = {node["name"] for node in json.loads(status.stdout)["nodes"]}
    assert {f"peer.{EU}", f"gateway.{EU}", f"cc.deposit_token.{EU}"} <= names


def test_a_second_bank_joins_from_a_snapshot_with_one_command(flow: PaymentFlow) -> None:
    """``add-bank --from-snapshot``: the new peer starts from a member's ledger snapshot, not block 0."""
    result = cli("add-bank", "--name", "JPBank", "--msp-id", JP, "--jurisdiction", "JP", "--currencies", "JPY",
                 "--host", "127.0.0.7", "--from-snapshot")  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "snapshot at block" in result.stdout and "JPBank joined the running consortium" in result.stdout
    net = consortium()
    assert [org.msp_id for org in net.topology.joined_banks] == [EU, JP]
    jp_gateway = gateways()[JP]
    assert wait_for(jp_gateway.ready, timeout=60)
    sent = flow.count()
    flow.add_bank(JP, jp_gateway)
    flow.wait_completed_since(sent, JP, timeout=180)
    wanted = {(JP, EU), (EU, JP), (JP, "USBankMSP"), ("USBankMSP", JP)}
    wait_for(lambda: wanted <= {(s.payer_bank, s.payee_bank) for s in list(flow.sent) if flow.status(s) == "completed"},
             timeout=240, interval=2)  # fmt: skip
    figures = flow.settle_and_check()
    print(f"\nFIGURE add-bank from a snapshot (one command): {figures}")
    conserved([org.msp_id for org in net.topology.banks], flow)


def confirm(bank: BankGateway, cycle_id: str) -> requests.Response:
    """Confirm the bank's leg, retrying 503s (the same reference again is a no-op at the contract), and a
    404 while the bank's own peer has not committed the block that opened the cycle yet."""
    reference, deadline = unique("rtgs"), time.monotonic() + 300
    while True:
        response = bank.post(f"/v1/settlement-cycles/{cycle_id}/confirmation", {"external_ref": reference})
        if response.status_code not in (503, 404) or time.monotonic() > deadline:
            return response
        time.sleep(1)


def test_join_refused_for_unknown_currency() -> None:
    """A bank whose currency the consortium does not know is refused before anything changes."""
    net = consortium()
    strange = NewBank(name="ChBank", msp_id="ChBankMSP", jurisdiction="CH", currencies=("CHF",), host="127.0.0.7")
    with pytest.raises(NetworkError, match="CHF"):
        BankJoin(net.topology, STATE, BASE, strange)
    assert "ChBankMSP" not in running_topology(STATE, DEFAULT_TOPOLOGY).read_text()


def test_the_chaincode_is_upgraded_while_payments_flow(flow: PaymentFlow) -> None:
    net = consortium()
    banks = [org.msp_id for org in net.topology.banks]
    us = ClientOrg("USBankMSP", connect_org(STATE / "profile.json", "USBankMSP"))
    try:
        with pytest.raises(Refused):
            us.evaluate("GetContractVersion")
        wait_for(lambda: flow.count() >= 4, timeout=60)
        unfinished = [s for s in list(flow.sent) if flow.status(s) != "completed"]
        sent_before = flow.count()
        elapsed = upgrade_chaincode(net, "deposit_token", "1.1", f"{upgraded.__name__}:UpgradedDepositTokenContract")
        sent_during = flow.count() - sent_before
        assert us.evaluate("GetContractVersion") == {"version": upgraded.VERSION}
    finally:
        us.gateway.close()
    print(f"\nFIGURE upgrade: v1.1 committed and answering on every peer {elapsed:.1f}s after the upgrade began; "
          f"{sent_during} payments sent meanwhile, {len(unfinished)} in flight when it began")  # fmt: skip

    # every org's peer answers on the new version, and the gateways' reference data shows the new field
    for msp_id in banks:
        org = ClientOrg(msp_id, connect_org(STATE / "profile.json", msp_id))
        try:
            assert org.evaluate("GetContractVersion") == {"version": upgraded.VERSION}, msp_id
        finally:
            org.gateway.close()
    # the old servers are gone; the new ones serve from the second slot
    nodes = json.loads(cli("status", "--json").stdout)["nodes"]
    assert not [n["name"] for n in nodes if n["name"].endswith(".retiring")]
    servers = [n for n in nodes if n["name"].startswith("cc.deposit_token.")]
    assert servers and all(n["healthy"] for n in servers)
    assert all(n["ports"][0] == net.ports.peers[n["name"].rsplit(".", 1)[1]].chaincode_server("deposit_token", 1)
               for n in servers)  # fmt: skip

    # payments in flight when the upgrade began, and those sent during it, finish on the new version
    sent_after = flow.count()
    flow.wait_completed_since(sent_after, "USBankMSP", timeout=120)
    figures = flow.settle_and_check()
    print(f"FIGURE upgrade payments: {figures}")
    assert all(flow.status(s) == "completed" for s in unfinished)
    conserved(banks, flow)


def gateway_as(msp_id: str, cert_pem: bytes, key_pem: bytes) -> Gateway:
    """A client of ``msp_id``'s peer signing with the given certificate and key."""
    org = load_profile(STATE / "profile.json")["orgs"][msp_id]
    peer, tls = org["peer"], org["client"]
    return Gateway.connect(
        identity=Identity(msp_id, cert_pem), signer=ECDSASigner.from_pem(key_pem), endpoint=peer["address"],
        tls_root_cert=Path(peer["tls_ca"]).read_bytes(), host_override=peer.get("host_override") or None,
        client_cert=Path(tls["tls_cert"]).read_bytes(), client_key=Path(tls["tls_key"]).read_bytes(),
    )  # fmt: skip


def test_a_compromised_key_is_revoked_while_payments_flow(flow: PaymentFlow) -> None:
    net = consortium()
    hk = net.topology.org("HKBankMSP")
    home = net.home(hk)
    old_cert, old_key = home.user_cert(CLIENT).read_bytes(), home.user_key(CLIENT).read_bytes()
    old = ClientOrg(hk.msp_id, gateway_as(hk.msp_id, old_cert, old_key))
    try:
        # the gateway moves to a fresh certificate first, so it never signs with a revoked one
        new_cert = reissue_client(net, hk)
        assert new_cert != old_cert
        restart_gateway(net, hk)
        assert old.evaluate("GetReferenceData")["regulator"] == "RegulatorMSP"  # not revoked yet: still works

        update_dir, committed = revoke(net, hk, old_cert)
        summary = json.loads((update_dir / channel_config.SUMMARY_FILE).read_text())
        assert sorted(r["policy"] for r in summary["requirements"]) == [
            "/Channel/Application/HKBankMSP/Admins", "/Channel/Orderer/HKBankMSP/Admins"]  # fmt: skip
        assert [p.name for p in (update_dir / channel_config.SIGNATURES).iterdir()] == ["HKBankMSP.sig"]
        attempts, refused_after = 0, None
        while refused_after is None and attempts < 100:
            attempts += 1
            try:
                old.evaluate("GetReferenceData")
            except (GatewayError, Refused) as error:
                refused_after = time.monotonic() - committed
                message = str(error)
            else:
                time.sleep(0.1)
        assert refused_after is not None, "the revoked certificate kept working"
        print(f"\nFIGURE revocation: the revoked certificate was refused on attempt {attempts} after the CRL "
              f"update committed on every peer ({'0' if attempts == 1 else f'{refused_after:.2f}'} s of use); "
              f"refusal: {message[:200]}")  # fmt: skip
        assert attempts == 1
        with pytest.raises((GatewayError, Refused)):
            old.submit("OpenAccount", {"account_id": unique("acct"), "holder": "Mallory", "jurisdiction": "HK"},
                       retries=1)  # fmt: skip
    finally:
        old.gateway.close()

    # the gateway carries on with its fresh certificate
    flow.wait_completed_since(flow.count(), "HKBankMSP", timeout=120)

    # the peer's TLS certificate is renewed; the peer comes back on it and payments go on
    serial = rotate_peer_tls(net, hk)
    peer = net.ports.peers[hk.msp_id]
    context = ssl.create_default_context(cafile=str(home.tls_ca))
    context.check_hostname = False
    with (
        socket.create_connection((peer.host, peer.listen), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=hk.peer_host) as tls,
    ):
        presented = tls.getpeercert(binary_form=True)
    assert presented and format(x509.load_der_x509_certificate(presented).serial_number, "x") == serial
    flow.wait_completed_since(flow.count(), "HKBankMSP", timeout=180)
    figures = flow.settle_and_check()
    print(f"FIGURE revocation payments: {figures}")
    conserved([org.msp_id for org in net.topology.banks], flow)
