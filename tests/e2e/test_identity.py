"""Teams, users, roles and tokens as an administrator and the teams' people use them, through the real CLI
against `aidc up`: who may do what, what each refusal looks like, and that every step is in the audit log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from tests.e2e.server import AidcServer

SLEEP_JOB = "name: {name}\nqueue: {queue}\nrun: sleep 30\nresources: {{cpus: 0.1, memory: 10MB}}\n"


def make_token(server: AidcServer, *args: str, token: str | None = None) -> str:
    result = server.cli("token", "create", *args, "--json", token=token)
    assert result.code == 0, result.stderr
    body = result.json()
    assert set(body) >= {"id", "token", "prefix", "user"}
    return str(body["token"])


def setup_two_teams(server: AidcServer) -> dict[str, str]:
    """Teams ml and vision with a queue each; alice (member of ml), bob (member of vision), carol (viewer of
    ml), ops (operator in the cluster). Returns their tokens."""
    for team in ("ml", "vision"):
        assert server.cli("team", "create", team).code == 0
        assert server.cli("queue", "create", f"{team}-q", "--team", team).code == 0
    people = {"alice": ("ml", "member"), "bob": ("vision", "member"), "carol": ("ml", "viewer")}
    for user, (team, role) in people.items():
        result = server.cli("user", "create", user, "--team", team, "--role", role)
        assert result.code == 0, result.stderr
    assert server.cli("user", "create", "ops", "--role", "operator").code == 0
    return {user: make_token(server, "--user", user, "--name", "laptop") for user in [*people, "ops"]}


def test_members_see_and_cancel_their_teams_jobs_only(server: AidcServer, workdir: Path) -> None:
    tokens = setup_two_teams(server)
    spec = workdir / "a.yaml"
    spec.write_text(SLEEP_JOB.format(name="a", queue="ml-q"))
    alice_job = int(server.cli("submit", str(spec), token=tokens["alice"]).stdout)

    # bob (vision) cannot submit to ml's queue: 403 naming who and what, exit 1.
    denied = server.cli("submit", str(spec), token=tokens["bob"])
    assert denied.code == 1
    assert "bob (member in team vision) may not job.submit" in denied.stderr
    # ... nor see alice's job: it does not exist for him (404), in a listing or by id.
    assert server.cli("show", str(alice_job), token=tokens["bob"]).code == 1
    assert "not found" in server.cli("show", str(alice_job), token=tokens["bob"]).stderr
    assert server.cli("jobs", "--json", token=tokens["bob"]).json() == []
    assert "not found" in server.cli("cancel", str(alice_job), token=tokens["bob"]).stderr

    # carol (viewer in ml) sees it, cannot cancel it (403), cannot submit.
    assert [j["id"] for j in server.cli("jobs", "--json", token=tokens["carol"]).json()] == [alice_job]
    refused = server.cli("cancel", str(alice_job), token=tokens["carol"])
    assert refused.code == 1
    assert "may not job.cancel" in refused.stderr
    # the operator sees every job; alice cancels her own.
    assert alice_job in [j["id"] for j in server.cli("jobs", "--json", token=tokens["ops"]).json()]
    assert server.cli("cancel", str(alice_job), token=tokens["alice"]).code == 0

    # Every refusal was audited, with the request id the server answered with.
    records = server.cli("audit", "list", "--json").json()
    denied_records = [r for r in records if r["outcome"] == "denied"]
    assert {(r["actor"], r["action"]) for r in denied_records} >= {
        ("bob", "job.submit"),
        ("bob", "job.read"),
        ("carol", "job.cancel"),
    }
    assert all(r["request_id"] for r in denied_records)
    assert ("alice", "job.cancel", f"job/{alice_job}") in {(r["actor"], r["action"], r["target"]) for r in records}


def test_user_management_is_for_admins(server: AidcServer) -> None:
    tokens = setup_two_teams(server)
    for who in ("ops", "alice", "carol"):
        result = server.cli("user", "create", "mallory", token=tokens[who])
        assert result.code == 1
        assert "may not user.write" in result.stderr
    # A member cannot mint a token for someone else, nor create a queue.
    assert "may not user.write" in server.cli("token", "create", "--user", "bob", token=tokens["alice"]).stderr
    assert "may not queue.write" in server.cli("queue", "create", "mine", "--team", "ml", token=tokens["alice"]).stderr
    # Listing users: admins see everyone; alice sees the people of her team.
    assert {u["name"] for u in server.cli("user", "list", "--json").json()} == {"admin", "alice", "bob", "carol", "ops"}
    assert {u["name"] for u in server.cli("user", "list", "--json", token=tokens["alice"]).json()} == {
        "alice",
        "carol",
    }
    # Bad input: one line, exit 2, naming the field.
    bad = server.cli("user", "create", "Not A Name")
    assert bad.code == 2
    assert bad.stderr.startswith("aidc: name:")
    assert server.cli("user", "create", "dave", "--role", "boss").code == 2
    assert "no team 'nope'" in server.cli("user", "create", "dave", "--team", "nope").stderr


def test_tokens_expire_are_revoked_and_die_with_their_user(server: AidcServer) -> None:
    tokens = setup_two_teams(server)
    me = server.cli("whoami", "--json", token=tokens["alice"]).json()
    assert me["user"] == "alice"
    assert [(b["role"], b["team"]) for b in me["bindings"]] == [("member", "ml")]

    # A scoped token may do only what its scopes say.
    read_only = make_token(server, "--scope", "job.read", token=tokens["alice"])
    with server.api(read_only) as api:
        assert api.get("/v1/jobs").status_code == 200
        refused = api.post("/v1/jobs", json={"name": "x", "queue": "ml-q", "run": "true"})
        assert refused.status_code == 403

    # Revoked: refused at once (the server drops its cache on revoke).
    listed = server.cli("token", "list", "--json", token=tokens["alice"]).json()
    laptop = next(t for t in listed if t["name"] == "laptop")
    assert "token" not in laptop  # secrets are never listed
    assert server.cli("token", "revoke", str(laptop["id"]), token=tokens["alice"]).code == 0
    assert server.cli("jobs", token=tokens["alice"]).code == 1
    with server.api(tokens["alice"]) as api:
        gone = api.get("/v1/jobs")
        assert gone.status_code == 401
        assert gone.json()["detail"] == "invalid token"
        assert tokens["alice"] not in gone.text

    # Disabled user: every token of theirs stops, and the attempt is a security event.
    assert server.cli("user", "disable", "bob").code == 0
    with server.api(tokens["bob"]) as api:
        assert api.get("/v1/jobs").status_code == 401
    events = server.cli("audit", "list", "--action", "security.", "--json").json()
    assert ("bob", "security.disabled_user_token") in {(e["actor"], e["action"]) for e in events}

    # Expiry: a token whose lifetime is over is refused with "token expired".
    short = make_token(server, "--expires", "4s", token=tokens["carol"])
    with server.api(short) as api:
        assert api.get("/v1/jobs").status_code == 200
        time.sleep(4.2)
        expired = api.get("/v1/jobs")
        assert expired.status_code == 401
        assert expired.json()["detail"] == "token expired"
    actions = {(r["action"], r["outcome"]) for r in server.cli("audit", "list", "--json").json()}
    assert {("token.create", "ok"), ("token.revoke", "ok"), ("user.disable", "ok"), ("auth.login", "failed")} <= actions


def test_failed_sign_ins_are_rate_limited_and_bodies_capped(server: AidcServer) -> None:
    assert server.cli("whoami").code == 0  # the admin token signs in before the flood
    fresh = make_token(server, "--name", "unused")
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        for _ in range(10):
            assert anon.get("/v1/jobs", headers={"Authorization": "Bearer aidc_12345678_guess"}).status_code == 401
        limited = anon.get("/v1/jobs", headers={"Authorization": "Bearer aidc_12345678_guess"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "aidc_12345678_guess" not in limited.text
        # From that address, a token never used before must wait too; one that signed in before goes on.
        assert anon.get("/v1/jobs", headers={"Authorization": f"Bearer {fresh}"}).status_code == 429
    events = server.cli("audit", "list", "--action", "security.login_burst", "--json").json()
    assert [e["target"] for e in events] == ["client/127.0.0.1"]
    log = server.log_file.read_text()
    assert "aidc_12345678_guess" not in log  # never in logs
    assert fresh not in log

    with server.api() as api:
        big = api.post("/v1/jobs", content=b"{" + b" " * (2 << 20) + b"}", headers={"content-type": "application/json"})
        assert big.status_code == 413
        assert "too large" in big.json()["detail"]
        echoed = api.get("/v1/queues", headers={"X-Request-ID": "trace-42"})
        assert echoed.headers["x-request-id"] == "trace-42"


def test_audit_verify_catches_a_record_edited_in_the_sqlite_file(server: AidcServer) -> None:
    setup_two_teams(server)
    ok = server.cli("audit", "verify")
    assert ok.code == 0, ok.stderr
    assert "audit chain intact" in ok.stdout
    records = server.cli("audit", "list", "--json").json()
    victim = next(r for r in records if r["action"] == "user.create" and r["target"] == "user/bob")

    # Someone with write access to the database file rewrites history: bob was never created by admin.
    with sqlite3.connect(server.data_dir / "aidc.db") as db:
        db.execute("UPDATE audit_records SET actor = 'alice' WHERE seq = ?", (victim["seq"],))
    bad = server.cli("audit", "verify")
    assert bad.code == 1
    assert f"audit record {victim['seq']}: edited" in bad.stderr

    # Removing the last records instead is caught by the signed head.
    with sqlite3.connect(server.data_dir / "aidc.db") as db:
        db.execute("UPDATE audit_records SET actor = 'admin' WHERE seq = ?", (victim["seq"],))
        last = db.execute("SELECT max(seq) FROM audit_records").fetchone()[0]
        db.execute("DELETE FROM audit_records WHERE seq = ?", (last,))
    cut = server.cli("audit", "verify", "--json")
    assert cut.code == 1
    assert cut.json()["seq"] == last
    assert "removed from the end" in cut.json()["problem"]


def test_secret_env_is_stored_encrypted_shown_redacted_and_given_to_the_job(server: AidcServer, workdir: Path) -> None:
    spec = workdir / "secret.yaml"
    spec.write_text(
        'name: s\nrun: echo "token=$HF_TOKEN plain=$PLAIN"\nresources: {cpus: 0.1, memory: 10MB}\n'
        "env: {PLAIN: visible}\nsecret_env: {HF_TOKEN: hf_s3cr3t_value}\n"
    )
    job_id = int(server.cli("submit", str(spec)).stdout)
    server.wait_state(job_id, "SUCCEEDED")
    shown = server.cli("show", str(job_id), "--json").json()
    assert shown["spec"]["secret_env"] == {"HF_TOKEN": "<redacted>"}
    assert shown["spec"]["env"] == {"PLAIN": "visible"}
    assert "token=hf_s3cr3t_value plain=visible" in server.cli("logs", str(job_id)).stdout
    # Nothing stored holds the value in clear: not the database, not the server's log.
    assert b"hf_s3cr3t_value" not in (server.data_dir / "aidc.db").read_bytes()
    for wal in server.data_dir.glob("aidc.db-wal"):
        assert b"hf_s3cr3t_value" not in wal.read_bytes()
    assert "hf_s3cr3t_value" not in server.log_file.read_text()
    for path in (server.data_dir / "jobs").rglob("*"):  # launch.json, runner records: none holds it
        if path.is_file() and path.name != "output.log":  # the job printed it itself
            assert b"hf_s3cr3t_value" not in path.read_bytes(), path
    records = server.cli("audit", "list", "--json").json()
    assert "hf_s3cr3t_value" not in str(records)


def test_operators_drain_nodes_and_the_drain_holds(server: AidcServer, workdir: Path) -> None:
    tokens = setup_two_teams(server)
    node = server.cli("nodes", "--json").json()[0]["name"]
    assert "may not node.write" in server.cli("node", "drain", node, token=tokens["alice"]).stderr
    assert server.cli("node", "drain", node, token=tokens["ops"]).code == 0
    spec = workdir / "j.yaml"
    spec.write_text(SLEEP_JOB.format(name="waits", queue="ml-q"))
    job = int(server.cli("submit", str(spec), token=tokens["alice"]).stdout)
    time.sleep(1.5)  # several scheduling cycles and a heartbeat's worth: the drain must hold
    pending = server.job(job)
    assert pending["state"] == "PENDING"
    assert "DRAINED" in pending["pending_reason"]
    assert server.cli("node", "resume", node, token=tokens["ops"]).code == 0
    server.wait_state(job, "RUNNING")
    assert server.cli("cancel", str(job)).code == 0
    actions = [r["action"] for r in server.cli("audit", "list", "--action", "node.", "--json").json()]
    assert actions == ["node.write", "node.drain", "node.resume"]  # alice's refusal, then the operator's
