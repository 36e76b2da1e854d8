"""ONNX Runtime sessions: one per model per run, on the best provider that really works here.

Providers are tried in a fixed order of preference, filtered by what the installed onnxruntime
offers. A provider that fails to initialise (missing CUDA libraries, an old driver) is logged as a
warning and the next one is tried; ONNX Runtime itself sometimes falls back to the CPU silently, so
the provider a session really got is read back and logged. CPU always works.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDER_PREFERENCE = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
"""Most capable first. TensorRT builds engines per input shape, so it suits fixed-size models."""

Log = Callable[[str, str], None]


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are made.

    Attributes:
        threads: intra-op threads per session; 0 = one per core (CPU), 1 for GPU providers,
            whose work is not on the CPU.
        providers: restrict/override the preference list (e.g. ``("CPUExecutionProvider",)``).
    """

    threads: int = 0
    providers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


def choose_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """The providers to try, in order: preference (or ``requested``) ∩ available, CPU last."""
    order = list(requested) if requested else list(PROVIDER_PREFERENCE)
    chosen = [name for name in order if name in available and name != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def session_options(threads: int, provider: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    cpu = provider in ("CPUExecutionProvider", "OpenVINOExecutionProvider")
    # These defaults suit CPU inference; a GPU provider does the work on the device, and extra
    # CPU threads would only contend with decoding.
    options.intra_op_num_threads = threads or (_cpu_threads() if cpu else 1)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: Stash's log is for people
    return options


def _cpu_threads() -> int:
    """Default inference threads on the CPU: half the cores. Decoding runs at the same time on the
    other half; on 2 cores one inference thread made the whole pass 10 % faster than two
    (bench/bench_engine.py)."""
    return max(1, (os.cpu_count() or 2) // 2)


def create_session(model: Path | bytes, name: str, options: RuntimeOptions = RuntimeOptions(),
                   log: Log = lambda *_: None) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model`` on the best working provider.

    Raises:
        RuntimeError: no provider, CPU included, could load the model (the model is broken).
    """
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model
    errors: list[str] = []
    for provider in choose_providers(ort.get_available_providers(), options.providers):
        try:
            providers = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
            session = ort.InferenceSession(source, sess_options=session_options(options.threads, provider),
                                           providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types per provider
            errors.append(f"{provider}: {error}")
            if provider != "CPUExecutionProvider":
                log("warning", f"{name}: {provider} failed to start ({str(error)[:200]}); trying the next")
            continue
        actual = session.get_providers()[0]
        if actual != provider:
            log("warning", f"{name}: {provider} is not usable here; running on {actual}")
        log("debug", f"{name}: running on {actual}")
        return session
    raise RuntimeError(f"{name}: no ONNX Runtime provider can load the model: " + "; ".join(errors))
