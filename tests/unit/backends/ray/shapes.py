"""Answers of Ray 2.60's dashboard, as its source writes them (ray/dashboard/modules/job/pydantic_models.py
JobDetails, common.py JobSubmitRequest, the state API's node records) and as a real head served them."""

from __future__ import annotations

from typing import Any

# common.JobSubmitRequest's fields: the body of POST /api/jobs/ may hold these and no others (HTTP 400).
SUBMIT_REQUEST_FIELDS = frozenset(
    {
        "entrypoint",
        "submission_id",
        "job_id",
        "runtime_env",
        "metadata",
        "entrypoint_num_cpus",
        "entrypoint_num_gpus",
        "entrypoint_memory",
        "entrypoint_resources",
        "entrypoint_label_selector",
    }
)

NODE_ID = "155e50c53686d50d0c2426571c5c09259c3bcdadb42b34de3fe37871"


def job_details(submission_id: str, status: str, **changes: Any) -> dict[str, Any]:
    """One JobDetails as GET /api/jobs/{id} serves it (a FAILED one from a real head, fields changed)."""
    details: dict[str, Any] = {
        "type": "SUBMISSION",
        "job_id": None,
        "submission_id": submission_id,
        "driver_info": None,
        "status": status,
        "entrypoint": "echo failing; exit 7",
        "message": "Job is currently running.",
        "error_type": None,
        "start_time": 1795533680630,
        "end_time": None,
        "metadata": None,
        "runtime_env": {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "5"}},
        "driver_agent_http_address": "http://192.0.2.2:52365",
        "driver_node_id": NODE_ID,
        "driver_exit_code": None,
    }
    details.update(changes)
    return details


FAILED_MESSAGE = (
    "Job entrypoint command failed with exit code 7, last available logs (truncated to 20,000 chars):\n"
    "2026-11-24 15:21:20,634\tINFO job_manager.py:581 -- Runtime env is setting up.\n"
    "failing\n"
    "Running entrypoint for job p-fail: echo failing; exit 7\n"
)

# A job started by a plain ray.init() (not submitted): listed by GET /api/jobs/ too, without a submission_id.
DRIVER_JOB = {
    "type": "DRIVER",
    "job_id": "01000000",
    "submission_id": None,
    "driver_info": {"id": "01000000", "node_ip_address": "192.0.2.2", "pid": "4242"},
    "status": "RUNNING",
    "entrypoint": "python script.py",
    "message": None,
    "error_type": None,
    "start_time": 1795533680000,
    "end_time": None,
    "metadata": {},
    "runtime_env": {},
    "driver_agent_http_address": None,
    "driver_node_id": None,
    "driver_exit_code": None,
}


def node_record(**changes: Any) -> dict[str, Any]:
    """One record of GET /api/v0/nodes (a real head started with --num-cpus 2 --num-gpus 2)."""
    record: dict[str, Any] = {
        "node_id": NODE_ID,
        "node_ip": "192.0.2.2",
        "is_head_node": True,
        "state": "ALIVE",
        "state_message": None,
        "node_name": "192.0.2.2",
        "resources_total": {
            "node:192.0.2.2": 1.0,
            "node:__internal_head__": 1.0,
            "memory": 17356314215.0,
            "object_store_memory": 7438420377.0,
            "CPU": 2.0,
            "GPU": 2.0,
        },
        "labels": {"ray.io/node-id": NODE_ID},
    }
    record.update(changes)
    return record


def nodes_answer(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "result": True,
        "msg": "",
        "data": {
            "result": {
                "total": len(records),
                "num_after_truncation": len(records),
                "num_filtered": len(records),
                "result": list(records),
                "partial_failure_warning": "",
                "warnings": None,
            }
        },
    }


DUPLICATE_ANSWER = (
    "Traceback (most recent call last):\n"
    '  File ".../ray/dashboard/modules/job/job_head.py", line 419, in submit_job\n'
    "RuntimeError: Request failed with status code 400: Traceback (most recent call last):\n"
    '  File ".../ray/dashboard/modules/job/job_manager.py", line 553, in submit_job\n'
    "    raise ValueError(\n"
    "ValueError: Job with submission_id aidc-7-1 already exists. Please use a different submission_id.\n"
    ".\n"
)
