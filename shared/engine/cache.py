"""Bounded caches of one warm solver process, under one memory policy.

Three caches keep what is costly to make again: built simulations (``MODELS``,
the heaviest), planned configurations (``PLANS``) and parameter sets, BPX
documents included (``PARAMETER_SETS``). Each is an LRU cache bounded in entries
(``Settings``); ``trim_to_memory`` evicts least recently used entries, models
first, while the process is above ``MODEL_CACHE_MAX_RSS_MB``.
"""

from __future__ import annotations

import gc
import logging
import os
from collections import OrderedDict
from typing import Any, Generic, Optional, TypeVar

from shared.settings import get_settings

log = logging.getLogger(__name__)
V = TypeVar("V")


class LruCache(Generic[V]):
    """A least-recently-used cache of at most ``max_entries``."""

    def __init__(self, name: str, max_entries: int):
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[str, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Optional[V]:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: V) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self.evict_oldest("full")

    def evict_oldest(self, why: str) -> None:
        old, _ = self._entries.popitem(last=False)
        gc.collect()  # PyBaMM's solutions and models are freed only by the collector
        log.info("%s cache evicted %s (%s)", self.name, old[:12], why)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def rss_mb() -> float:
    """Resident memory of this process [MB] (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


_settings = get_settings()
MODELS: LruCache[Any] = LruCache("model", _settings.model_cache_entries)
PLANS: LruCache[Any] = LruCache("plan", _settings.plan_cache_entries)
PARAMETER_SETS: LruCache[Any] = LruCache("parameter set", _settings.parameter_cache_entries)
ALL = (MODELS, PLANS, PARAMETER_SETS)  # eviction order under memory pressure


def trim_to_memory(max_rss_mb: Optional[float] = None, caches: tuple[LruCache, ...] = ALL) -> None:
    """Evict least recently used entries (models first) while this process is above
    ``max_rss_mb``; each cache keeps its most recent entry (the job just run)."""
    limit = get_settings().model_cache_max_rss_mb if max_rss_mb is None else max_rss_mb
    for cache in caches:
        while len(cache) > 1 and rss_mb() > limit:
            cache.evict_oldest("memory")
