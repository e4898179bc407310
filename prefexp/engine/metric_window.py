"""The logged scalars of one logging window, kept on the device until the window is logged.

Each micro-batch adds a dozen scalars (rewards, log-probs, per-route splits, the loss's own
metrics); reading each with ``.item()`` was a host sync per scalar per micro-batch, which stalls
a GPU's queue. Here they stay 0-d tensors and ``means`` copies them all to the host at once, at
the logging step. The values are those of the per-micro-batch ``.item()`` mean: each entry is the
same float32 number, averaged over the window's micro-batches in Python.

A masked mean (a route's pairs) is ``sum / count`` with its count kept beside it; micro-batches
where the mask selected nothing are left out of the window's mean (as ``if mask.any()`` did), and
a key no micro-batch selected is absent from the log.
"""
from __future__ import annotations

from collections import defaultdict


class MetricWindow:
    def __init__(self):
        self._values: dict[str, list] = defaultdict(list)  # 0-d tensors or floats
        self._counts: dict[str, list] = {}  # masked keys: one count per entry

    def __bool__(self) -> bool:
        return bool(self._values)

    def add(self, key: str, value) -> None:
        """A 0-d tensor (kept, detached, as float32) or a Python number."""
        self._values[key].append(value.detach().float().reshape(()) if hasattr(value, "detach") else float(value))

    def add_masked_mean(self, key: str, values, mask) -> None:
        """The mean of ``values[mask]``, without the host sync of boolean indexing."""
        import torch

        count = mask.sum()
        total = torch.where(mask, values.detach().float(), torch.zeros((), device=values.device)).sum()
        self._values[key].append(total / count.clamp(min=1))
        self._counts.setdefault(key, []).append(count)

    def means(self) -> dict[str, float]:
        """Every key's mean over the window, with one device-to-host copy; then the window is empty."""
        import torch

        tensors = [v for values in self._values.values() for v in values if hasattr(v, "detach")]
        tensors += [c.float() for counts in self._counts.values() for c in counts]
        device = tensors[0].device if tensors else None  # a loss may return a CPU metric beside GPU log-probs
        host = iter(torch.stack([t.to(device) for t in tensors]).tolist()) if tensors else iter(())
        floats = {key: [next(host) if hasattr(v, "detach") else v for v in values] for key, values in self._values.items()}
        counts = {key: [next(host) for _ in values] for key, values in self._counts.items()}
        out = {}
        for key, values in floats.items():
            if key in counts:
                values = [v for v, n in zip(values, counts[key]) if n > 0]
            if values:
                out[key] = sum(values) / len(values)
        self._values.clear()
        self._counts.clear()
        return out
