"""prefix_affinity: consistent hashing on the prompt's prefix, with bounded loads."""

from __future__ import annotations

import os
import subprocess
import sys

from aidc.gateway.policies import PolicyOptions, PrefixAffinity, policy_for
from aidc.gateway.replicas import Pool

from .factories import chosen_id, load, pool, replica, request

KEYS = [f"system prompt {i}: you are a helpful assistant" for i in range(1000)]


def affinity(load_factor: float = 1.25) -> PrefixAffinity:
    policy = policy_for("prefix_affinity", PolicyOptions(load_factor=load_factor))
    assert isinstance(policy, PrefixAffinity)
    return policy


def homes(policy: PrefixAffinity, p: Pool) -> dict[str, str]:
    out = {}
    for key in KEYS:
        chosen = policy.choose(p, request(key))
        assert chosen is not None
        out[key] = chosen.id
    return out


def test_same_prefix_same_replica_and_keys_spread_over_all() -> None:
    p = pool("a", "b", "c")
    policy = affinity()
    first = homes(policy, p)
    assert homes(policy, p) == first
    assert homes(affinity(), p) == first  # a new instance (another process, after a restart) agrees
    counts = {r: list(first.values()).count(r) for r in "abc"}
    assert all(200 < n < 470 for n in counts.values()), counts


def test_adding_a_replica_moves_about_one_key_in_n_and_only_to_it() -> None:
    p = pool("a", "b", "c")
    policy = affinity()
    before = homes(policy, p)
    p.add(replica("d"))
    after = homes(policy, p)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert 0.10 * len(KEYS) < len(moved) < 0.40 * len(KEYS)
    assert {after[k] for k in moved} == {"d"}


def test_removed_or_ejected_replica_keys_go_elsewhere_and_come_back() -> None:
    p = pool("a", "b", "c")
    policy = affinity()
    before = homes(policy, p)
    p.add(replica("b", ready=False))
    during = homes(policy, p)
    assert "b" not in during.values()
    assert all(during[k] == before[k] for k in KEYS if before[k] != "b")
    p.add(replica("b"))
    assert homes(policy, p) == before


def test_overloaded_home_overflows_to_the_next_on_the_ring() -> None:
    p = pool("a", "b", "c", "d")
    policy = affinity(load_factor=1.25)
    key = KEYS[0]
    home, second, third, _ = policy.ring_order(p, key)
    assert chosen_id(policy, p, request(key)) == home
    load(p, **{home: 4})  # bound: ceil(1.25 x 5 / 4) = 2; the home would hold 5
    assert chosen_id(policy, p, request(key)) == second
    load(p, **{home: 4, second: 2})  # bound ceil(1.25 x 7 / 4) = 3: second would hold 3, still fine
    assert chosen_id(policy, p, request(key)) == second
    load(p, **{home: 4, second: 3})  # bound 3, second would hold 4
    assert chosen_id(policy, p, request(key)) == third


def test_modest_load_stays_home() -> None:
    p = pool("a", "b", "c")
    policy = affinity()
    key = KEYS[1]
    home = policy.ring_order(p, key)[0]
    load(p, **dict.fromkeys("abc", 3))  # even load: the home still takes it
    assert chosen_id(policy, p, request(key)) == home


def test_tried_replica_is_skipped_for_the_next_on_the_ring() -> None:
    p = pool("a", "b", "c")
    policy = affinity()
    home, second, _ = policy.ring_order(p, KEYS[2])
    assert chosen_id(policy, p, request(KEYS[2]), {home}) == second


def test_no_prefix_goes_to_the_least_loaded() -> None:
    p = pool("a", "b", "c")
    load(p, a=2, b=1, c=3)
    assert chosen_id(affinity(), p, request("")) == "b"


def test_weight_draws_keys_in_proportion() -> None:
    p = pool("a", "b")
    p.add(replica("b", weight=3.0))
    counts = list(homes(affinity(), p).values()).count("b")
    assert 650 < counts < 850


def test_ring_is_the_same_in_another_process() -> None:
    code = (
        "from aidc.gateway.policies import policy_for;"
        "from aidc.gateway.replicas import Pool, Replica;"
        "p = Pool('m'); [p.add(Replica(i, 'm', 'u')) for i in 'abc'];"
        "pa = policy_for('prefix_affinity');"
        "print([pa.ring_order(p, f'key {i}') for i in range(30)])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash() than this process's
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    here = affinity()
    assert out.stdout.strip() == str([here.ring_order(pool("a", "b", "c"), f"key {i}") for i in range(30)])
