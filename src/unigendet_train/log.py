"""The one run logger of the training package: `out/log.jsonl` always (appended, so a
resumed run continues its log; `fresh=True` starts it anew), TensorBoard when installed,
a progress bar with ETA when the length is known. `log(step, values, kind)` writes a
step's named values; calling the logger with keywords writes a free-form event row."""

from __future__ import annotations

import json
import time
from pathlib import Path

from unigendet.progress import progress_bar


class RunLogger:
    def __init__(self, out: str | Path, total_steps: int = 0, enabled: bool = True, start_step: int = 0,
                 progress: bool = True, fresh: bool = False, tensorboard: bool = True):
        self.enabled = enabled
        self.out = Path(out)
        self.file = None
        self.tb = None
        self.bar = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.file = (self.out / "log.jsonl").open("w" if fresh else "a", encoding="utf-8")
        try:
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
        except ImportError:  # tensorboard is optional
            self.tb = None
        if progress and total_steps:
            self.bar = progress_bar(total=total_steps, initial=start_step, desc=self.out.name, unit="step")
        self.t0 = time.time()

    def log(self, step: int, values: dict[str, float], kind: str = "train") -> None:
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, "time": round(time.time() - self.t0, 3), **values}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{kind}/{k}", v, step)
        if self.bar is not None and kind == "train":
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k != "lr"}, refresh=False)

    def __call__(self, **row) -> None:
        if self.enabled:
            self.file.write(json.dumps({**row, "time": round(time.time() - self.t0, 3)}) + "\n")
            self.file.flush()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()
