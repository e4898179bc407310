"""Library output about parts a run does not use, turned off before the libraries load (this
module imports none of them at import time)."""
from __future__ import annotations

import os
import sys


def quiet_libraries() -> None:
    """Before transformers' Trainer is imported. DeepSpeed is imported by transformers whenever it
    is installed, and on a machine without CUDA its accelerator auto-detection warns "Setting
    accelerator to CPU" even with DeepSpeed off: where there is no CUDA device, say it is the CPU
    (what the detection would conclude). Off a terminal, the download / shard progress bars of
    transformers and the Hub only fill the log with carriage returns."""
    import torch

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    if not sys.stderr.isatty():
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        disable_progress_bars()


def quiet_evaluation_libraries(log_level: str) -> None:
    """httpx / httpx2 (under the openai client) log every judge request at INFO: 805 lines for one
    AlpacaEval run; the judge client logs what matters (retries, failures) itself. alpaca_eval
    imports ``pkg_resources``, whose deprecation warning is about alpaca_eval's code, not the run.
    ``log_level=DEBUG`` keeps the requests."""
    import logging
    import warnings

    if logging.getLevelName(str(log_level).upper()) != logging.DEBUG:
        for transport in ("httpx", "httpx2"):  # the openai client's transport: httpx, or its fork httpx2
            logging.getLogger(transport).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
