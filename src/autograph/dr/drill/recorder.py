"""The drill's own steps, run one at a time and recorded (the report's timings are these
records, not a stopwatch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autograph.clock import Clock
from autograph.dr.models import ProgressFn, StepRecord
from autograph.dr.ops.steps import Operation, Step
from autograph.errors import OperationFailed


class StepRecorder:
    """Runs the drill's own steps one at a time, recording each (a failure stops the drill)."""

    def __init__(self, clock: Clock, progress: ProgressFn) -> None:
        self.clock = clock
        self.progress = progress
        self.steps: list[StepRecord] = []
        self.results: dict[str, StepRecord] = {}

    def run(self, name: str, work: Callable[[], Any], timeout: float = 600.0) -> Any:
        """Run ``work`` as the step ``name``; its value back. Raises OperationFailed when it
        failed (the drill stops; its report says why)."""
        box: dict[str, Any] = {}

        def step(_ctx: Any) -> str:
            box["value"] = work()
            value = box["value"]
            return value if isinstance(value, str) else ""

        result = Operation(f"drill step {name}", [Step(name, step, timeout)],
                           clock=self.clock).run().steps[0]
        self.steps.append(result)
        self.results[name] = result
        self.progress(f"{name}: {result.status} {result.detail}".rstrip(), None)
        if result.status == "failed":
            raise OperationFailed(f"drill step {name} failed: {result.detail}")
        return box.get("value")
