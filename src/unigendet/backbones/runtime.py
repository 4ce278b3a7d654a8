"""Frozen backbones run by ONNX Runtime on the CPU.

A backbone that declares itself `exportable` is traced once into an ONNX graph (any batch size)
and run by ONNX Runtime, which folds batch norm into the convolutions, picks blocked memory
layouts and runs the depthwise convolutions of mobile networks several times faster than eager
PyTorch on a CPU (`bench/detector_speed.py` measures both). Its features agree with the module's
to about 1e-5. Graphs are built in memory, once per process for each set of weights: the cache key
is the backbone's name and a digest of its state dict when the graph is made, so a changed network
is exported anew.

Runtimes: "torch" (the module itself), "onnx" (this), "auto" (onnx on a CPU when ONNX Runtime is
installed, else torch).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict

import numpy as np
import torch

from .base import Backbone, state_digest

RUNTIMES = ("auto", "torch", "onnx")
BATCH = 4  # images per graph call: larger batches spill the early feature maps out of cache on small CPUs

SESSIONS_KEPT = 8  # sessions cached for reuse; the least recently used is dropped (its holders keep it alive)
_SESSIONS: OrderedDict[str, object] = OrderedDict()
_LOCK = threading.Lock()


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401  (the exporter writes through it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(runtime: str, device: str | torch.device) -> str:
    """The runtime that will actually run ("torch" or "onnx") for a requested one on `device`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == "auto":
        return "onnx" if on_cpu and onnx_available() else "torch"
    if runtime == "onnx" and not on_cpu:
        raise ValueError(f"the onnx runtime runs on the CPU only, not on {device}")
    if runtime == "onnx" and not onnx_available():
        raise RuntimeError("the onnx runtime needs onnxruntime and onnx: pip install onnxruntime onnx")
    return runtime


def export(model: Backbone, side: int) -> bytes:
    """The backbone as an ONNX graph from (B, 3, side, side) float32 to (B, feature_dim)."""
    model = model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter: exact for these convolutional graphs, needs no onnxscript, and
        # warns about its deprecation and about slices it leaves unfolded
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, side, side),), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    return buf.getvalue()


def _session(graph: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # idle threads sleep instead of spinning: torch's own threads run the work between graph calls
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class ExportedBackbone:
    """A frozen backbone's forward pass run by ONNX Runtime: (B, 3, side, side) -> (B, feature_dim),
    like the module (the module's weights as they are when this is made)."""

    def __init__(self, model: Backbone, side: int, batch_size: int = BATCH):
        self.name, self.feature_dim, self.side, self.batch_size = model.name, model.feature_dim, side, batch_size
        threads = torch.get_num_threads()
        # the name too: networks with the same weights may read different inputs (RGB or high-pass)
        key = f"{model.name}|{type(model).__name__}|{state_digest(model)}|{side}|{threads}"
        with _LOCK:
            if key not in _SESSIONS:
                _SESSIONS[key] = _session(export(model, side), threads)
                while len(_SESSIONS) > SESSIONS_KEPT:
                    _SESSIONS.popitem(last=False)
            _SESSIONS.move_to_end(key)
            self.session = _SESSIONS[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (3, self.side, self.side):
            raise ValueError(f"{self.name}: expected (B, 3, {self.side}, {self.side}) input, got {tuple(x.shape)}")
        a = x.detach().cpu().float().contiguous().numpy()
        rows = [self.session.run(None, {"x": a[s : s + self.batch_size]})[0]
                for s in range(0, len(a), self.batch_size)]
        return torch.from_numpy(np.concatenate(rows) if rows else np.empty((0, self.feature_dim), np.float32))
