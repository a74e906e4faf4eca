"""The tables, in SQLAlchemy Core. JSON values are kept as text that the mappers write and read,
so the same schema works on SQLite and PostgreSQL and a job spec is parsed straight from its text.

Migrations never import these definitions (a migration is a frozen picture of its time); they
serve the repositories and Alembic's autogenerate, which compares them with the migrated database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

from aidc.store.types import UtcDateTime

# Named constraints, so that later migrations can alter them by name on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False),
    Column("queue", String(63), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("user", Text, nullable=False),
    Column("spec", Text, nullable=False),  # JobSpec as JSON; never changes after submit
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("ended_at", UtcDateTime),
    Column("attempts_made", Integer, nullable=False, server_default="0"),
    Column("pending_reason", Text),
    Column("state_reason", Text),
    Column("not_before", UtcDateTime),
    Column("queued_at", UtcDateTime),  # when it last entered its queue: submit, or requeue after preemption
    Column("preemptions", Integer, nullable=False, server_default="0"),
    Column("interruptions", Integer, nullable=False, server_default="0"),
    Index("ix_jobs_state", "state"),
    Index("ix_jobs_queue_state", "queue", "state"),
    # AUTOINCREMENT: SQLite never hands out a deleted job's id again (the spec cache relies on it).
    sqlite_autoincrement=True,
)

attempts = Table(
    "attempts",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("nodes", Text, nullable=False),  # JSON list of node names
    Column("gpus", Text, nullable=False),  # JSON list of GPU indices
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("exit_code", Integer),
    Column("reason", Text),
    Column("endpoint", Text),  # kind serve: where the replica listens (http://host:port)
    # Partial index: open attempts are few, and the control loop asks for them every cycle.
    Index(
        "ix_attempts_open",
        "job_id",
        sqlite_where=text("ended_at IS NULL"),
        postgresql_where=text("ended_at IS NULL"),
    ),
    # Fair-share usage and run-time history are loaded at start from the attempts that ended lately.
    Index("ix_attempts_ended_at", "ended_at"),
)

queues = Table(
    "queues",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("quota", Text, nullable=False),  # Quota as JSON; unset caps are left out
    Column("weight", Float, nullable=False),
    Column("cohort", String(63)),
    # Borrowing and lending limits, time-sharing policy and quantum, as JSON; unset values are left out.
    Column("policy", Text, nullable=False, server_default="{}"),
    Column("created_at", UtcDateTime),
    Column("team", String(63), ForeignKey("teams.name")),  # None: a queue shared by every team
)

nodes = Table(
    "nodes",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("cpus", Float, nullable=False),
    Column("memory", BigInteger, nullable=False),  # bytes: well past 2**31
    Column("gpus", Text, nullable=False),  # JSON list of Gpu
    Column("state", String(16), nullable=False),
    Column("backend", Text),
    Column("labels", Text, nullable=False),  # JSON object
    Column("last_seen", UtcDateTime),
    Column("state_reason", Text),  # why the node is not UP (who cordoned it, which alert drained it)
    Column("state_since", UtcDateTime),
    # While DOWN: the state (and its reason) an operator or a rule had set, restored when the heartbeat returns.
    Column("held_state", String(16)),
    Column("held_reason", Text),
    Column("incidents_since", UtcDateTime),  # incidents before this (an operator's resume) no longer count
)

users = Table(
    "users",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),  # set: the user may no longer sign in; their tokens stop working
)

teams = Table(
    "teams",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

role_bindings = Table(
    "role_bindings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(63), ForeignKey("users.name"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("team", String(63), ForeignKey("teams.name")),  # None: the whole cluster
    Column("models", Text, nullable=False, server_default="[]"),  # JSON list; inference bindings only
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_role_bindings_user", "user"),
    sqlite_autoincrement=True,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),  # a label for people: "laptop", "ci"
    Column("user", String(63), nullable=False),
    Column("prefix", Text, nullable=False),
    Column("token_hash", String(255), nullable=False, unique=True),
    Column("scopes", Text),  # JSON list of actions; NULL: whatever the user may do
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
    Column("clients", Text, nullable=False, server_default="[]"),  # JSON list of client addresses seen
    Column("revoked", Boolean, nullable=False, server_default=false()),
    # A request finds its token by the visible prefix, then checks the (salted, slow) hash.
    Index("ix_api_tokens_prefix", "prefix"),
    Index("ix_api_tokens_user", "user"),
    sqlite_autoincrement=True,
)

# The audit log: a hash chain (aidc.security.audit). Rows are only ever inserted; on PostgreSQL a trigger
# rejects UPDATE and DELETE. `audit_head` holds one row: the last record's seq and hash, HMAC-signed.
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(63), nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("request_id", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_records_at", "at"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(64), nullable=False),
)

# Artifacts: each row is one version of a named artifact of a team (or of the cluster when team is NULL).
# Its files are a manifest of content-addressed chunks kept by aidc.storage, outside the database.
artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("team", String(63)),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # "file", "checkpoint", "dataset", "model"
    Column("manifest", Text, nullable=False),  # JSON: files, each with its chunks
    Column("size", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False, server_default="{}"),  # JSON object of floats
    Column("retention", Text, nullable=False, server_default="{}"),  # JSON: keep_last, keep_best, metric, mode
    Column("job_id", Integer),
    Column("created_by", String(63), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_artifacts_team_name", "team", "name"),
    sqlite_autoincrement=True,
)

# What went wrong on a node (heartbeat lost, an alert that acted on it, a job's transient failure there): the
# lemon detector counts them over a window.
node_incidents = Table(
    "node_incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(253), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(63), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_node_incidents_node_at", "node", "at"),
)

# Alerts as they started firing and resolved (the evaluator keeps only the current ones in memory).
alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("fingerprint", String(16), nullable=False),
    Column("alertname", String(253), nullable=False),
    Column("state", String(16), nullable=False),  # "firing" or "resolved"
    Column("severity", String(32), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False),  # JSON object
    Column("value", Float),
    Column("active_at", UtcDateTime, nullable=False),
    Index("ix_alert_events_at", "at"),
)

# Silences of alert notifications (Alertmanager's model); `matchers` is a JSON list of {name, value, is_regex,
# is_equal}. Expiring one sets ends_at, so they are kept, not deleted: the history says who silenced what.
alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("created_by", String(253), nullable=False),
    Column("comment", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_alert_silences_ends_at", "ends_at"),
)

# Who acknowledged a firing alert (one row per fingerprint; deleted when the alert resolves).
alert_acks = Table(
    "alert_acks",
    metadata,
    Column("fingerprint", String(16), primary_key=True),
    Column("alertname", String(253), nullable=False),
    Column("by", String(253), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("comment", Text, nullable=False),
)

# Downsampled history of every series (one row per series and bucket), so that a site without Prometheus
# still has history after a restart. `series` is the canonical JSON of its labels.
metric_history = Table(
    "metric_history",
    metadata,
    Column("name", String(255), nullable=False),
    Column("series", Text, nullable=False),
    Column("bucket", Float, nullable=False),
    Column("avg", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("last", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Index("ix_metric_history_name_bucket", "name", "bucket"),
)

# Model deployments (kind serve). The spec of every version is kept; replicas are jobs.
deployments = Table(
    "deployments",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("user", Text, nullable=False),
    Column("queue", String(63), nullable=False),
    Column("version", Integer, nullable=False),  # the stable version
    Column("replicas", Integer, nullable=False),  # wanted now
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime),
    Column("rollout", Text),  # JSON of the current or last Rollout
)

deployment_versions = Table(
    "deployment_versions",
    metadata,
    Column("deployment", String(63), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),  # JobSpec as JSON (secrets sealed)
    Column("created_by", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

deployment_replicas = Table(
    "deployment_replicas",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("deployment", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    # Set once the controller has taken note that the replica's job ended (and replaced it if needed).
    Column("retired", Boolean, nullable=False, server_default=false()),
    Index("ix_deployment_replicas_deployment", "deployment"),
)

# What each gateway last said about each replica: readiness, load and cumulative counters.
gateway_reports = Table(
    "gateway_reports",
    metadata,
    Column("gateway", String(128), primary_key=True),
    Column("job_id", Integer, primary_key=True),
    Column("endpoint", Text),
    Column("ready", Boolean, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("latency_sum", Float, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# Tokens per key and model, summed per minute by each gateway (several rows per minute are summed on read).
usage = Table(
    "usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("minute", UtcDateTime, nullable=False),
    Column("token_id", Integer),
    Column("user", Text, nullable=False),
    Column("team", String(63)),
    Column("model", String(128), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Index("ix_usage_minute", "minute"),
)

# Energy per attempt, node and hour (job_id 0: the node's unallocated energy); each accounting interval adds
# to its hour's row, so a row is the sum of the intervals of that hour.
energy_usage = Table(
    "energy_usage",
    metadata,
    Column("hour", UtcDateTime, primary_key=True),
    Column("node", String(253), primary_key=True),
    Column("job_id", Integer, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("user", Text),
    Column("queue", String(63)),
    Column("team", String(63)),
    Column("gpu_j_measured", Float, nullable=False),
    Column("gpu_j_estimated", Float, nullable=False),
    Column("cpu_j_measured", Float, nullable=False),
    Column("cpu_j_estimated", Float, nullable=False),
    Column("gpu_seconds", Float, nullable=False),
    Column("facility_j", Float, nullable=False),
    Column("cost", Float),
    Column("carbon_kg", Float),
    Index("ix_energy_usage_job", "job_id"),
)

# GPU power caps applied (or dry-run) for attempts; `reverted_at` set once the GPU's limit is restored.
power_caps = Table(
    "power_caps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("node", String(253), nullable=False),
    Column("gpu_index", Integer, nullable=False),
    Column("limit_watts", Float, nullable=False),
    Column("previous_watts", Float),
    Column("rule", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("reason", Text),
    Column("applied_at", UtcDateTime, nullable=False),
    Column("reverted_at", UtcDateTime),
    Index("ix_power_caps_job", "job_id", "attempt"),
)
