"""Cluster files: nodes and GPU models declared by the operator (`aidc up --cluster cluster.yaml`).

```yaml
nodes:
  - name: dgx          # with count > 1 the nodes are dgx-01 ... dgx-16
    count: 16
    cpus: 224
    memory: 2TiB
    gpus: 8
    gpu_model: H100
    gpu_memory: 80GiB
    backend: slurm     # the engine that runs work there (default: none yet)
    nvlink_domain: nvl-a  # optional topology, used by the `topology` placement scorer: the NVLink
    switch: leaf-3        # domain, network switch and rack the nodes share (set as node labels of
    rack: r1              # the same names)
    labels: {zone: east}
power: {...}               # budgets and caps: aidc.domain.power
energy: {...}              # PUE, prices, carbon: aidc.domain.site_energy
```
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.nodes import Gpu, Node
from aidc.domain.power import PowerSpec
from aidc.domain.resources import MAX_CPUS_PER_NODE, MAX_GPUS_PER_NODE, MAX_MEMORY_PER_NODE
from aidc.domain.site_energy import EnergySpec
from aidc.domain.units import parse_size

MAX_NODES_PER_GROUP = 100_000
# Node labels the topology fields set; the `topology` scorer reads them (aidc.sched.scoring.topology).
TOPOLOGY_LABELS = ("nvlink_domain", "switch", "rack")
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$"


class NodeGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
    count: int = Field(default=1, ge=1, le=MAX_NODES_PER_GROUP)
    cpus: float = Field(gt=0, le=MAX_CPUS_PER_NODE)
    memory: int = Field(gt=0, le=MAX_MEMORY_PER_NODE)
    gpus: int = Field(default=0, ge=0, le=MAX_GPUS_PER_NODE)
    gpu_model: str | None = None
    gpu_memory: int = Field(default=0, ge=0)
    backend: str | None = None
    nvlink_domain: str | None = Field(
        default=None, pattern=_LABEL, description="NVLink domain the nodes share (e.g. one NVL72 rack)"
    )
    switch: str | None = Field(default=None, pattern=_LABEL, description="Network switch the nodes hang off")
    rack: str | None = Field(default=None, pattern=_LABEL, description="Rack the nodes sit in")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("memory", "gpu_memory", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_size(value)
        return value

    @model_validator(mode="after")
    def _gpu_model_given(self) -> NodeGroup:
        if self.gpus and not self.gpu_model:
            raise ValueError("gpu_model is required when gpus > 0")
        for key, value in self.topology().items():
            if self.labels.get(key, value) != value:
                raise ValueError(f"{key} is {value!r} but labels.{key} is {self.labels[key]!r}")
        return self

    def topology(self) -> dict[str, str]:
        """The topology fields that are set, as node labels."""
        values = {"nvlink_domain": self.nvlink_domain, "switch": self.switch, "rack": self.rack}
        return {key: value for key, value in values.items() if value is not None}

    def node_names(self) -> list[str]:
        if self.count == 1:
            return [self.name]
        width = max(2, len(str(self.count)))
        return [f"{self.name}-{i:0{width}d}" for i in range(1, self.count + 1)]

    def nodes(self) -> list[Node]:
        labels = {**self.labels, **self.topology()}
        out = []
        for name in self.node_names():
            gpus = tuple(
                Gpu(index=i, uuid=f"{name}-gpu{i}", model=self.gpu_model or "", memory=self.gpu_memory)
                for i in range(self.gpus)
            )
            out.append(
                Node(name=name, cpus=self.cpus, memory=self.memory, gpus=gpus, backend=self.backend, labels=labels)
            )
        return out


class ClusterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeGroup] = Field(default_factory=list)
    power: PowerSpec = Field(default_factory=PowerSpec, description="power budgets and GPU power caps")
    energy: EnergySpec = Field(default_factory=EnergySpec, description="PUE, prices and grid carbon intensity")

    @model_validator(mode="after")
    def _unique_names(self) -> ClusterSpec:
        seen: set[str] = set()
        for group in self.nodes:
            for name in group.node_names():
                if name in seen:
                    raise ValueError(f"node name {name!r} appears twice")
                seen.add(name)
        return self

    def all_nodes(self) -> list[Node]:
        return [node for group in self.nodes for node in group.nodes()]
