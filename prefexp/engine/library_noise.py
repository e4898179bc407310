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
