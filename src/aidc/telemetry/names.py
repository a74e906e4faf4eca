"""Every series aidc exposes: name, type and help in one place, so that collectors, the exposition, the
default rules and the Grafana dashboard agree (tests check the last two against this list).

GPU series carry NVIDIA dcgm-exporter's names, units and labels (gpu, UUID, device, modelName, Hostname), so
dashboards and rules written for dcgm-exporter work unchanged. Everything else is `aidc_*`."""

from __future__ import annotations

from dataclasses import dataclass

from aidc.telemetry.series import MetricType


@dataclass(frozen=True)
class SeriesName:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()


GPU_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")


def _gpu(name: str, help_: str, type_: MetricType = "gauge") -> SeriesName:
    return SeriesName(f"DCGM_FI_DEV_{name}", type_, help_, GPU_LABELS)


# ---------------------------------------------------------------------------------------------- GPUs (NVML)
GPU_UTIL = _gpu("GPU_UTIL", "GPU utilization (in %).")
MEM_COPY_UTIL = _gpu("MEM_COPY_UTIL", "Memory utilization (in %).")
FB_USED = _gpu("FB_USED", "Framebuffer memory used (in MiB).")
FB_FREE = _gpu("FB_FREE", "Framebuffer memory free (in MiB).")
FB_TOTAL = _gpu("FB_TOTAL", "Framebuffer memory total (in MiB).")
GPU_TEMP = _gpu("GPU_TEMP", "GPU temperature (in C).")
MEMORY_TEMP = _gpu("MEMORY_TEMP", "Memory temperature (in C).")
POWER_USAGE = _gpu("POWER_USAGE", "Power draw (in W).")
POWER_MGMT_LIMIT = _gpu("POWER_MGMT_LIMIT", "Power management limit (in W).")
TOTAL_ENERGY_CONSUMPTION = _gpu("TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", "counter")
SM_CLOCK = _gpu("SM_CLOCK", "SM clock frequency (in MHz).")
MEM_CLOCK = _gpu("MEM_CLOCK", "Memory clock frequency (in MHz).")
XID_ERRORS = _gpu("XID_ERRORS", "Value of the last XID error encountered (0: none in the last 5 minutes).")
ECC_SBE_VOL_TOTAL = _gpu("ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", "counter")
ECC_DBE_VOL_TOTAL = _gpu("ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", "counter")
ECC_SBE_AGG_TOTAL = _gpu("ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors.", "counter")
ECC_DBE_AGG_TOTAL = _gpu("ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors.", "counter")
CORRECTABLE_REMAPPED_ROWS = _gpu(
    "CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors.", "counter"
)
UNCORRECTABLE_REMAPPED_ROWS = _gpu(
    "UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors.", "counter"
)
ROW_REMAP_FAILURE = _gpu("ROW_REMAP_FAILURE", "Whether remapping of rows has failed.")
CLOCK_THROTTLE_REASONS = _gpu("CLOCK_THROTTLE_REASONS", "Current clock throttle reasons (NVML bitmask).")
NVLINK_CRC_FLIT_ERRORS = _gpu(
    "NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "Total number of NVLink flow-control CRC errors.", "counter"
)
NVLINK_CRC_DATA_ERRORS = _gpu("NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "Total number of NVLink data CRC errors.", "counter")
NVLINK_REPLAY_ERRORS = _gpu("NVLINK_REPLAY_ERROR_COUNT_TOTAL", "Total number of NVLink retries.", "counter")
NVLINK_RECOVERY_ERRORS = _gpu("NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "Total number of NVLink recovery errors.", "counter")
PCIE_REPLAY_COUNTER = _gpu("PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", "counter")
GPU_XID_EVENTS = SeriesName(
    "aidc_gpu_xid_events_total", "counter", "XID errors seen by NVML, by XID.", ("gpu", "UUID", "Hostname", "xid")
)

# ------------------------------------------------------------------------------------------- nodes (psutil)
NODE_CPU = SeriesName("aidc_node_cpu_utilization_ratio", "gauge", "CPU busy time over all cores (0..1).", ("node",))
NODE_LOAD1 = SeriesName("aidc_node_load1", "gauge", "1-minute load average.", ("node",))
NODE_LOAD5 = SeriesName("aidc_node_load5", "gauge", "5-minute load average.", ("node",))
NODE_LOAD15 = SeriesName("aidc_node_load15", "gauge", "15-minute load average.", ("node",))
NODE_MEMORY_TOTAL = SeriesName("aidc_node_memory_total_bytes", "gauge", "Physical memory.", ("node",))
NODE_MEMORY_AVAILABLE = SeriesName(
    "aidc_node_memory_available_bytes", "gauge", "Memory available to new processes.", ("node",)
)
NODE_MEMORY_USED_RATIO = SeriesName(
    "aidc_node_memory_used_ratio", "gauge", "Share of memory not available (0..1).", ("node",)
)
NODE_DISK_TOTAL = SeriesName("aidc_node_disk_total_bytes", "gauge", "File system size.", ("node", "mountpoint"))
NODE_DISK_USED = SeriesName("aidc_node_disk_used_bytes", "gauge", "File system bytes used.", ("node", "mountpoint"))
NODE_DISK_USED_RATIO = SeriesName(
    "aidc_node_disk_used_ratio", "gauge", "Share of the file system used (0..1).", ("node", "mountpoint")
)
NODE_NET_RECEIVE = SeriesName("aidc_node_network_receive_bytes_total", "counter", "Bytes received.", ("node", "device"))
NODE_NET_TRANSMIT = SeriesName("aidc_node_network_transmit_bytes_total", "counter", "Bytes sent.", ("node", "device"))
NODE_TEMPERATURE = SeriesName(
    "aidc_node_temperature_celsius", "gauge", "Hardware sensor temperature, where readable.", ("node", "sensor")
)

# ------------------------------------------------------------------------------------- jobs (process trees)
# `job_id`, not `job`: Prometheus sets `job` on every scraped series (the scrape job), and would rename ours.
NODE_CPU_ENERGY = SeriesName(
    "aidc_node_cpu_energy_joules_total",
    "counter",
    "CPU package energy from RAPL (top-level package zones; sum over zone for the node).",
    ("node", "zone"),
)
NODE_RAPL_ENERGY = SeriesName(
    "aidc_node_rapl_energy_joules_total",
    "counter",
    "Energy of the other RAPL zones: package subzones (core, uncore inside the package; dram apart) and psys "
    "(the whole platform). Not to be added to the CPU figure.",
    ("node", "zone"),
)
JOB_LABELS = ("job_id", "attempt", "node", "queue", "user")
JOB_CPU = SeriesName("aidc_job_cpu_utilization_ratio", "gauge", "CPU cores busy in the job's process tree.", JOB_LABELS)
JOB_MEMORY = SeriesName("aidc_job_memory_rss_bytes", "gauge", "Resident memory of the job's process tree.", JOB_LABELS)
JOB_PROCESSES = SeriesName("aidc_job_processes", "gauge", "Processes in the job's tree.", JOB_LABELS)
JOB_GPU_MEMORY = SeriesName(
    "aidc_job_gpu_memory_used_bytes", "gauge", "GPU memory used by the job's processes.", JOB_LABELS
)
JOB_GPU_UTIL = SeriesName(
    "aidc_job_gpu_utilization_percent", "gauge", "Mean utilization of the job's GPUs (in %).", JOB_LABELS
)

# ------------------------------------------------------------------------------- control plane (the store)
# ---------------------------------------------------------------------------------------------- energy
# From the energy meter (aidc.services.energy_meter), once per accounting interval (a minute by default).
# `source` is "measured" (NVML, RAPL) or "estimate" (the catalog's model) for the interval's figure.
ENERGY_JOB_LABELS = ("job_id", "attempt", "queue", "user", "team")
NODE_POWER = SeriesName(
    "aidc_node_power_watts",
    "gauge",
    "IT power of a node over the last accounting interval (GPUs and CPUs), W.",
    ("node", "source"),
)
NODE_ENERGY = SeriesName(
    "aidc_node_energy_joules_total",
    "counter",
    "IT energy of a node accounted since this control plane started, J.",
    ("node",),
)
JOB_POWER = SeriesName(
    "aidc_job_power_watts",
    "gauge",
    "IT power of a running attempt over the last accounting interval, W.",
    (*ENERGY_JOB_LABELS, "source"),
)
JOB_ENERGY = SeriesName(
    "aidc_job_energy_joules_total",
    "counter",
    "IT energy of a running attempt accounted since this control plane started, J.",
    ENERGY_JOB_LABELS,
)
TEAM_ENERGY = SeriesName(
    "aidc_team_energy_joules_total",
    "counter",
    "IT energy of a team's jobs accounted since this control plane started, J.",
    ("team",),
)
TEAM_ENERGY_COST = SeriesName(
    "aidc_team_energy_cost_total",
    "counter",
    "Cost of a team's facility energy accounted since this control plane started.",
    ("team", "currency"),
)
TEAM_CARBON = SeriesName(
    "aidc_team_carbon_kg_total",
    "counter",
    "Carbon (kg CO2e) of a team's facility energy accounted since this control plane started.",
    ("team",),
)
SITE_POWER = SeriesName(
    "aidc_site_power_watts", "gauge", "IT power of every node over the last accounting interval, W."
)
SITE_PUE = SeriesName("aidc_site_pue", "gauge", "The site's power usage effectiveness (facility / IT).")
SITE_POWER_BUDGET = SeriesName("aidc_site_power_budget_watts", "gauge", "The site's IT power budget (cluster file), W.")

QUEUE_PENDING_JOBS = SeriesName("aidc_queue_pending_jobs", "gauge", "Jobs waiting in the queue.", ("queue",))
QUEUE_PENDING_GPUS = SeriesName("aidc_queue_pending_gpus", "gauge", "GPUs the waiting jobs ask for.", ("queue",))
QUEUE_RUNNING_JOBS = SeriesName("aidc_queue_running_jobs", "gauge", "Jobs of the queue running now.", ("queue",))
QUEUE_FAIR_SHARE = SeriesName(
    "aidc_queue_fair_share",
    "gauge",
    "Fair-share standing: the weighted dominant share (decayed past use plus use now); lower goes first.",
    ("queue",),
)
QUEUE_GPUS_IN_USE = SeriesName("aidc_queue_gpus_in_use", "gauge", "GPUs held by the queue's running jobs.", ("queue",))
QUEUE_GPUS_BORROWED = SeriesName(
    "aidc_queue_gpus_borrowed", "gauge", "GPUs the queue holds above its quota, lent by its cohort.", ("queue",)
)
QUEUE_WAIT = SeriesName("aidc_queue_wait_seconds", "histogram", "Time from submit (or requeue) to start.", ("queue",))
QUEUE_WAIT_SLO = SeriesName(
    "aidc_queue_wait_slo_seconds", "gauge", "The queue's p95 queueing-time objective.", ("queue",)
)
JOBS = SeriesName("aidc_jobs", "gauge", "Jobs by state.", ("state",))
JOB_PENDING_SECONDS = SeriesName(
    "aidc_job_pending_seconds", "gauge", "How long a pending job has waited.", ("job_id", "queue", "user")
)
JOB_PENDING_GPUS = SeriesName(
    "aidc_job_pending_gpus", "gauge", "GPUs a pending job asks for.", ("job_id", "queue", "user")
)
GPUS_TOTAL = SeriesName("aidc_gpus", "gauge", "GPUs on nodes that are not DOWN.")
GPUS_ALLOCATED = SeriesName("aidc_gpus_allocated", "gauge", "GPUs allocated to running jobs.")
ALLOCATION_RATIO = SeriesName("aidc_allocation_ratio", "gauge", "Allocated over usable GPUs (0..1).")
NODE_GPUS_FREE = SeriesName("aidc_node_gpus_free", "gauge", "GPUs free on a node that accepts work.", ("node",))
SCHEDULER_CYCLE = SeriesName("aidc_scheduler_cycle_seconds", "histogram", "Duration of scheduling cycles.")
JOB_RETRIES = SeriesName("aidc_job_retries_total", "counter", "Attempts retried after a failure.")
JOB_PREEMPTIONS = SeriesName("aidc_job_preemptions_total", "counter", "Jobs preempted.")
NODE_UP = SeriesName(
    "aidc_node_up", "gauge", "1 when the node is UP (accepting work or running it), else 0.", ("node",)
)
NODE_STATE = SeriesName("aidc_node_state", "gauge", "1 for the node's current state.", ("node", "state"))
NODE_HEARTBEAT_AGE = SeriesName(
    "aidc_node_heartbeat_age_seconds", "gauge", "Seconds since the node's agent was last heard from.", ("node",)
)
ALERTS_FIRING = SeriesName("aidc_alerts_firing", "gauge", "Alerts firing, by severity.", ("severity",))


# -------------------------------------------------------------------------------- inference gateway (issue 7)
# `replica` is the replica's job id. Codes are the HTTP status the client got (499: it went away first).
GATEWAY_REQUESTS = SeriesName(
    "aidc_gateway_requests_total",
    "counter",
    "Requests answered by the gateway, by model, replica and HTTP status.",
    ("model", "replica", "code"),
)
GATEWAY_ERRORS = SeriesName(
    "aidc_gateway_errors_total",
    "counter",
    "Failed attempts to reach a replica (connect, broken, upstream_5xx, timeout) and requests with no replica.",
    ("model", "replica", "kind"),
)
GATEWAY_REQUEST_DURATION = SeriesName(
    "aidc_gateway_request_duration_seconds",
    "histogram",
    "Time from a request's arrival at the gateway to the last byte of its response.",
    ("model",),
)
GATEWAY_TTFT = SeriesName(
    "aidc_gateway_time_to_first_token_seconds",
    "histogram",
    "Streamed requests: time from arrival at the gateway to the first event sent to the client.",
    ("model",),
)
GATEWAY_TOKENS = SeriesName(
    "aidc_gateway_tokens_total", "counter", "Tokens metered, by kind (prompt, completion).", ("model", "kind")
)
GATEWAY_IN_FLIGHT = SeriesName(
    "aidc_gateway_replica_in_flight", "gauge", "Requests the gateway has in flight to a replica.", ("model", "replica")
)
GATEWAY_REPLICA_READY = SeriesName(
    "aidc_gateway_replica_ready",
    "gauge",
    "1 when a replica gets traffic (its readiness check passes and its circuit is not open).",
    ("model", "replica"),
)
GATEWAY_EJECTIONS = SeriesName(
    "aidc_gateway_replica_ejections_total",
    "counter",
    "Replicas taken out of rotation, by reason (passive: consecutive failures; probe: readiness check failed).",
    ("model", "replica", "reason"),
)
GATEWAY_READMISSIONS = SeriesName(
    "aidc_gateway_replica_readmissions_total",
    "counter",
    "Ejected replicas put back in rotation, by reason (passive: half-open request passed; probe: check passed).",
    ("model", "replica", "reason"),
)
GATEWAY_RETRIES = SeriesName(
    "aidc_gateway_retries_total", "counter", "Requests sent again to another replica after a failure.", ("model",)
)
GATEWAY_RATE_LIMITED = SeriesName(
    "aidc_gateway_rate_limited_total",
    "counter",
    "Requests refused by a rate limit, by scope (key, team) and limit (requests, tokens, concurrent).",
    ("scope", "limit"),
)


def all_names() -> dict[str, SeriesName]:
    """Every exposed series by name (histograms also expose `_bucket`, `_sum`, `_count`)."""
    return {v.name: v for v in globals().values() if isinstance(v, SeriesName)}
