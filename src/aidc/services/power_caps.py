"""The store as the power-cap controller's recorder (`control.power_caps.CapRecorder`): each call is one
committed transaction, so a cap is on disk before the attempt goes on."""

from __future__ import annotations

from datetime import datetime

from aidc.domain.power import PowerCapRecord
from aidc.ports import Store


class StoreCapRecorder:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, row: PowerCapRecord) -> None:
        with self._store.unit_of_work() as uow:
            uow.power_caps.add(row)
            uow.commit()

    def mark_reverted(self, job_id: int, attempt: int, at: datetime) -> None:
        with self._store.unit_of_work() as uow:
            uow.power_caps.mark_reverted(job_id, attempt, at)
            uow.commit()

    def open_caps(self) -> list[PowerCapRecord]:
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.power_caps.list(open_only=True)
