"""The list of private Faust/aiokafka names Aegis depends on: all present in the installed
packages, and a missing one reported with its package, version and reason."""

from __future__ import annotations

from importlib import metadata

import pytest

from aegis_app.kafka import private_names
from aegis_app.kafka.private_names import PrivateName, PrivateNamesMissing, check, problem

EVERY_NAME = private_names.PRIVATE + private_names.HOOKS


@pytest.mark.parametrize("entry", EVERY_NAME, ids=lambda entry: entry.label)
def test_every_listed_name_exists_in_the_installed_packages(entry):
    assert problem(entry) is None
    assert entry.reason and entry.package in private_names.TESTED


def test_check_passes_on_the_installed_packages():
    check()


def test_the_private_names_are_private():
    # HOOKS are the public ones; a private name must not hide among them or vice versa
    assert all(e.name.startswith("_") for e in private_names.PRIVATE if e.name[0].islower())
    assert not any(e.name.startswith("_") for e in private_names.HOOKS)


def test_a_missing_name_is_reported_with_package_version_and_reason():
    fake = PrivateName(
        "aiokafka", "aiokafka:AIOKafkaConsumer", "_gone_in_a_later_release", "the test's reason"
    )
    with pytest.raises(PrivateNamesMissing) as raised:
        check([fake])
    message = str(raised.value)
    assert f"aiokafka {metadata.version('aiokafka')}" in message
    assert "tested: aiokafka>=0.14,<0.15" in message
    assert "AIOKafkaConsumer._gone_in_a_later_release: missing" in message
    assert "the test's reason" in message


def test_instance_attributes_signatures_and_modules_are_checked_too():
    faust = "faust-streaming"
    missing_attribute = PrivateName(
        faust, "faust.transport.consumer:Consumer", "_no_such_partitions", "r", per_instance=True
    )
    wrong_signature = PrivateName(
        "aiokafka",
        "aiokafka.consumer.fetcher:Fetcher",
        "_proc_fetch_request",
        "r",
        parameters=("node_id", "assignment"),
    )
    missing_module = PrivateName(faust, "faust.no_such_module:Thing", "_x", "r")
    assert problem(missing_attribute) == "missing"
    assert problem(wrong_signature) == "does not take (node_id, assignment)"
    assert "faust.no_such_module:Thing not found" in (problem(missing_module) or "")
    with pytest.raises(PrivateNamesMissing) as raised:
        check([missing_attribute, wrong_signature, missing_module])
    message = str(raised.value)
    # grouped by package: each package named once, with its version
    assert message.count(f"faust-streaming {metadata.version('faust-streaming')}") == 1
    assert message.count("aiokafka ") == 1
    assert "Consumer._no_such_partitions" in message and "Fetcher._proc_fetch_request" in message
