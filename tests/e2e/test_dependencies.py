"""Dependencies on the live control plane: names resolved to ids at submit, unknown ones refused, a pipeline
run in order, and the dependents of a failed job cancelled with the reason."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.server import AidcServer, wait_for

QUICK = "resources: {cpus: 0.1, memory: 64MB}\n"


def spec(name: str, run: str, *deps: str) -> str:
    text = f"name: {name}\n{QUICK}run: {run!r}\n"
    if deps:
        text += "depends_on:\n" + "".join(f"  - {d}\n" for d in deps)
    return text


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_name_is_resolved_to_the_submitters_latest_job_and_unknown_ones_are_refused(
    server: AidcServer, workdir: Path
) -> None:
    old = server.submit(spec("prep", "true"), workdir, "prep.yaml")
    new = server.submit(spec("prep", "true"), workdir, "prep.yaml")
    train = server.submit(spec("train", "true", "{job: prep}", f"{{job: {old}, when: finished}}"), workdir, "t.yaml")
    shown = server.cli("show", str(train), "--json").json()
    assert shown["spec"]["depends_on"] == [{"job": new, "when": "succeeded"}, {"job": old, "when": "finished"}]
    assert [(d["job"], d["name"]) for d in shown["dependencies"]] == [(new, "prep"), (old, "prep")]
    server.wait_state(train, "SUCCEEDED")
    assert f"depends on      job {new} prep to have succeeded (now SUCCEEDED)" in server.cli("show", str(train)).stdout

    (workdir / "bad.yaml").write_text(spec("eval", "true", "{job: nope}"))
    refused = server.cli("submit", str(workdir / "bad.yaml"))
    assert refused.code == 2
    assert "depends_on.0.job: you have no job named 'nope'" in refused.stderr
    with server.api() as api:
        body: dict[str, Any] = {"name": "eval", "run": "true", "depends_on": [{"job": "prep"}, {"job": 9999}]}
        response = api.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "depends_on.1.job", "problem": "no job 9999"}]


def test_a_pipeline_runs_in_order(server: AidcServer, workdir: Path) -> None:
    def submit(name: str, run: str, *deps: dict[str, Any]) -> int:
        body = {"name": name, "run": run, "workdir": str(workdir), "resources": {"cpus": 0.1, "memory": "64MB"}}
        with server.api() as api:
            response = api.post("/v1/jobs", json={**body, "depends_on": list(deps)})
        assert response.status_code == 201, response.text
        job_id: int = response.json()["id"]
        return job_id

    prep = submit("prep", "sleep 1")
    train = submit("train", "sleep 0.2", {"job": "prep"})
    evaluate = submit("eval", "true", {"job": "train", "when": "finished"})
    waiting = wait_for(lambda: (j := server.job(evaluate))["pending_reason"] and j, what="a pending reason")
    assert waiting["pending_reason"] == f"waiting for job {train} (PENDING) to finish"
    shown = server.cli("show", str(evaluate)).stdout
    assert f"job {train} train to have finished (now PENDING)" in shown
    done = server.wait_state(evaluate, "SUCCEEDED", "FAILED", "CANCELLED")
    assert done["state"] == "SUCCEEDED", done
    jobs = {j: server.job(j) for j in (prep, train)}
    assert at(jobs[train]["started_at"]) >= at(jobs[prep]["ended_at"])
    assert at(done["started_at"]) >= at(jobs[train]["ended_at"])


def test_a_failed_dependency_cancels_its_dependents_with_the_reason(server: AidcServer, workdir: Path) -> None:
    prep = server.submit(spec("prep", "sleep 0.2; exit 3"), workdir, "prep.yaml")
    train = server.submit(spec("train", "true", "{job: prep}"), workdir, "train.yaml")
    evaluate = server.submit(spec("eval", "true", "{job: train}"), workdir, "eval.yaml")
    report = server.submit(spec("report", "true", "{job: prep, when: finished}"), workdir, "report.yaml")
    cancelled = server.wait_state(train, "CANCELLED", "SUCCEEDED", "FAILED")
    assert cancelled["state"] == "CANCELLED"
    assert cancelled["state_reason"] == f"dependency job {prep} failed"
    assert server.wait_state(prep, "FAILED")["attempts_made"] == 1
    downstream = server.wait_state(evaluate, "CANCELLED", "SUCCEEDED", "FAILED")
    assert downstream["state"] == "CANCELLED"
    assert downstream["state_reason"] == f"dependency job {train} was cancelled"
    assert f"dependency job {train} was cancelled" in server.cli("show", str(evaluate)).stdout
    assert server.wait_state(report, "SUCCEEDED", "CANCELLED", "FAILED")["state"] == "SUCCEEDED"
    assert cancelled["started_at"] is None
