"""The token cache: a run's token ids, found again by everything they are computed from.

Without it every run re-tokenised every pair before it could even look up its reference cache
(keyed by the ids): 144 CPU-s at 60k UltraFeedback pairs, on a cache hit too. The ids are a pure
function of the key's parts:

* the pairs, in order: index, prompt messages, chosen and rejected texts, and each group's
  responses when the loss reads groups;
* the tokenizer's content, not its name (a folder can be re-trained under the same name): the full
  JSON of its fast backend (vocabulary, merges, normalizer, pre-tokenizer, added tokens; its
  truncation and padding state left out, tokenising here sets neither), its class and special tokens,
  and the source file of a tokenizer class loaded with ``trust_remote_code``;
* the chat template string (which also fixes the end-of-turn marker closing each response);
* ``dataset.max_length`` and ``dataset.max_prompt_length`` (truncation);
* the code: :data:`TOKEN_RULES` (bump it when ``tokenize.py`` or ``groups.py`` change the ids they
  give for the same inputs) and the transformers, tokenizers and jinja2 versions that render and
  tokenise.

Group labels and slots (``dataset.group_positive``, ``group_positive_min``) are recomputed from the
pairs' ratings on every run (cheap, no tokenizer), so they are not cached and not in the key.

An entry is a checked folder ``<cache_dir>/tokens/<key>/`` (``prefexp.cachefs.build_folder_once``):
``tokens.npz`` (a :class:`~prefexp.engine.token_table.TokenTable`), ``DONE`` (the truncation counts
that ``tokenization_summary.json`` reports, and which pairs truncation made identical, so a hit
writes and warns exactly as a miss) and ``MANIFEST.json`` (sha256 of both, verified on every read:
an entry that fails is moved aside and rebuilt, with one warning). Only the main process writes;
``prefexp.pipeline.tokens`` runs it first, so the other ranks then read its entry. A tokenizer with
no fast backend has nothing exact to hash: it is tokenised every run (logged).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..cachefs import (BuildLock, CacheCorrupt, build_folder_once, done_marker_complete, lock_path, quarantine,
                       verify_folder)
from ..data.records import PreferencePair
from .distributed import rank, writes_cache
from .groups import group_response_ids
from .token_table import TokenTable
from .tokenize import TruncationStats, log_truncation, tokenize_pairs_quietly

log = logging.getLogger(__name__)

TOKEN_RULES = 1
WHAT = "token cache"
TABLE, DONE = "tokens.npz", "DONE"


@dataclass
class CachedTokens:
    examples: list[dict]  # {index, prompt_ids, chosen_ids, rejected_ids}: read-only int32 views, pair order
    group_ids: list[list[np.ndarray]]  # each pair's group response ids (empty lists without groups)
    stats: TruncationStats


def tokenizer_fingerprint(tokenizer) -> Optional[str]:
    """sha256 of what decides the tokenizer's ids, or None without a fast backend to read it from."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    if backend.truncation is not None or backend.padding is not None:  # call state, not content: hash a copy without
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    python_side = {"class": type(tokenizer).__name__, "special_tokens": tokenizer.special_tokens_map,
                   "eos_token_id": tokenizer.eos_token_id, "remote_code": _remote_code_digest(type(tokenizer)),
                   "split_special_tokens": getattr(tokenizer, "split_special_tokens", None)}
    h = hashlib.sha256(json.dumps(python_side, sort_keys=True, default=str).encode())
    h.update(backend.to_str().encode())  # serialised in a fixed field order: no need to parse megabytes of JSON
    return h.hexdigest()


def _remote_code_digest(cls) -> Optional[str]:
    """sha256 of the source file of a tokenizer class from outside transformers (trust_remote_code),
    whose Python may change the ids; transformers' own classes are covered by its version."""
    if cls.__module__.split(".")[0] == "transformers":
        return None
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(cls)).read_bytes()).hexdigest()
    except (TypeError, OSError):
        return f"unreadable:{cls.__module__}.{cls.__qualname__}"


def pairs_fingerprint(pairs: Sequence[PreferencePair], with_groups: bool) -> str:
    """sha256 of every pair's index and texts in order, each text length-prefixed (unambiguous, and
    ~5x faster than JSON-encoding long responses)."""
    h = hashlib.sha256()

    def feed(*texts: str) -> None:
        for text in texts:
            data = text.encode()
            h.update(len(data).to_bytes(8, "little") + data)

    for p in pairs:
        responses = p.extra["responses"] if with_groups else []
        feed(str(p.index), str(len(p.prompt)), *(x for m in p.prompt for x in (m["role"], m["content"])),
             p.chosen, p.rejected, str(len(responses)), *responses)
    return h.hexdigest()


def token_cache_dir(cache_dir: Path, pairs: Sequence[PreferencePair], tokenizer, max_length: int,
                    max_prompt_length: int, with_groups: bool) -> Optional[Path]:
    """``<cache_dir>/tokens/<key>`` (the module docstring lists the key), None if the tokenizer cannot be keyed."""
    tokenizer_key = tokenizer_fingerprint(tokenizer)
    if tokenizer_key is None:
        return None
    versions = {name: _version(name) for name in ("transformers", "tokenizers", "jinja2")}
    parts = {"rules": TOKEN_RULES, "versions": versions, "tokenizer": tokenizer_key,
             "chat_template": tokenizer.chat_template, "max_length": max_length,
             "max_prompt_length": max_prompt_length, "groups": with_groups,
             "pairs": pairs_fingerprint(pairs, with_groups)}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / "tokens" / key


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def cached_tokens(pairs: Sequence[PreferencePair], tokenizer, max_length: int, max_prompt_length: int,
                  with_groups: bool, cache_dir: Path) -> CachedTokens:
    """The token ids of ``pairs`` (``tokenize_pairs``, plus each group's responses ``with_groups``),
    read from the token cache or tokenised and, on the main process, written to it."""
    final = token_cache_dir(cache_dir, pairs, tokenizer, max_length, max_prompt_length, with_groups)
    args = (pairs, tokenizer, max_length, max_prompt_length, with_groups)
    if final is None:
        log.info("token cache off: %s has no fast (tokenizers) backend to fingerprint; tokenising %d pairs",
                 type(tokenizer).__name__, len(pairs))
        table, summary = _tokenise(*args)
    elif writes_cache():
        table, summary = _main_process_entry(final, *args)
    else:
        table, summary = _replica_entry(final, *args)
    examples, group_ids = table.examples()
    stats = TruncationStats(**summary["stats"])
    log_truncation(stats, summary["identical_after_truncation"], max_length, max_prompt_length)
    return CachedTokens(examples, group_ids, stats)


def _tokenise(pairs, tokenizer, max_length, max_prompt_length, with_groups) -> tuple[TokenTable, dict]:
    examples, stats, identical = tokenize_pairs_quietly(pairs, tokenizer, max_length, max_prompt_length)
    group_ids = group_response_ids(examples, pairs, tokenizer, max_length) if with_groups else None
    table = TokenTable.from_examples(examples, group_ids)
    summary = {"pairs": len(pairs), "tokens": len(table.ids), "stats": asdict(stats),
               "identical_after_truncation": identical, "max_length": max_length,
               "max_prompt_length": max_prompt_length, "groups": with_groups,
               "tokenizer": getattr(tokenizer, "name_or_path", None)}  # for a reader; the key hashes the content
    return table, summary


def _main_process_entry(final: Path, *args) -> tuple[TokenTable, dict]:
    """Build the entry if missing or failed (and keep what was tokenised), else read it."""
    made = _build(final, *args)
    if made is not None:
        return made
    try:
        return _read_hit(final, args[0])
    except CacheCorrupt as err:  # its checksums hold, but it is not these pairs' table: never reuse it
        with BuildLock(lock_path(final)):
            if final.exists():
                quarantine(final, str(err), WHAT)
    return _build(final, *args) or _read_hit(final, args[0])


def _build(final: Path, *args) -> Optional[tuple[TokenTable, dict]]:
    """Tokenise into the entry ``final`` unless it is there and verified (then None)."""
    made: list = []

    def build(tmp: Path) -> None:
        log.info("token cache miss: tokenising %d pairs", len(args[0]))
        table, summary = _tokenise(*args)
        table.save(tmp / TABLE)
        (tmp / DONE).write_text(json.dumps(summary, indent=1) + "\n")
        made.extend((table, summary))

    build_folder_once(final, build, what=WHAT)  # verified; a failed entry is moved aside and rebuilt
    if not made:
        return None
    log.info("token cache: %d pairs written to %s", len(args[0]), final)
    return made[0], made[1]


def _replica_entry(final: Path, *args) -> tuple[TokenTable, dict]:
    """Ranks > 0 never write: they read the main process's entry, or tokenise for themselves where
    they cannot see it (a cache dir local to another node)."""
    if done_marker_complete(final):
        try:
            verify_folder(final)
            return _read_hit(final, args[0])
        except CacheCorrupt as err:
            log.warning("%s: %s failed its check on rank %d (%s); tokenising here", WHAT, final, rank(), err)
    log.info("token cache miss: tokenising %d pairs (rank %d; the main process writes the cache)", len(args[0]), rank())
    return _tokenise(*args)


def _read_hit(final: Path, pairs: Sequence[PreferencePair]) -> tuple[TokenTable, dict]:
    """A verified entry's table and summary; :class:`CacheCorrupt` if they do not fit ``pairs``."""
    try:
        summary = json.loads((final / DONE).read_text())
        TruncationStats(**summary["stats"]), list(summary["identical_after_truncation"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheCorrupt(f"{DONE} unreadable ({err})") from None
    table = TokenTable.load(final / TABLE)
    if table.index.tolist() != [p.index for p in pairs]:
        raise CacheCorrupt(f"its {len(table.index)} pair indices are not the data's {len(pairs)}")
    log.info("token cache hit: %s (%d pairs)", final, len(pairs))
    return table, summary
