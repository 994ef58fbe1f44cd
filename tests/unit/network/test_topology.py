from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from network.ports import plan_ports
from network.topology import DEFAULT_TOPOLOGY, TopologyError, load_topology, parse_topology


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    return copy.deepcopy(data)


def test_default_topology_gives_every_org_an_orderer_and_a_host_of_its_own() -> None:
    t = load_topology()
    assert t.orderer.consensus == "etcdraft"
    assert [n.org.name for n in t.orderers] == ["USBank", "HKBank", "SGBank", "Regulator"]
    assert len({org.host for org in t.peer_orgs}) == len(t.peer_orgs)
    assert t.crypto == "ca"
    assert [b.name for b in t.banks] == ["USBank", "HKBank", "SGBank"]
    assert t.regulator.currencies == ()
    assert t.org("HKBankMSP").currencies == ("HKD", "CNH", "USD")
    assert t.channel == "tokens"


def test_adding_a_bank_is_one_entry() -> None:
    data = raw()
    data["banks"].append(
        {"name": "JPBank", "msp_id": "JPBankMSP", "jurisdiction": "JP", "currencies": ["JPY"]}
    )
    t = parse_topology(data)
    assert [b.msp_id for b in t.banks][-1] == "JPBankMSP"
    plan = plan_ports(t, 7000)
    ports = [p for p, _ in plan.all_ports()]
    assert len(ports) == len(set(ports)), "port plan has a collision"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["banks"][1].update(currencies=["HKD", "XXX"]), "banks[1].currencies[1]"),
        (lambda d: d["banks"][0].update(msp_id="usbank"), "banks[0].msp_id"),
        (lambda d: d["banks"][2].pop("jurisdiction"), "banks[2].jurisdiction"),
        (lambda d: d["banks"][0].update(colour="red"), "banks[0].colour"),
        (lambda d: d["orderer"].update(consensus="pbft"), "orderer.consensus"),
        (lambda d: d["orderer"].update(nodes=["o1", "o2"]), "orderer.nodes"),
        (lambda d: d["banks"][0].update(host="not-an-ip"), "banks[0].host"),
        (lambda d: d["banks"][0].update(host="0.0.0.0"), "banks[0].host"),
        (lambda d: d["banks"][1].update(orderers=7), "banks[1].orderers"),
        (lambda d: d["network"].update(crypto="openssl"), "network.crypto"),
        (lambda d: [b.update(orderers=0) for b in [*d["banks"], d["regulator"]]], "banks[*].orderers"),
        (lambda d: d["orderer"].update(consensus="BFT") or d["banks"][0].update(orderers=0), "orderer.consensus"),
        # two orgs on one host with the same port block
        (lambda d: d["banks"][1].update(host=d["banks"][0]["host"], port_block=d["network"]["base_port"] + 100),
         "banks[1]"),
        (lambda d: d["network"].update(base_port="7000"), "network.base_port"),
        (lambda d: d["currencies"].update(USD=2.5), "currencies.USD"),
        (lambda d: d["banks"][1].update(msp_id="USBankMSP"), "banks[1].msp_id"),
        (lambda d: d["chaincodes"][0].update(contract="no colon"), "chaincodes[0].contract"),
        (lambda d: d.pop("regulator"), "regulator"),
    ],
)
def test_malformed_topology_names_the_bad_field(mutate: Any, field: str) -> None:
    data = raw()
    mutate(data)
    with pytest.raises(TopologyError) as err:
        parse_topology(data)
    assert str(err.value).startswith(field), str(err.value)


def test_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "n.yaml"
    bad.write_text("network: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(bad)


def test_test_and_demo_port_plans_do_not_overlap() -> None:
    t = load_topology()
    demo = {p for p, _ in plan_ports(t, 7000).all_ports()}
    test = {p for p, _ in plan_ports(t, 17000).all_ports()}
    assert demo.isdisjoint(test)
    assert min(test) == 17000


def test_two_orgs_may_share_a_host_when_their_ports_differ() -> None:
    data = raw()
    data["banks"][1]["host"] = data["banks"][0]["host"]
    t = parse_topology(data)
    plan = plan_ports(t, 7000)
    pairs = [(item.host, item.port) for item in plan.listeners()]
    assert len(pairs) == len(set(pairs))


def test_bft_needs_four_ordering_nodes_and_accepts_them() -> None:
    data = raw()
    data["orderer"]["consensus"] = "BFT"
    t = parse_topology(data)
    assert [n.consenter_id for n in t.orderers] == [1, 2, 3, 4]


def test_a_bank_that_joins_later_moves_no_existing_port_or_consenter_id() -> None:
    before = load_topology()
    data = raw()
    data["joined_banks"] = [{"name": "EUBank", "msp_id": "EUBankMSP", "jurisdiction": "EU", "currencies": ["EUR"],
                             "host": "127.0.0.6", "orderers": 1}]  # fmt: skip
    after = parse_topology(data)
    assert [o.msp_id for o in after.peer_orgs] == [*(o.msp_id for o in before.peer_orgs), "EUBankMSP"]
    assert [o.msp_id for o in after.founders] == [o.msp_id for o in before.peer_orgs]
    assert [b.msp_id for b in after.joined_banks] == ["EUBankMSP"]
    assert "EUBankMSP" in [b.msp_id for b in after.banks]  # collections and reference data include it
    old, new = plan_ports(before, 7000), plan_ports(after, 7000)
    for msp_id, ports in old.peers.items():
        assert new.peers[msp_id] == ports
    for name, ports in old.orderers.items():
        assert new.orderers[name] == ports
    ids = [(n.name, n.consenter_id) for n in after.orderers]
    assert ids[:-1] == [(n.name, n.consenter_id) for n in before.orderers]
    assert after.orderers[-1].name == "orderer0.EUBankMSP" and after.orderers[-1].consenter_id == 5
    listeners = [(item.host, item.port) for item in new.listeners()]
    assert len(listeners) == len(set(listeners))


def test_a_joined_bank_is_checked_like_a_founding_one() -> None:
    data = raw()
    data["joined_banks"] = [{"name": "HKBank", "msp_id": "HK2BankMSP", "jurisdiction": "HK", "currencies": ["HKD"]}]
    with pytest.raises(TopologyError, match=r"joined_banks\[0\]\.name: 'HKBank' is already used"):
        parse_topology(data)
    data["joined_banks"] = [{"name": "ChBank", "msp_id": "ChBankMSP", "jurisdiction": "CH", "currencies": ["CHF"]}]
    with pytest.raises(TopologyError, match=r"joined_banks\[0\]\.currencies\[0\]"):
        parse_topology(data)


def test_each_chaincode_has_a_second_server_slot_in_the_port_plan() -> None:
    plan = plan_ports(load_topology(), 7000)
    peer = plan.peers["HKBankMSP"]
    assert peer.chaincode_server("deposit_token", 1) == peer.chaincode_server("deposit_token", 0) + 5
    whats = {item.what for item in plan.listeners()}
    assert "HKBankMSP chaincode server deposit_token (second slot)" in whats
