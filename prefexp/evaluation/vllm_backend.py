"""Generation through an OpenAI-compatible vLLM server (GPU machines).

vLLM pins its own torch/transformers (../shared/docs/packages.md §9, beside the repository), so it
never shares this project's environment: either the server already runs (``eval.generation.vllm_url``) or ``VLLMServer``
starts ``<vllm_python> -m vllm.entrypoints.openai.api_server`` for the checkpoint, waits until
``/v1/models`` answers, and stops the process it started when evaluation ends.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from .config import GenerationConfig
from .gen_request import GREEDY_BELOW, GenRequest

log = logging.getLogger(__name__)


def _list_models(base_url: str, timeout_s: float = 5.0) -> list[str]:
    with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as resp:
        return [m["id"] for m in json.load(resp).get("data", [])]


class VLLMBackend:
    """Chat completions, one request per answer, many in flight (the server batches them)."""

    name = "vllm"

    def __init__(self, base_url: str, settings: GenerationConfig):
        import openai

        self.base_url = base_url
        self.settings = settings
        # A local server usually wants no key; the client insists on a string.
        key = os.environ.get(settings.vllm_api_key_env) or "EMPTY"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=3600, max_retries=3)
        self.model = settings.vllm_model or self._served_model()

    def _served_model(self) -> str:
        try:
            models = _list_models(self.base_url)
        except OSError as err:
            raise RuntimeError(f"vLLM server {self.base_url} is unreachable: {err}") from err
        if not models:
            raise RuntimeError(f"vLLM server {self.base_url} serves no model")
        return models[0]

    def _one(self, i_req: tuple[int, GenRequest]) -> str:
        i, req = i_req
        greedy = req.temperature < GREEDY_BELOW
        resp = self._client.chat.completions.create(
            model=self.model, messages=req.as_dicts(), max_tokens=req.max_new_tokens,
            temperature=0.0 if greedy else req.temperature, top_p=1.0 if greedy else req.top_p,
            seed=self.settings.seed + i)
        return (resp.choices[0].message.content or "").strip()

    def generate(self, requests: list[GenRequest]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.settings.vllm_concurrency) as pool:
            answers = list(pool.map(self._one, enumerate(requests)))
        log.info("vllm %s: generated %d answers", self.base_url, len(answers))
        return answers


class VLLMServer:
    """Context manager: start a vLLM OpenAI server for ``model_dir``; yields its base URL."""

    def __init__(self, settings: GenerationConfig, model_dir: str, chat_template: Optional[str],
                 work_dir: Path):
        self.settings = settings
        self.model_dir = model_dir
        self.chat_template = chat_template
        self.work_dir = Path(work_dir)
        self.url = f"http://127.0.0.1:{settings.vllm_port}/v1"
        self.proc: Optional[subprocess.Popen] = None

    def command(self) -> list[str]:
        s = self.settings
        cmd = [str(s.vllm_python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(self.model_dir), "--host", "127.0.0.1", "--port", str(s.vllm_port),
               "--served-model-name", s.vllm_model or "prefexp-model", "--seed", str(s.seed)]
        if self.chat_template:  # the manifest's template wins over whatever the tokenizer holds
            path = self.work_dir / "chat_template.jinja"
            path.write_text(self.chat_template)
            cmd += ["--chat-template", str(path)]
        return cmd + list(s.vllm_args)

    def __enter__(self) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.work_dir / "vllm_server.log"
        cmd = self.command()
        log.info("starting vLLM: %s (log: %s)", " ".join(cmd), log_path)
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.settings.vllm_startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._close_log()
                raise RuntimeError(f"vLLM server exited with code {self.proc.returncode} "
                                   f"before it was ready; see {log_path}")
            try:
                if _list_models(self.url, timeout_s=2.0):
                    return self.url
            except OSError:
                pass
            time.sleep(1.0)
        self.__exit__(None, None, None)
        raise RuntimeError(f"vLLM server not ready after {self.settings.vllm_startup_timeout_s}s; "
                           f"see {log_path}")

    def _close_log(self) -> None:
        if not self._log.closed:
            self._log.close()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # only the process started here
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()
