"""Service configuration, read from the environment (pydantic-settings).

Every port, URL and limit can be overridden by an environment variable of the
same name in upper case, e.g. ``JOB_MANAGER_URL=http://127.0.0.1:8083``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    job_time_budget_s: float = 400.0  # + the callback's worst case (~130 s) stays below the worker's 540 s timeout

    # Drive cycles: the project's folder first, then extra folders (os.pathsep separated)
    drive_cycles_dir: Path = REPO_ROOT / "drive_cycles"
    drive_cycle_path: str = ""

    # After this many Pub/Sub deliveries a job is reported failed instead of retried
    # (the subscription dead-letters after 5).
    max_delivery_attempts: int = 5

    # Model cache in a warm instance
    model_cache_entries: int = 8

    @property
    def topic_path(self) -> str:
        return f"projects/{self.google_cloud_project}/topics/{self.pubsub_topic}"

    @property
    def allowlist(self) -> list[str]:
        return [p.strip() for p in self.callback_url_allowlist.split(",") if p.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
