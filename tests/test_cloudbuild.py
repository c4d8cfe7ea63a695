"""Offline checks of ``cloudbuild.yaml``.

The Google Cloud control plane (Cloud Build, Cloud Functions, Eventarc, Pub/Sub,
Secret Manager, Firestore, IAM) cannot run here, so this file validates the build
config offline:

* the YAML is read with PyYAML and its steps, flags, substitutions and step order
  are checked against the repository (entry points in ``main.py``, files the
  steps name, the service's settings);
* the Firestore step's script runs under bash with ``gcloud`` replaced by a shell
  function that records each call and answers as a fresh project, a re-run or a
  failing project would (no gcloud needed);
* the gcloud CLI, run with an empty configuration directory (no account, no GCE
  metadata credentials, API endpoints pointed at a closed local port), parses the
  file, the deploy commands' flags and the Firestore step's commands; every command
  then stops at "no active account", so nothing reaches Google Cloud.

The ``test_gcloud_*`` tests need ``gcloud`` on PATH and fail (not skip) without
it. Cloud Build's unit-test step deselects them: its python:3.11 image has no
gcloud.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.conftest import REPO

CONFIG = REPO / "cloudbuild.yaml"

# Substitutions Cloud Build provides itself (no leading underscore, plus the
# pull-request ones).
BUILT_IN_SUBSTITUTIONS = {
    "PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME",
    "TRIGGER_BUILD_CONFIG_PATH", "COMMIT_SHA", "SHORT_SHA", "REVISION_ID",
    "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME",
    "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT",
    "_HEAD_BRANCH", "_BASE_BRANCH", "_HEAD_REPO_URL", "_PR_NUMBER",
}

# `$$` is an escaped dollar (left for bash); `${NAME}` and `$NAME` are substitutions.
SUBSTITUTION = re.compile(r"\$\$|\$\{(\w+)\}|\$(\w+)")

GCLOUD_TIMEOUT_S = 60
NO_ACCOUNT = re.compile(r"active account|credentials|gcloud auth login", re.IGNORECASE)
GCLOUD_PARSE_ERROR = re.compile(r"parsing .*\.yaml|interpreting .* as build config", re.IGNORECASE)
GCLOUD_FLAG_ERROR = re.compile(
    r"unrecognized arguments|argument --|Bad syntax|Invalid value|is not a valid|"
    r"must be specified|cannot be specified|at most one of|Usage: gcloud",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------
# Reading the config
# --------------------------------------------------------------------------
def load_config() -> dict:
    with CONFIG.open() as f:
        return yaml.safe_load(f)


def step_script(step: dict) -> str:
    """What a step runs, as shell text: the ``bash -c`` script, or entrypoint + args."""
    args = [str(a) for a in step.get("args", [])]
    entrypoint = step.get("entrypoint")
    if entrypoint in ("bash", "sh") and args[:1] == ["-c"]:
        return args[1]
    return shlex.join(([entrypoint] if entrypoint else []) + args)


def shell_commands(script: str) -> list[list[str]]:
    """The script's commands as word lists (continuation lines joined, comments dropped)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        if line.strip() and not line.strip().startswith("#"):
            words = shlex.split(line)
            commands.append(words)
            for w in words:  # name="$(command ...)": the command too
                m = re.fullmatch(r"\w+=\$\((.*)\);?", w)
                if m:
                    commands.append(shlex.split(m.group(1)))
    return commands


def gcloud_calls(script: str, *subcommand: str) -> list[list[str]]:
    """Every ``gcloud <subcommand...> ...`` in the script, as the words after the subcommand."""
    calls = []
    n = len(subcommand)
    for words in shell_commands(script):
        for i, word in enumerate(words):
            if word == "gcloud" and tuple(words[i + 1:i + 1 + n]) == subcommand:
                rest = []
                for w in words[i + 1 + n:]:
                    if w in ("||", "&&", ";", "|", ")"):
                        break
                    rest.append(w)
                calls.append(rest)
    return calls


def flags_of(words: list[str]) -> dict[str, str | bool]:
    """``--name=value`` -> {"--name": "value"}; a bare ``--flag`` -> {"--flag": True}."""
    flags: dict[str, str | bool] = {}
    for w in words:
        if w.startswith("--"):
            name, eq, value = w.partition("=")
            flags[name] = value if eq else True
    return flags


def deploys() -> dict[str, tuple[dict, dict]]:
    """Entry point -> (step, flags) for every ``gcloud functions deploy`` in the build."""
    found = {}
    for step in load_config()["steps"]:
        for call in gcloud_calls(step_script(step), "functions", "deploy"):
            flags = flags_of(call)
            found[flags["--entry-point"]] = (step, flags)
    return found


FUNCTIONS = {  # entry point -> the substitution naming the deployed function
    "submit_job": "${_SUBMIT_FUNCTION}",
    "run_simulation": "${_WORKER_FUNCTION}",
    "record_dead_letter": "${_DEAD_LETTER_FUNCTION}",
}


def deploy_calls() -> list[tuple[dict, list[str]]]:
    """(step, words after ``gcloud functions deploy``) for every deploy, duplicates kept."""
    return [(step, call) for step in load_config()["steps"]
            for call in gcloud_calls(step_script(step), "functions", "deploy")]


def deploy_step_indexes(steps: list[dict]) -> list[int]:
    indexes = [i for i, s in enumerate(steps) if gcloud_calls(step_script(s), "functions", "deploy")]
    assert len(indexes) == len(FUNCTIONS), [steps[i]["id"] for i in indexes]
    return indexes


def env_items(set_env_vars: str) -> list[str]:
    """The NAME=value items of a ``--set-env-vars`` value, honouring gcloud's ``^DELIM^`` escaping."""
    delimiter = ","
    m = re.match(r"\^(.+?)\^", set_env_vars)
    if m:
        delimiter, set_env_vars = m.group(1), set_env_vars[m.end():]
    return set_env_vars.split(delimiter)


def memory_mib(memory: str) -> int:
    """A gen2 ``--memory`` value (number + k, M, G, Ki, Mi or Gi, optional b/B) in MiB, rounded down."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|K|M|G)[bB]?", memory)
    assert m, f"not a gen2 --memory value: {memory!r}"
    unit = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(float(m.group(1)) * unit[m.group(2)] // 2**20)


def env_var_names(set_env_vars: str) -> list[str]:
    """Keys of a ``--set-env-vars`` value, honouring gcloud's ``^DELIM^`` escaping."""
    delimiter = ","
    m = re.match(r"\^(.+?)\^", set_env_vars)
    if m:
        delimiter, set_env_vars = m.group(1), set_env_vars[m.end():]
    return [item.split("=", 1)[0] for item in set_env_vars.split(delimiter)]


def seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"expected a duration in seconds like 540s, got {duration!r}"
    return int(m.group(1))


def all_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from all_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_strings(value)


def step_prerequisites(steps: list[dict], index: int) -> set[str]:
    """Ids of every step that must finish before steps[index] starts (Cloud Build's waitFor rules)."""
    ids = [s.get("id", str(i)) for i, s in enumerate(steps)]
    by_id = dict(zip(ids, range(len(steps))))
    seen: set[str] = set()
    todo = [index]
    while todo:
        i = todo.pop()
        wait_for = steps[i].get("waitFor")
        if wait_for is None:  # no waitFor: every step listed above it
            direct = ids[:i]
        else:  # "-" alone: start at once
            direct = [w for w in wait_for if w != "-"]
        for d in direct:
            if d not in seen:
                seen.add(d)
                todo.append(by_id[d])
    return seen


# --------------------------------------------------------------------------
# Running gcloud with no credentials
# --------------------------------------------------------------------------
def offline_gcloud_env(config_dir: Path) -> dict[str, str]:
    """Environment for gcloud that cannot authenticate or reach Google Cloud."""
    assert shutil.which("gcloud"), (
        "gcloud is not on PATH: these checks run the Google Cloud CLI offline. Install the "
        "Google Cloud SDK (https://cloud.google.com/sdk/docs/install)."
    )
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLOUDSDK_") and k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env.update({
        "CLOUDSDK_CONFIG": str(config_dir),  # empty: no account, no credentials
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",  # no metadata-server credentials either
        "CLOUDSDK_CORE_PROJECT": "offline-check",
    })
    for api in ("CLOUDBUILD", "CLOUDFUNCTIONS", "EVENTARC", "PUBSUB", "FIRESTORE",
                "CLOUDRESOURCEMANAGER"):
        env[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"] = "http://127.0.0.1:9/"
    return env


def run_gcloud_builds_submit(config: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = offline_gcloud_env(tmp_path / "gcloud-config")
    try:
        return subprocess.run(
            ["gcloud", "builds", "submit", "--config", str(config), "--no-source",
             "--project=offline-check"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gcloud builds submit did not finish in {GCLOUD_TIMEOUT_S} s: {exc}")


def with_substitutions(text: str, values: dict[str, str]) -> str:
    """What Cloud Build does to a string before a step sees it."""
    def replace(m):
        if m.group(0) == "$$":
            return "$"
        return values[m.group(1) or m.group(2)]
    return SUBSTITUTION.sub(replace, text)


# --------------------------------------------------------------------------
# The deploy commands
# --------------------------------------------------------------------------
def test_every_function_is_deployed_as_gen2_python311_from_the_repo_root():
    calls = deploy_calls()
    assert len(calls) == len(FUNCTIONS), [step["id"] for step, _ in calls]
    found = deploys()
    assert set(found) == set(FUNCTIONS)
    for entry_point, (step, flags) in found.items():
        assert flags.get("--gen2") is True, f"{entry_point} is not deployed with --gen2"
        assert flags.get("--runtime") == "python311", entry_point
        assert flags.get("--source") == ".", entry_point
        assert flags.get("--region") == "${_REGION}", entry_point


def test_each_function_has_its_own_name():
    # Two deploys of one name would replace each other's function.
    subs = load_config()["substitutions"]
    names = {}
    for step, call in deploy_calls():
        entry_point = flags_of(call)["--entry-point"]
        names[entry_point] = call[0]
        assert call[0] == FUNCTIONS[entry_point], (step["id"], call[0])
    assert len(set(names.values())) == len(FUNCTIONS)
    defaults = [subs[name.strip("${}")] for name in names.values()]
    assert len(set(defaults)) == len(defaults) and all(defaults), defaults


def test_submit_function_is_http_and_not_public():
    _, flags = deploys()["submit_job"]
    assert flags.get("--trigger-http") is True
    assert flags.get("--no-allow-unauthenticated") is True
    assert "--allow-unauthenticated" not in flags
    assert seconds(flags["--timeout"]) <= 3600  # the longest an HTTP 2nd-gen function may run


def setting_default(name: str):
    from shared.settings import Settings

    return Settings.model_fields[name].default


def test_submit_function_outlasts_the_longest_synchronous_wait():
    # A submit request may wait for the outcome (LEGACY_WAIT_S, or Prefer: wait=N up to
    # MAX_PREFER_WAIT_S) and then read the store (one call: STORE_TIMEOUT_S).
    _, flags = deploys()["submit_job"]
    longest_wait = max(setting_default("legacy_wait_s"), setting_default("max_prefer_wait_s"))
    assert longest_wait >= 60
    assert seconds(flags["--timeout"]) > longest_wait + setting_default("store_timeout_s")


def test_submit_function_serves_many_requests_per_instance():
    # A waiting request costs no CPU; per-instance concurrency above 1 needs at least 1 vCPU.
    _, flags = deploys()["submit_job"]
    assert int(flags["--concurrency"]) > 1
    assert float(flags["--cpu"]) >= 1


def test_worker_runs_one_simulation_per_instance():
    _, flags = deploys()["run_simulation"]
    assert flags["--concurrency"] == "1"


def test_worker_is_triggered_by_the_topic_and_retried():
    _, flags = deploys()["run_simulation"]
    assert flags.get("--trigger-topic") == "${_TOPIC}"
    assert flags.get("--retry") is True
    assert "--trigger-http" not in flags


def test_worker_timeout_is_at_most_540_seconds():
    # 540 s is the longest an event-driven 2nd-gen function may run.
    _, flags = deploys()["run_simulation"]
    assert seconds(flags["--timeout"]) <= 540


def test_job_time_budget_default_is_below_the_worker_timeout():
    config = load_config()
    _, flags = deploys()["run_simulation"]
    budget = float(config["substitutions"]["_JOB_TIME_BUDGET_S"])
    assert budget < seconds(flags["--timeout"])
    # and the worker is actually given that budget
    assert "JOB_TIME_BUDGET_S=${_JOB_TIME_BUDGET_S}" in flags["--set-env-vars"]


def test_solve_budget_plus_callback_worst_case_fit_in_the_worker_timeout():
    # After the solve the worker still posts the result (shared.delivery.callback's retries,
    # read time-outs included: callback.worst_case_s); both have to finish before the
    # deployed function times out, with the deployed budget.
    from shared.delivery import callback
    from shared.settings import Settings

    config = load_config()
    _, flags = deploys()["run_simulation"]
    budget = float(config["substitutions"]["_JOB_TIME_BUDGET_S"])
    deployed = Settings(job_time_budget_s=budget)
    assert budget + callback.worst_case_s(deployed) < seconds(flags["--timeout"])


def test_entry_points_exist_in_main_with_the_matching_decorator():
    # ast, not import: importing main pulls in the whole service.
    tree = ast.parse((REPO / "main.py").read_text())
    decorators = {
        node.name: {ast.unparse(d) for d in node.decorator_list}
        for node in tree.body if isinstance(node, ast.FunctionDef)
    }
    assert set(deploys()) == set(FUNCTIONS)
    for entry_point, (_, flags) in deploys().items():
        assert entry_point in decorators, f"main.py defines no function {entry_point!r}"
        expected = ("functions_framework.http" if "--trigger-http" in flags
                    else "functions_framework.cloud_event")
        assert expected in decorators[entry_point], (entry_point, decorators[entry_point])


def test_dead_letter_function_is_triggered_by_the_dead_letter_topic_and_retried():
    steps = load_config()["steps"]
    _, flags = deploys()["record_dead_letter"]
    assert flags.get("--trigger-topic") == "${_TOPIC}-dead"
    assert flags.get("--retry") is True  # an unreachable store: the dead letter comes back
    assert "--trigger-http" not in flags
    # the topic the worker's subscription dead-letters to
    (policy,) = [s for s in steps if gcloud_calls(step_script(s), "pubsub", "subscriptions", "update")]
    (update,) = gcloud_calls(step_script(policy), "pubsub", "subscriptions", "update")
    assert flags_of(update)["--dead-letter-topic"] == flags["--trigger-topic"]


def test_dead_letter_function_outlasts_its_last_callback_attempt():
    # One store read, a result read, a write, the callback (callback.worst_case_s) and
    # the callback's record; an event-driven 2nd-gen function may run at most 540 s.
    from shared.delivery import callback
    from shared.settings import Settings

    _, flags = deploys()["record_dead_letter"]
    timeout = seconds(flags["--timeout"])
    assert timeout <= 540
    assert callback.worst_case_s(Settings()) + 4 * setting_default("store_timeout_s") < timeout


def test_dead_letter_function_reports_where_and_how_the_worker_does():
    # Its last attempt goes to the worker's Job Manager, through the same allowlist,
    # signed with the same key, recorded in the same store.
    deployed = deploys()
    worker_step, worker = deployed["run_simulation"]
    dead_step, dead = deployed["record_dead_letter"]
    worker_items = set(env_items(worker["--set-env-vars"]))
    for name in ("JOB_MANAGER_URL", "CALLBACK_URL_ALLOWLIST", "GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC",
                 "FIRESTORE_DATABASE", "RETENTION_DAYS", "PYBAMM_DISABLE_TELEMETRY"):
        (item,) = [i for i in env_items(dead["--set-env-vars"]) if i.startswith(name + "=")]
        assert item in worker_items, item
    assert dead["--set-secrets"] == worker["--set-secrets"] == "CALLBACK_SIGNING_KEY=${_SIGNING_SECRET}:latest"
    for name in ("JOB_MANAGER_URL", "CALLBACK_URL_ALLOWLIST"):
        (item,) = [i for i in dead_step["env"] if i.startswith(name + "=")]
        assert item == f"{name}=${{_{name}}}" and item in worker_step["env"], item


def test_source_directories_exist_and_hold_a_python_function():
    for entry_point, (_, flags) in deploys().items():
        source = REPO / flags["--source"]
        assert source.is_dir(), f"--source of {entry_point} does not exist: {source}"
        assert (source / "main.py").is_file() and (source / "requirements.txt").is_file()


def test_environment_variables_and_secrets_are_settings_the_service_reads():
    from shared.settings import Settings

    read_elsewhere = {"PYBAMM_DISABLE_TELEMETRY"}  # read by PyBaMM itself
    common = {"JOB_MANAGER_URL", "GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC", "CALLBACK_URL_ALLOWLIST",
              "PYBAMM_DISABLE_TELEMETRY", "FIRESTORE_DATABASE", "RETENTION_DAYS"}
    # the solve's settings go where the solve is (the dead-letter function never solves)
    required = {"submit_job": common | {"JOB_TIME_BUDGET_S"},
                "run_simulation": common | {"JOB_TIME_BUDGET_S", "INSTANCE_MEMORY_MB"},
                "record_dead_letter": common}
    found = deploys()
    assert set(found) == set(required)
    for entry_point, (_, flags) in found.items():
        names = env_var_names(flags["--set-env-vars"])
        assert len(names) == len(set(names)), (entry_point, names)
        assert required[entry_point] <= set(names), (entry_point, required[entry_point] - set(names))
        for name in set(names) - read_elsewhere:
            assert name.lower() in Settings.model_fields, f"{entry_point}: {name} is not a Settings field"
        items = env_items(flags["--set-env-vars"])
        assert "PYBAMM_DISABLE_TELEMETRY=true" in items
        # every function uses the database the firestore step sets up, with the build's retention
        assert "FIRESTORE_DATABASE=${_FIRESTORE_DATABASE}" in items, entry_point
        assert "RETENTION_DAYS=${_RETENTION_DAYS}" in items, entry_point
    _, worker = found["run_simulation"]
    assert worker["--set-secrets"] == "CALLBACK_SIGNING_KEY=${_SIGNING_SECRET}:latest"
    assert "INSTANCE_MEMORY_MB=${_WORKER_MEMORY_MB}" in env_items(worker["--set-env-vars"])
    submit_step, _ = deploys()["submit_job"]
    assert "API_KEY=$${API_KEY_SECRET}:latest" in step_script(submit_step)
    assert "API_KEY_SECRET=${_API_KEY_SECRET}" in submit_step["env"]


# --------------------------------------------------------------------------
# Files, substitutions, order
# --------------------------------------------------------------------------
def test_every_file_the_steps_name_exists():
    named = set()
    for step in load_config()["steps"]:
        for words in shell_commands(step_script(step)):
            for flag, value in zip(words, words[1:]):
                if flag == "-r":  # pip install -r FILE
                    named.add(value)
                elif flag == "-m" and (REPO / value.split(".")[0]).exists():  # python -m our.module
                    named.add(value.replace(".", "/") + ".py")
                elif flag == "--deselect":  # a pytest node id (prefix)
                    named.add(value.split("::")[0])
    assert {"requirements-dev.txt", "shared/engine/drive_cycles.py"} <= named
    for path in named:
        assert (REPO / path).is_file(), f"a build step names {path}, which is not in the repository"


def test_every_substitution_used_is_defined_and_every_defined_one_is_used():
    config = load_config()
    defined = set(config["substitutions"])
    used = set()
    for text in all_strings({k: v for k, v in config.items() if k != "substitutions"}):
        for m in SUBSTITUTION.finditer(text):
            if m.group(0) != "$$":
                used.add(m.group(1) or m.group(2))
    assert all(re.fullmatch(r"_[A-Z0-9_]+", name) for name in defined), defined
    assert used - defined - BUILT_IN_SUBSTITUTIONS == set(), "used but not defined"
    # Cloud Build rejects a substitution that is never used (unless ALLOW_LOOSE).
    if config.get("options", {}).get("substitution_option") != "ALLOW_LOOSE":
        assert defined - used == set(), "defined but never used"
    for name in ("_REGION", "_TOPIC", "_SUBMIT_FUNCTION", "_WORKER_FUNCTION", "_DEAD_LETTER_FUNCTION",
                 "_WORKER_MEMORY", "_WORKER_MEMORY_MB",
                 "_WORKER_MAX_INSTANCES", "_SUBMIT_MAX_INSTANCES", "_JOB_MANAGER_URL",
                 "_SIGNING_SECRET", "_API_KEY_SECRET", "_CALLBACK_URL_ALLOWLIST",
                 "_JOB_TIME_BUDGET_S", "_FIRESTORE_DATABASE", "_FIRESTORE_LOCATION",
                 "_RETENTION_DAYS"):
        assert name in defined, name


def test_job_store_substitution_defaults_match_the_service_defaults():
    subs = load_config()["substitutions"]
    assert subs["_FIRESTORE_DATABASE"] == setting_default("firestore_database") == "(default)"
    assert float(subs["_RETENTION_DAYS"]) == setting_default("retention_days") == 30
    # empty: the database goes to _REGION (checked in test_firestore_step_on_a_fresh_project)
    assert subs["_FIRESTORE_LOCATION"] == ""


def test_memory_mib_reads_gcloud_memory_values():
    assert [memory_mib(v) for v in ("2Gi", "2048Mi", "512Mi", "2G", "4GB", "1048576Ki")] == \
        [2048, 2048, 512, 1907, 3814, 1024]


def test_worker_memory_mb_default_agrees_with_worker_memory():
    # The worker's solver bound is a share of INSTANCE_MEMORY_MB (_WORKER_MEMORY_MB); the
    # instance gets --memory=_WORKER_MEMORY. check-config enforces this for any values
    # (test_check_config_checks_the_job_store_settings); here: the defaults, and the service's.
    subs = load_config()["substitutions"]
    _, worker = deploys()["run_simulation"]
    assert worker["--memory"] == "${_WORKER_MEMORY}"
    assert "INSTANCE_MEMORY_MB=${_WORKER_MEMORY_MB}" in env_items(worker["--set-env-vars"])
    assert memory_mib(subs["_WORKER_MEMORY"]) == int(subs["_WORKER_MEMORY_MB"]) \
        == setting_default("instance_memory_mb")
    # the solver's share leaves room above what the warm caches may keep
    assert int(subs["_WORKER_MEMORY_MB"]) * setting_default("solver_memory_fraction") \
        > setting_default("model_cache_max_rss_mb")


def test_drive_cycles_are_fetched_before_any_deploy_and_before_the_unit_tests():
    steps = load_config()["steps"]
    fetch = [s["id"] for s in steps
             if "python -m shared.engine.drive_cycles fetch --dest drive_cycles US06 UDDS WLTC"
             in step_script(s)]
    assert len(fetch) == 1, "expected exactly one drive-cycle fetch step"
    tests = [i for i, s in enumerate(steps) if "python -m pytest" in step_script(s)]
    assert len(tests) == 1
    for i in deploy_step_indexes(steps) + tests:
        assert fetch[0] in step_prerequisites(steps, i), steps[i]["id"]


def test_unit_tests_leave_out_only_the_slow_ones_and_those_needing_the_emulator():
    """Cloud Build's python image has no Firestore emulator: the in-process tests that
    record accepted jobs (marked ``emulator``) run in .ci/run, the rest run here too."""
    steps = load_config()["steps"]
    (pytest_call,) = [w for s in steps for w in shell_commands(step_script(s))
                      if w[:3] == ["python", "-m", "pytest"]]
    assert pytest_call[3:6] == ["-q", "-m", "not slow and not emulator"]
    assert step_prerequisites(steps, next(i for i, s in enumerate(steps)
                                          if "python -m pytest" in step_script(s))) >= {"install"}


def test_topics_exist_before_the_deploys():
    steps = load_config()["steps"]
    (topics,) = [s for s in steps if gcloud_calls(step_script(s), "pubsub", "topics", "create")]
    script = step_script(topics)
    assert "for topic in ${_TOPIC} ${_TOPIC}-dead" in script
    assert "gcloud pubsub topics describe" in script  # create only when missing
    for i in deploy_step_indexes(steps):
        assert topics["id"] in step_prerequisites(steps, i), steps[i]["id"]
    # the dead-letter function's trigger topic is one of them
    _, dead = deploys()["record_dead_letter"]
    assert dead["--trigger-topic"] == "${_TOPIC}-dead"


def test_dead_letter_policy_is_set_on_the_worker_subscription_after_its_deploy():
    steps = load_config()["steps"]
    (index,) = [i for i, s in enumerate(steps)
                if gcloud_calls(step_script(s), "pubsub", "subscriptions", "update")]
    script = step_script(steps[index])
    (update,) = gcloud_calls(script, "pubsub", "subscriptions", "update")
    flags = flags_of(update)
    assert flags["--dead-letter-topic"] == "${_TOPIC}-dead"
    assert flags["--max-delivery-attempts"] == "5"
    assert update[0] == "$${subscription}"
    # the subscription is the one behind the worker's Eventarc trigger
    (describe,) = gcloud_calls(script, "functions", "describe")
    assert describe[0] == "${_WORKER_FUNCTION}"
    assert gcloud_calls(script, "eventarc", "triggers", "describe")
    worker_step, _ = deploys()["run_simulation"]
    assert worker_step["id"] in step_prerequisites(steps, index)


def test_fetched_drive_cycles_are_checked_to_be_in_the_upload():
    # The repo's .gitignore ignores drive_cycles/*.csv, and gcloud's generated
    # .gcloudignore includes .gitignore; a step must make sure the cycles go up.
    steps = load_config()["steps"]
    (index,) = [i for i, s in enumerate(steps)
                if gcloud_calls(step_script(s), "meta", "list-files-for-upload")]
    script = step_script(steps[index])
    for name in ("US06", "UDDS", "WLTC"):
        assert f"drive_cycles/{name}.csv" in script
    for i in deploy_step_indexes(steps):
        assert steps[index]["id"] in step_prerequisites(steps, i), steps[i]["id"]


def test_build_timeout_leaves_room_for_install_tests_and_deploys():
    assert seconds(load_config()["timeout"]) >= 1800


# --------------------------------------------------------------------------
# The job store (Firestore) step, run with a fake gcloud
# --------------------------------------------------------------------------
# A shell function that shadows gcloud: it appends each call's words (separated by
# \x1f) to $FAKE_GCLOUD_LOG and answers like a project in which
#   FAKE_DB_TYPE      the database exists in this mode (empty: it does not exist),
#   FAKE_TTL_SET      expireAt already is each collection group's TTL field (if non-empty),
#   FAKE_INDEX_ERRORS a file: each line is the error of the next index create (then: success),
#   FAKE_SCHEDULER_JOB the requeue Cloud Scheduler job exists (if non-empty);
# a function's URL is https://fn.example.run.app and a secret's value fake-secret-value.
# With FAKE_GCLOUD_REAL set to a file it also runs the real gcloud and appends its output.
FAKE_GCLOUD = r"""
gcloud() {
  local arg group="" rc=0 msg
  for arg in "$@"; do printf '%s\x1f' "$arg"; done >> "$FAKE_GCLOUD_LOG"
  printf '\n' >> "$FAKE_GCLOUD_LOG"
  if [[ -n "${FAKE_GCLOUD_REAL:-}" ]]; then
    printf '>>> gcloud %s\n' "$*" >> "$FAKE_GCLOUD_REAL"
    command gcloud "$@" < /dev/null >> "$FAKE_GCLOUD_REAL" 2>&1 && rc=0 || rc=$?
    printf '<<< rc=%s\n' "$rc" >> "$FAKE_GCLOUD_REAL"
  fi
  for arg in "$@"; do [[ "$arg" == --collection-group=* ]] && group="${arg#*=}"; done
  case "$1 $2 $3 ${4:-}" in
    "functions describe "*)
      echo "https://fn.example.run.app" ;;
    "scheduler jobs describe "*)
      if [[ -z "${FAKE_SCHEDULER_JOB:-}" ]]; then echo "NOT_FOUND: job does not exist" >&2; return 1; fi ;;
    "secrets versions access "*)
      echo "fake-secret-value" ;;
    "firestore databases describe "*)
      if [[ -z "${FAKE_DB_TYPE:-}" ]]; then echo "NOT_FOUND: database does not exist" >&2; return 1; fi
      echo "$FAKE_DB_TYPE" ;;
    "firestore fields ttls list")
      if [[ -n "${FAKE_TTL_SET:-}" ]]; then
        echo "projects/p/databases/d/collectionGroups/${group}/fields/expireAt"
      fi ;;
    "firestore indexes composite create")
      if [[ -s "${FAKE_INDEX_ERRORS:-/dev/null}" ]]; then
        msg="$(head -n 1 "$FAKE_INDEX_ERRORS")"
        tail -n +2 "$FAKE_INDEX_ERRORS" > "$FAKE_INDEX_ERRORS.rest"
        mv "$FAKE_INDEX_ERRORS.rest" "$FAKE_INDEX_ERRORS"
        echo "ERROR: (gcloud.firestore.indexes.composite.create) $msg" >&2
        return 1
      fi ;;
  esac
  return 0
}
sleep() { :; }
"""

RUNTIME_DEFAULT_SA = "$PROJECT_NUMBER-compute@developer.gserviceaccount.com"
EXPECTED_INDEXES = {  # the list and sweep queries in shared/store/jobs.py
    ("field-path=status,order=ascending", "field-path=submittedAt,order=descending"),
    ("field-path=sweep.sweepId,order=ascending", "field-path=submittedAt,order=descending"),
    ("field-path=sweep.sweepId,order=ascending", "field-path=status,order=ascending"),
}


def firestore_step_index() -> int:
    steps = load_config()["steps"]
    (index,) = [i for i, s in enumerate(steps)
                if gcloud_calls(step_script(s), "firestore", "databases", "create")]
    return index


def substitution_values(**overrides: str) -> dict[str, str]:
    values = dict(load_config()["substitutions"], PROJECT_ID="offline-check", PROJECT_NUMBER="123",
                  _JOB_MANAGER_URL="https://job-manager.example.org")
    values.update(overrides)
    return values


def run_step_with_fake_gcloud(step: dict, tmp_path: Path, values: dict[str, str], *,
                              env: dict[str, str] | None = None, db_type: str = "",
                              ttl_set: bool = False, index_errors: tuple[str, ...] = (),
                              scheduler_job: bool = False, real_gcloud_log: Path | None = None):
    """Run a step's script as Cloud Build would, with the fake gcloud; (result, calls)."""
    log = tmp_path / "gcloud-calls.log"
    log.write_text("")
    errors = tmp_path / "index-errors.txt"
    errors.write_text("".join(e + "\n" for e in index_errors))
    run_env = dict(env if env is not None else os.environ)
    for item in step.get("env", []):
        name, _, value = with_substitutions(item, values).partition("=")
        run_env[name] = value
    run_env.update(FAKE_GCLOUD_LOG=str(log), FAKE_DB_TYPE=db_type, FAKE_TTL_SET="1" if ttl_set else "",
                   FAKE_INDEX_ERRORS=str(errors), FAKE_GCLOUD_REAL=str(real_gcloud_log or ""),
                   FAKE_SCHEDULER_JOB="1" if scheduler_job else "")
    script = FAKE_GCLOUD + with_substitutions(step_script(step), values)
    try:
        result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=run_env,
                                capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{step['id']} did not finish in {GCLOUD_TIMEOUT_S} s: {exc}")
    calls = [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]
    return result, calls


def calls_of(calls: list[list[str]], *subcommand: str) -> list[list[str]]:
    n = len(subcommand)
    return [c[n:] for c in calls if tuple(c[:n]) == subcommand]


def runtime_service_accounts_in_config() -> set[str]:
    """The account each deployed function runs as, as the config writes it (the default
    compute account unless the deploy sets one)."""
    return {flags.get("--service-account") or flags.get("--run-service-account") or RUNTIME_DEFAULT_SA
            for _, flags in deploys().values()}


def runtime_service_accounts(values: dict[str, str]) -> set[str]:
    return {with_substitutions(a, values) for a in runtime_service_accounts_in_config()}


def test_firestore_step_runs_after_the_unit_tests_and_before_every_deploy():
    steps = load_config()["steps"]
    index = firestore_step_index()
    unit_tests = next(s["id"] for s in steps if "python -m pytest" in step_script(s))
    assert unit_tests in step_prerequisites(steps, index)
    for i in deploy_step_indexes(steps):
        assert steps[index]["id"] in step_prerequisites(steps, i), steps[i]["id"]


def test_firestore_step_grants_the_runtime_accounts_datastore_user():
    # every function reads and writes job records (the dead-letter function records outcomes)
    assert len(deploy_calls()) == len(FUNCTIONS)
    script = step_script(load_config()["steps"][firestore_step_index()])
    bindings = [flags_of(c) for c in gcloud_calls(script, "projects", "add-iam-policy-binding")]
    granted = {b["--member"] for b in bindings if b.get("--role") == "roles/datastore.user"}
    for account in runtime_service_accounts_in_config():
        assert f"serviceAccount:{account}" in granted, (account, granted)
    for b in bindings:
        assert b.get("--condition") == "None", b  # no prompt about conditional bindings


def test_firestore_step_on_a_fresh_project(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    values = substitution_values()
    result, calls = run_step_with_fake_gcloud(step, tmp_path, values)
    assert result.returncode == 0, result.stdout + result.stderr
    db = "(default)"
    # the database: created in Native mode, in _REGION when _FIRESTORE_LOCATION is empty
    (create,) = calls_of(calls, "firestore", "databases", "create")
    assert flags_of(create) == {"--database": db, "--location": values["_REGION"],
                                "--type": "firestore-native"}
    # TTL on expireAt for the jobs, the sweeps and the result chunks
    ttls = calls_of(calls, "firestore", "fields", "ttls", "update")
    groups = set()
    for call in ttls:
        flags = flags_of(call)
        assert call[0] == "expireAt", call
        assert flags.get("--enable-ttl") is True and "--disable-ttl" not in flags, call
        assert flags["--database"] == db, call
        groups.add(flags["--collection-group"])
    assert groups == {setting_default("jobs_collection"), setting_default("sweeps_collection"), "chunks"}
    assert len(ttls) == 3
    # the composite indexes on jobs
    indexes = set()
    for call in calls_of(calls, "firestore", "indexes", "composite", "create"):
        flags = flags_of(call)
        assert flags["--collection-group"] == setting_default("jobs_collection"), call
        assert flags["--database"] == db, call
        assert flags.get("--query-scope", "collection") == "collection", call
        indexes.add(tuple(w.partition("=")[2] for w in call if w.startswith("--field-config=")))
    assert indexes == EXPECTED_INDEXES
    # roles/datastore.user for the account each function runs as
    granted = set()
    for call in calls_of(calls, "projects", "add-iam-policy-binding"):
        flags = flags_of(call)
        assert call[0] == "offline-check", call
        if flags.get("--role") == "roles/datastore.user":
            granted.add(flags["--member"])
    assert {f"serviceAccount:{a}" for a in runtime_service_accounts(values)} <= granted
    assert "serviceAccount:123-compute@developer.gserviceaccount.com" in granted


def test_firestore_step_uses_the_configured_database_and_location(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    values = substitution_values(_FIRESTORE_DATABASE="battery-jobs", _FIRESTORE_LOCATION="eur3")
    result, calls = run_step_with_fake_gcloud(step, tmp_path, values)
    assert result.returncode == 0, result.stdout + result.stderr
    (create,) = calls_of(calls, "firestore", "databases", "create")
    assert flags_of(create)["--location"] == "eur3"
    firestore_calls = calls_of(calls, "firestore")
    assert len(firestore_calls) >= 1 + 1 + 3 + 3  # describe, create, TTLs, indexes
    for call in firestore_calls:
        assert flags_of(call).get("--database") == "battery-jobs", call


def test_firestore_step_rerun_changes_nothing_and_tolerates_existing_indexes(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    result, calls = run_step_with_fake_gcloud(
        step, tmp_path, substitution_values(), db_type="FIRESTORE_NATIVE", ttl_set=True,
        index_errors=("ALREADY_EXISTS: index already exists",) * 3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls_of(calls, "firestore", "databases", "describe")
    assert not calls_of(calls, "firestore", "databases", "create")
    assert len(calls_of(calls, "firestore", "fields", "ttls", "list")) == 3
    assert not calls_of(calls, "firestore", "fields", "ttls", "update")
    assert len(calls_of(calls, "firestore", "indexes", "composite", "create")) == 3
    assert calls_of(calls, "projects", "add-iam-policy-binding")


def test_firestore_step_retries_index_contention(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    result, calls = run_step_with_fake_gcloud(
        step, tmp_path, substitution_values(), db_type="FIRESTORE_NATIVE",
        index_errors=("ABORTED: Please retry, underlying data changed",))
    assert result.returncode == 0, result.stdout + result.stderr
    creates = calls_of(calls, "firestore", "indexes", "composite", "create")
    assert len(creates) == 4 and creates[0] == creates[1]


def test_firestore_step_fails_on_any_other_index_error(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    result, calls = run_step_with_fake_gcloud(
        step, tmp_path, substitution_values(), db_type="FIRESTORE_NATIVE",
        index_errors=("PERMISSION_DENIED: missing datastore.indexes.create",))
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr
    assert len(calls_of(calls, "firestore", "indexes", "composite", "create")) == 1


def test_firestore_step_refuses_a_datastore_mode_database(tmp_path):
    step = load_config()["steps"][firestore_step_index()]
    result, calls = run_step_with_fake_gcloud(step, tmp_path, substitution_values(),
                                              db_type="DATASTORE_MODE")
    assert result.returncode != 0
    assert "Native" in result.stderr
    assert not calls_of(calls, "firestore", "databases", "create")
    assert not calls_of(calls, "firestore", "fields", "ttls", "update")


OK = "ok"


@pytest.mark.parametrize("override, message", [
    ({}, OK),
    ({"_RETENTION_DAYS": "0"}, "_RETENTION_DAYS"),
    ({"_RETENTION_DAYS": "thirty"}, None),
    ({"_FIRESTORE_DATABASE": ""}, "_FIRESTORE_DATABASE"),
    ({"_FIRESTORE_DATABASE": "a|b"}, "_FIRESTORE_DATABASE"),
    # _WORKER_MEMORY_MB must be _WORKER_MEMORY in MiB
    ({"_WORKER_MEMORY": "4Gi", "_WORKER_MEMORY_MB": "4096"}, OK),
    ({"_WORKER_MEMORY": "2048Mi"}, OK),
    ({"_WORKER_MEMORY": "2G", "_WORKER_MEMORY_MB": "1907"}, OK),
    ({"_WORKER_MEMORY": "4Gi"}, "_WORKER_MEMORY_MB=4096"),
    ({"_WORKER_MEMORY_MB": "1024"}, "_WORKER_MEMORY_MB"),
    ({"_WORKER_MEMORY": "2G"}, "_WORKER_MEMORY_MB=1907"),
    ({"_WORKER_MEMORY_MB": "2048.0"}, "_WORKER_MEMORY_MB"),
    ({"_WORKER_MEMORY_MB": ""}, "_WORKER_MEMORY_MB"),
    ({"_WORKER_MEMORY": "2048"}, "_WORKER_MEMORY="),
])
def test_check_config_checks_the_job_store_settings(tmp_path, override, message):
    import sys

    steps = load_config()["steps"]
    (step,) = [s for s in steps if s["id"] == "check-config"]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result, _ = run_step_with_fake_gcloud(step, tmp_path, substitution_values(**override), env=env)
    if message == OK:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        if message:
            assert message in result.stderr


# --------------------------------------------------------------------------
# gcloud itself, offline
# --------------------------------------------------------------------------
def test_gcloud_parses_the_config_offline(tmp_path):
    # gcloud reads and validates the build config (YAML, field names, field types)
    # before it looks for credentials; with none it must stop at the account check.
    result = run_gcloud_builds_submit(CONFIG, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"gcloud builds submit unexpectedly succeeded:\n{output}"
    assert not GCLOUD_PARSE_ERROR.search(output), f"gcloud could not read cloudbuild.yaml:\n{output}"
    assert NO_ACCOUNT.search(output), f"expected a credentials/account error, got:\n{output}"


def test_gcloud_reports_a_broken_copy_as_a_parse_error(tmp_path):
    # Shows the check above can fail: a misspelt field in a copy is reported
    # before the account check.
    broken = tmp_path / "cloudbuild.yaml"
    broken.write_text(CONFIG.read_text().replace("waitFor:", "waitfor:", 1))
    result = run_gcloud_builds_submit(broken, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert GCLOUD_PARSE_ERROR.search(output) and "waitfor: unused" in output, output
    assert not NO_ACCOUNT.search(output), output


@pytest.mark.parametrize("api_key_secret", ["", "battery-sim-api-key"])
def test_gcloud_accepts_the_deploy_flags_offline(tmp_path, api_key_secret):
    # Runs each deploy step's script as Cloud Build would (substitutions applied,
    # the step's env set) with the real gcloud. gcloud checks flag names, values
    # and combinations while parsing the command line, before it needs an
    # account, so each deploy must stop at the account check.
    config = load_config()
    values = dict(config["substitutions"], PROJECT_ID="offline-check", PROJECT_NUMBER="0",
                  _JOB_MANAGER_URL="https://job-manager.example.org",
                  _CALLBACK_URL_ALLOWLIST="https://a.example.org/results,https://b.example.org/",
                  _API_KEY_SECRET=api_key_secret)
    env = offline_gcloud_env(tmp_path / "gcloud-config")
    for step, _ in deploys().values():
        for item in step.get("env", []):
            name, _, value = with_substitutions(item, values).partition("=")
            env[name] = value
        script = with_substitutions(step_script(step), values)
        try:
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{step['id']} did not finish in {GCLOUD_TIMEOUT_S} s: {exc}")
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "(gcloud.functions.deploy)" in output, output
        assert not GCLOUD_FLAG_ERROR.search(output), f"{step['id']}: gcloud rejected a flag:\n{output}"
        assert NO_ACCOUNT.search(output), f"{step['id']}: expected an account error, got:\n{output}"


def test_gcloud_accepts_the_firestore_commands_offline(tmp_path):
    # The Firestore step as Cloud Build would run it (fresh-project answers from the
    # fake, so every command is reached), each call also passed to the real gcloud:
    # each must get past flag parsing and stop at the account check.
    step = load_config()["steps"][firestore_step_index()]
    real_log = tmp_path / "gcloud-output.log"
    env = offline_gcloud_env(tmp_path / "gcloud-config")
    result, calls = run_step_with_fake_gcloud(step, tmp_path, substitution_values(), env=env,
                                              real_gcloud_log=real_log)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = real_log.read_text().split(">>> gcloud ")[1:]
    assert len(outputs) == len(calls) >= 10
    for output in outputs:
        assert "<<< rc=0" not in output, output
        assert not GCLOUD_FLAG_ERROR.search(output), f"gcloud rejected a flag:\n{output}"
        assert NO_ACCOUNT.search(output), f"expected an account error, got:\n{output}"


# --------------------------------------------------------------------------
# The requeue schedule (Cloud Scheduler -> POST /maintenance/requeue)
# --------------------------------------------------------------------------
def requeue_step() -> dict:
    (step,) = [s for s in load_config()["steps"] if s["id"] == "requeue-schedule"]
    return step


def test_requeue_schedule_runs_after_the_submit_deploy():
    steps = load_config()["steps"]
    index = next(i for i, s in enumerate(steps) if s["id"] == "requeue-schedule")
    assert "deploy-submit" in step_prerequisites(steps, index)


def test_requeue_schedule_is_created_to_post_to_the_submit_functions_requeue_route(tmp_path):
    values = substitution_values()
    result, calls = run_step_with_fake_gcloud(requeue_step(), tmp_path, values)
    assert result.returncode == 0, result.stdout + result.stderr
    account = with_substitutions(RUNTIME_DEFAULT_SA, values)
    (invoker,) = calls_of(calls, "functions", "add-invoker-policy-binding")
    assert invoker[0] == values["_SUBMIT_FUNCTION"] and f"--member=serviceAccount:{account}" in invoker
    (create,) = calls_of(calls, "scheduler", "jobs", "create", "http")
    flags = flags_of(create)
    assert flags["--uri"] == "https://fn.example.run.app/maintenance/requeue"
    assert flags["--http-method"] == "POST"
    assert flags["--schedule"] == values["_REQUEUE_SCHEDULE"]
    assert flags["--oidc-service-account-email"] == account
    assert flags["--oidc-token-audience"] == "https://fn.example.run.app"
    assert not any(a.startswith("--headers") for a in create)  # no API key configured: none sent
    assert not calls_of(calls, "scheduler", "jobs", "update", "http")


def test_requeue_schedule_update_without_an_api_key_clears_an_old_one(tmp_path):
    result, calls = run_step_with_fake_gcloud(requeue_step(), tmp_path, substitution_values(), scheduler_job=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (update,) = calls_of(calls, "scheduler", "jobs", "update", "http")
    assert "--clear-headers" in update and not calls_of(calls, "secrets", "versions", "access")


def test_requeue_schedule_updates_an_existing_job_and_sends_the_api_key(tmp_path):
    values = substitution_values(_API_KEY_SECRET="battery-sim-api-key", _SCHEDULER_SERVICE_ACCOUNT="cron@p.iam.gserviceaccount.com")
    result, calls = run_step_with_fake_gcloud(requeue_step(), tmp_path, values, scheduler_job=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not calls_of(calls, "scheduler", "jobs", "create", "http")
    (update,) = calls_of(calls, "scheduler", "jobs", "update", "http")
    # the key replaces the header (gcloud takes --clear-headers or --update-headers, not both)
    assert "--update-headers=X-API-Key=fake-secret-value" in update and "--clear-headers" not in update
    assert flags_of(update)["--oidc-service-account-email"] == "cron@p.iam.gserviceaccount.com"
    (access,) = calls_of(calls, "secrets", "versions", "access")
    assert "--secret=battery-sim-api-key" in access


@pytest.mark.parametrize("existing", [False, True])
def test_gcloud_accepts_the_requeue_schedule_commands_offline(tmp_path, existing):
    real_log = tmp_path / "gcloud-output.log"
    env = offline_gcloud_env(tmp_path / "gcloud-config")
    values = substitution_values(_API_KEY_SECRET="battery-sim-api-key")
    result, calls = run_step_with_fake_gcloud(requeue_step(), tmp_path, values, env=env,
                                              scheduler_job=existing, real_gcloud_log=real_log)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = real_log.read_text().split(">>> gcloud ")[1:]
    assert len(outputs) == len(calls) >= 5
    for output in outputs:
        assert "<<< rc=0" not in output, output
        assert not GCLOUD_FLAG_ERROR.search(output), f"gcloud rejected a flag:\n{output}"
        assert NO_ACCOUNT.search(output), f"expected an account error, got:\n{output}"
