"""`aidc queue create`: bad values are refused before anything is sent, in one line naming the option, exit 2;
good ones become the request body the server gets."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from aidc.api.schemas import QueueCreate, QueueOut
from aidc.cli import main as cli_main
from aidc.client import AidcClient


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "--url", "http://127.0.0.1:9", "--token", "t", "queue", "create", *args])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["q", "--gpu-model-quota", "H100"], "--gpu-model-quota: expected MODEL=GPUS such as H100=8, got 'H100'"),
        (["q", "--gpu-model-quota", "H100=-2"], "--gpu-model-quota: expected MODEL=GPUS"),
        (["q", "--borrowing-limit-gpus", "4"], "--borrowing-limit-gpus: needs a cohort"),
        (["q", "--cohort", "lab", "--lending-limit-gpus", "-1"], "--lending-limit-gpus: Input should be greater"),
        (["q", "--quantum", "soon"], "--quantum: cannot read 'soon' as a duration"),
        (["q", "--quantum", "0"], "--quantum: Input should be greater than 0"),
        (["q", "--timeshare", "lottery"], "--timeshare"),
        (["q", "--weight", "0"], "--weight: Input should be greater than 0"),
        (["q", "--memory", "lots"], "--memory: cannot read 'lots' as a size"),
        (["q", "--gpus", "-1"], "--gpus: Input should be greater than or equal to 0"),
        (["bad name"], "NAME: String should match pattern"),
        (["q", "--cohort", "no spaces"], "--cohort: String should match pattern"),
    ],
)
def test_bad_values_name_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_every_option_reaches_the_request(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[QueueCreate] = []

    def create_queue(self: AidcClient, body: QueueCreate) -> QueueOut:
        sent.append(body)
        fields: dict[str, Any] = {**body.model_dump(), "created_at": None, "pending": 0, "running": 0, "share": 0}
        return QueueOut.model_validate({**fields, "in_use": {}, "borrowed": {}, "lent": {}})

    monkeypatch.setattr(AidcClient, "create_queue", create_queue)
    code, out, err = run(
        monkeypatch, capsys, "research", "--cohort", "lab", "--weight", "2", "--gpus", "16",
        "--gpu-model-quota", "H100=8", "--gpu-model-quota", "A100=4.5", "--cpus", "256", "--memory", "2TiB",
        "--borrowing-limit-gpus", "8", "--lending-limit-gpus", "4", "--timeshare", "las", "--quantum", "10m",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == "queue research created\n"
    body = sent[0]
    assert body.cohort == "lab"
    assert body.weight == 2
    assert body.quota.model_dump() == {"gpus": 16, "gpu_models": {"H100": 8, "A100": 4.5}, "cpus": 256,
                                       "memory": 2 * 2**40}  # fmt: skip
    assert body.borrowing_limit is not None
    assert body.borrowing_limit.gpus == 8
    assert body.lending_limit is not None
    assert body.lending_limit.gpus == 4
    assert body.timeshare == "las"
    assert body.quantum == 600
