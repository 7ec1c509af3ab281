"""Node role detection, a pure function of the environment: every case and every error."""

from __future__ import annotations

import ipaddress
import re

import pytest

from cluster.address import choose_address, node_address
from cluster.context import ClusterConfigError, NodeContext, Role, detect

MAIN = {
    "AWS_BATCH_JOB_NUM_NODES": "4",
    "AWS_BATCH_JOB_NODE_INDEX": "0",
    "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
    "AWS_BATCH_JOB_ID": "b7e1-22#0",
    "AWS_BATCH_JOB_ATTEMPT": "2",
}
CHILD = {
    **MAIN,
    "AWS_BATCH_JOB_NODE_INDEX": "3",
    "AWS_BATCH_JOB_ID": "b7e1-22#3",
    "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.17",
}


def test_local_without_batch_variables() -> None:
    assert detect({}) == NodeContext(Role.LOCAL)


def test_single_node_batch_job_is_local_with_its_job_id() -> None:
    ctx = detect({"AWS_BATCH_JOB_ID": "abc", "AWS_BATCH_JOB_ATTEMPT": "3"})
    assert (ctx.role, ctx.job_id, ctx.attempt) == (Role.LOCAL, "abc", 3)


def test_external_scheduler() -> None:
    ctx = detect({}, scheduler="tls://10.0.0.5:8786")
    assert ctx.role is Role.EXTERNAL
    assert ctx.scheduler == "tls://10.0.0.5:8786"


def test_main_node() -> None:
    ctx = detect(MAIN)
    assert ctx == NodeContext(Role.MNP_MAIN, "b7e1-22", 2, 4, 0, 0)
    assert ctx.is_mnp


def test_child_node() -> None:
    ctx = detect(CHILD)
    assert ctx == NodeContext(Role.MNP_CHILD, "b7e1-22", 2, 4, 3, 0, "10.0.1.17")


def test_main_node_need_not_be_index_zero() -> None:
    env = {**CHILD, "AWS_BATCH_JOB_MAIN_NODE_INDEX": "3"}
    assert detect(env).role is Role.MNP_MAIN


def test_attempt_defaults_to_one() -> None:
    env = {k: v for k, v in MAIN.items() if k != "AWS_BATCH_JOB_ATTEMPT"}
    assert detect(env).attempt == 1


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({**MAIN, "AWS_BATCH_JOB_NUM_NODES": ""}, "AWS_BATCH_JOB_NUM_NODES missing"),
        (
            {k: v for k, v in MAIN.items() if k != "AWS_BATCH_JOB_MAIN_NODE_INDEX"},
            "AWS_BATCH_JOB_MAIN_NODE_INDEX missing",
        ),
        ({**MAIN, "AWS_BATCH_JOB_NUM_NODES": "four"}, "AWS_BATCH_JOB_NUM_NODES='four' is not"),
        ({**MAIN, "AWS_BATCH_JOB_NUM_NODES": "0"}, "AWS_BATCH_JOB_NUM_NODES=0 must be at least 1"),
        ({**MAIN, "AWS_BATCH_JOB_NODE_INDEX": "4", "AWS_BATCH_JOB_ID": "x#4"}, "out of range"),
        ({**MAIN, "AWS_BATCH_JOB_MAIN_NODE_INDEX": "9"}, "expected 0..3"),
        ({**MAIN, "AWS_BATCH_JOB_ID": ""}, "AWS_BATCH_JOB_ID is missing"),
        ({**MAIN, "AWS_BATCH_JOB_ID": "b7e1-22#2"}, "names node 2"),
        ({**MAIN, "AWS_BATCH_JOB_ATTEMPT": "0"}, "AWS_BATCH_JOB_ATTEMPT=0"),
        (
            {k: v for k, v in CHILD.items() if "PRIVATE_IPV4" not in k},
            "child node 3 has no AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS",
        ),
        (
            {**CHILD, "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "ip-10-0-1-17"},
            "is not an IPv4 address",
        ),
        (
            {"AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.1"},
            "a multi-node parallel job sets all of them",
        ),
    ],
)
def test_inconsistent_environment_is_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ClusterConfigError, match=re.escape(needle)):
        detect(env)


def test_scheduler_option_inside_an_mnp_job_is_refused() -> None:
    with pytest.raises(ClusterConfigError, match="--scheduler cannot be used"):
        detect(MAIN, scheduler="tcp://1.2.3.4:8786")


def _ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def test_address_prefers_the_private_interface() -> None:
    found = [("lo", _ip("127.0.0.1")), ("docker0", _ip("169.254.1.2")), ("eth0", _ip("10.0.3.9"))]
    assert choose_address(found) == "10.0.3.9"
    assert choose_address([("lo", _ip("127.0.0.1")), ("eth0", _ip("54.1.2.3"))]) == "54.1.2.3"
    assert choose_address([("lo", _ip("127.0.0.1"))]) is None


def test_address_override_and_its_validation() -> None:
    assert node_address({"CLUSTER_NODE_HOST": "127.0.0.5"}) == "127.0.0.5"
    with pytest.raises(ClusterConfigError, match="CLUSTER_NODE_HOST='node-1' is not an IP"):
        node_address({"CLUSTER_NODE_HOST": "node-1"})


def test_address_of_this_machine_is_not_loopback() -> None:
    """This sandbox has a real interface; no route to the internet is needed to find it."""
    address = ipaddress.ip_address(node_address({}))
    assert not address.is_loopback
