"""Service configuration, read from the environment (pydantic-settings).

The one place a setting is named: every module that needs one reads
``get_settings()``. Every port, URL and limit can be overridden by an environment
variable of the same name in upper case, e.g. ``JOB_MANAGER_URL=http://127.0.0.1:8083``.
To add a setting: add a field here and a row to the README's Configuration table.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # Pub/Sub
    google_cloud_project: str = "local-battery-sim"
    pubsub_topic: str = "simulation-jobs"
    publish_timeout_s: float = 30.0

    # Where results go (the Java Job Manager's receiver)
    job_manager_url: str = "http://127.0.0.1:8083"
    native_callback_path: str = "/simulationResult"
    callback_url_allowlist: str = ""  # comma-separated URL prefixes a job may name
    callback_signing_key: str = ""  # HMAC-SHA256 key; empty = unsigned callbacks
    callback_timeout_s: float = 20.0
    callback_total_budget_s: float = 60.0
    callback_gzip_min_bytes: int = 64 * 1024

    # Submit-side protection
    api_key: str = ""  # when set, submit requires header X-API-Key
    max_request_bytes: int = 256 * 1024

    # Worker limits
    # The memory of one worker instance (Cloud Functions --memory); the solver process may
    # use solver_memory_fraction of it, the rest is the function's own. Above that the
    # solve is stopped and the job fails saying it ran out of memory.
    instance_memory_mb: int = 2048
    solver_memory_fraction: float = 0.7
    job_time_budget_s: float = 400.0
    # An ageing study runs in segments of at most this long (and within the job's budget);
    # then it stores a checkpoint and continues in a new invocation (a Pub/Sub message).
    segment_budget_s: float = 300.0
    busy_wait_s: float = 2.0  # a push to a busy instance waits this long for it, then is refused  # + the callback's worst case (~130 s) stays below the worker's 540 s timeout

    # Drive cycles: the project's folder first, then extra folders (os.pathsep separated)
    drive_cycles_dir: Path = REPO_ROOT / "drive_cycles"
    drive_cycle_path: str = ""

    # After this many Pub/Sub deliveries a job is reported failed instead of retried
    # (the subscription dead-letters after 5).
    max_delivery_attempts: int = 5

    # Caches of a warm solver process: built models (the heavy ones), planned
    # configurations and parameter sets (BPX documents included), all bounded in
    # entries and together by one memory limit: least recently used entries go
    # first while the process is above it.
    model_cache_entries: int = 8
    plan_cache_entries: int = 64
    parameter_cache_entries: int = 16
    model_cache_max_rss_mb: float = 1200.0

    # Precompiled solver functions (shared.engine.precompiled): auto | always | never
    solver_compile: Literal["auto", "always", "never"] = "auto"
    aot_dir: Path = REPO_ROOT / "aot"

    # The local stack (local/stack.py): ports on 127.0.0.1
    submit_port: int = 8084
    worker_port: int = 8086
    pubsub_emulator_port: int = 8085
    firestore_emulator_port: int = 8087
    dead_letter_port: int = 8088

    # The job store (Firestore; FIRESTORE_EMULATOR_HOST points the client at the emulator)
    firestore_database: str = "(default)"
    jobs_collection: str = "jobs"
    sweeps_collection: str = "sweeps"
    stale_queued_s: float = 120.0  # POST /maintenance/requeue publishes again a job queued this long
    stale_running_s: float = 900.0  # ... or running this long (beyond any invocation's 540 s)
    retention_days: float = 30.0  # each record's expireAt; a Firestore TTL policy deletes it then
    store_timeout_s: float = 10.0  # one store call; beyond it submit answers 503, the worker nacks

    # The Java Job Manager's routes answer synchronously (the original service's body)
    # unless the request says "Prefer: respond-async" or this is false (then: 202 at once).
    legacy_sync_reply: bool = True
    legacy_wait_s: float = 45.0  # below OpenFeign's 60 s read time-out
    max_prefer_wait_s: float = 60.0  # the longest "Prefer: wait=N" honoured on native jobs
    legacy_callbacks: bool = True  # also POST legacy results to /simulateCell, /simulateDriveCycle

    @field_validator("solver_compile", mode="before")
    @classmethod
    def _compile_mode(cls, v):
        aliases = {"": "auto", "1": "always", "true": "always", "yes": "always",
                   "0": "never", "false": "never", "no": "never"}
        v = aliases.get(str(v).strip().lower(), str(v).strip().lower())
        if v not in ("auto", "always", "never"):
            raise ValueError(f"SOLVER_COMPILE must be one of auto, always, never (got {v!r})")
        return v

    @property
    def solver_max_rss_mb(self) -> float:
        return self.instance_memory_mb * self.solver_memory_fraction

    @property
    def topic_path(self) -> str:
        return f"projects/{self.google_cloud_project}/topics/{self.pubsub_topic}"

    @property
    def allowlist(self) -> list[str]:
        return [p.strip() for p in self.callback_url_allowlist.split(",") if p.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
