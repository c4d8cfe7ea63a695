"""Property-based fuzzing of the submit function (hypothesis), over real HTTP.

The target is a real ``functions-framework`` process serving ``submit_job``,
publishing to the real Pub/Sub emulator. No worker runs: accepted jobs stay in
a pull subscription, where the last test counts them.

Properties, for every request:
* never a 5xx;
* 202 only with ``{"jobId", "status": "queued"}``; 200 only for the GET routes;
* any other reply is a 4xx JSON object with a non-empty reason
  (``errors: [{"field", "error"}, ...]`` or ``error``);
* every 202 published exactly one message carrying that job id.

Inputs: arbitrary JSON values, near-valid legacy, native and sweep bodies (fields of
the wrong type, extreme and non-finite numbers, huge strings, nested junk,
unknown keys), undecodable bytes, deeply nested JSON, wrong content types,
wrong routes and methods, missing or wrong API keys; near-valid sweeps. 3,100 cases.
"""

from __future__ import annotations

import json
import os
import string
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.stack import Stack, wait_for

pytestmark = pytest.mark.slow

API_KEY = "fuzz-key"
ROUTES = {"/cell/simulate": "POST", "/drivecycle/simulate": "POST", "/jobs": "POST", "/sweeps": "POST",
          "/catalog": "GET", "/schema": "GET", "/healthz": "GET"}
POST_ROUTES = [r for r, m in ROUTES.items() if m == "POST"]
# GET answers 200 on these (GET /jobs lists the job store's records)
GET_ROUTES = {r for r, m in ROUTES.items() if m == "GET"} | {"/jobs"}
FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example, HealthCheck.filter_too_much])
TALLY: Counter = Counter()  # (test, status) -> replies
ACCEPTED: list[str] = []  # job ids answered 202


# --------------------------------------------------------------------------
# The target: emulator + topic + submit function only
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target(tmp_path_factory):
    # no worker runs here: the legacy routes answer at once instead of waiting for an outcome
    stack = Stack.on_free_ports(log_dir=tmp_path_factory.mktemp("stack-fuzz"),
                                extra_env={"API_KEY": API_KEY, "LEGACY_SYNC_REPLY": "false"})
    try:
        stack.start_emulator()
        stack.start_firestore()  # the job store: accepted jobs are recorded before they are published
        os.environ["PUBSUB_EMULATOR_HOST"] = stack.emulator_host
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(stack.project, stack.topic)
        publisher.create_topic(name=topic)
        subscriber = pubsub_v1.SubscriberClient()
        audit = subscriber.subscription_path(stack.project, "fuzz-audit")
        subscriber.create_subscription(request={"name": audit, "topic": topic, "ack_deadline_seconds": 60})
        subscriber.close()
        ff = str(Path(sys.executable).with_name("functions-framework"))
        proc = stack._spawn("submit", [ff, "--target", "submit_job", "--signature-type", "http",
                                       "--host", "127.0.0.1", "--port", str(stack.submit_port)],
                            {**stack.env(), "WORKERS": "1"})
        wait_for(stack.submit_url + "/healthz", 60, proc, "submit function")
        session = requests.Session()
        # warm the PyBaMM-backed checks so the first examples are not the slow ones
        session.get(stack.submit_url + "/catalog", headers={"X-API-Key": API_KEY}, timeout=120)
        yield stack, session, audit
    finally:
        stack.stop()
        total = sum(TALLY.values())
        by_status = Counter()
        for (_, status), n in TALLY.items():
            by_status[status] += n
        print(f"\nfuzz: inputs={total} accepted_jobs={len(ACCEPTED)} by_status={dict(sorted(by_status.items()))}")
        for test in sorted({t for t, _ in TALLY}):
            print(f"  {test}: " + ", ".join(f"{st_}={n}" for (t, st_), n in sorted(TALLY.items()) if t == test))


def send(target, test: str, method: str, path: str, body: bytes | None, content_type: str | None = "application/json",
         api_key: str | None = API_KEY) -> requests.Response:
    stack, session, _ = target
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if api_key is not None:
        headers["X-API-Key"] = api_key
    reply = session.request(method, stack.submit_url + path, data=body, headers=headers, timeout=60)
    TALLY[(test, reply.status_code)] += 1
    check(reply, method, path)
    return reply


def check(reply: requests.Response, method: str, path: str) -> None:
    """The properties every reply must have."""
    status = reply.status_code
    context = f"{method} {path[:80]} -> {status}: {reply.text[:300]!r}"
    assert status < 500, context
    if method == "HEAD":  # no body by definition
        return
    assert reply.headers.get("Content-Type", "").startswith("application/json"), context
    body = reply.json()
    assert isinstance(body, dict), context
    if status == 202:
        assert method == "POST" and body["status"] == "queued", context
        if path.startswith("/sweeps"):
            assert body["sweepId"] and len(body["jobIds"]) == body["members"] >= 1, context
            ACCEPTED.extend(body["jobIds"])
        else:
            assert isinstance(body["jobId"], str) and body["jobId"], context
            ACCEPTED.append(body["jobId"])
        return
    if status == 200:
        assert method == "GET" and "/" + path.split("?")[0].strip("/") in GET_ROUTES, context
        return
    assert 400 <= status < 500, context
    errors = body.get("errors")
    if errors is not None:
        assert isinstance(errors, list) and errors, context
        for e in errors:
            assert isinstance(e.get("field"), str) and e["field"], context
            assert isinstance(e.get("error"), str) and e["error"], context
    else:
        assert isinstance(body.get("error"), str) and body["error"], context


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------
EXTREME_FLOATS = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 1e-300,
                                  float("inf"), float("-inf"), float("nan"), 2.0 ** 53 + 1])
numbers = (st.floats(allow_nan=True, allow_infinity=True) | EXTREME_FLOATS
           | st.integers() | st.sampled_from([2 ** 63, -(2 ** 63) - 1, 10 ** 400, -(10 ** 400)]))
scalars = st.none() | st.booleans() | numbers | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=16), inner, max_size=6),
    max_leaves=30,
)
huge_strings = st.integers(1_000, 300_000).map(lambda n: "x" * n)  # above 256 KiB -> 413
junk = json_values | huge_strings | EXTREME_FLOATS


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a valid value, sometimes junk."""
    return st.one_of(valid, valid, valid, junk)


def with_extra_keys(bodies: st.SearchStrategy) -> st.SearchStrategy:
    extra = st.dictionaries(st.text(max_size=12), json_values, max_size=2)
    return st.tuples(bodies, st.booleans(), extra).map(lambda t: {**t[2], **t[0]} if t[1] else t[0])


legacy_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True)
legacy_bodies = with_extra_keys(st.fixed_dictionaries({}, optional={
    "simulationType": maybe(st.sampled_from(["cell", "driveCycle"])),
    "time": maybe(st.floats(0, 2)),
    "upperVoltage": maybe(st.floats(3.6, 5.5)),
    "lowerVoltage": maybe(st.floats(0.5, 3.5)),
    "nominalCell": maybe(st.floats(0.1, 1000)),
    "controlCurrent": maybe(st.floats(-500, 500)),
    "id": maybe(legacy_ids | st.integers(0, 10 ** 6)),
}))

STEPS = st.sampled_from(["Discharge at 1C for 10 minutes", "Rest for 5 minutes", "Charge at 0.5C until 4.1 V",
                         "Hold at 4.1 V until 50 mA", "Discharge at 2 W for 1 hour", "Charge at 1C for -3 s",
                         "Dance at 1C", "Discharge at 1C until 2.5 V"])
protocols = st.one_of(
    st.fixed_dictionaries({"type": st.just("constant_current")}, optional={
        "current_A": maybe(st.floats(-500, 500)), "c_rate": maybe(st.floats(-20, 20)),
        "duration_s": maybe(st.floats(1, 3600))}),
    st.fixed_dictionaries({"type": st.just("experiment"), "steps": maybe(st.lists(maybe(STEPS), max_size=4))},
                          optional={"cycles": maybe(st.integers(-2, 600)), "period_s": maybe(st.floats(0, 4000))}),
    st.fixed_dictionaries({"type": st.just("drive_cycle")}, optional={
        "name": maybe(st.sampled_from(["US06", "UDDS", "WLTC", "car_current", "nope"])),
        "time_s": maybe(st.lists(st.floats(0, 1e6), max_size=8)),
        "current_A": maybe(st.lists(st.floats(-600, 600), max_size=8)),
        "scale": maybe(st.floats(0, 200))}),
    junk,
)
models = st.fixed_dictionaries({}, optional={
    "name": maybe(st.sampled_from(["SPM", "SPMe", "DFN", "P2D"])),
    "options": maybe(st.sampled_from([{}, {"thermal": "lumped"}, {"thermal": "bogus"}, {"no such option": "x"},
                                      {"SEI": "constant"}])),
})
PARAMETER_NAMES = ["Nominal cell capacity [A.h]", "Upper voltage cut-off [V]", "Lower voltage cut-off [V]",
                   "Ambient temperature [K]", "Not a parameter [V]"]
native_bodies = with_extra_keys(st.fixed_dictionaries({"protocol": protocols}, optional={
    "id": maybe(st.text(max_size=140)),
    "model": maybe(models),
    "parameter_set": maybe(st.sampled_from(["Chen2020", "Marquis2019", "Ai2020", "NoSuchSet2024"])),
    "parameters": maybe(st.dictionaries(st.sampled_from(PARAMETER_NAMES) | st.text(max_size=30),
                                        maybe(st.floats(0.5, 400)),
                                        max_size=4)),
    "conditions": maybe(st.fixed_dictionaries({}, optional={
        "ambient_temperature_C": maybe(st.floats(-60, 100)), "initial_soc": maybe(st.floats(-0.5, 1.5))})),
    "outputs": maybe(st.fixed_dictionaries({}, optional={
        "variables": maybe(st.lists(maybe(st.sampled_from(["Voltage [V]", "Time [s]", "Electrolyte concentration [mol.m-3]",
                                                           "Nope [V]"])), max_size=4)),
        "period_s": maybe(st.floats(0, 1e5)), "max_points": maybe(st.integers(-5, 30_000)),
        "summary_only": maybe(st.booleans()), "columnar": maybe(st.booleans())})),
    "callback_url": maybe(st.sampled_from(["http://127.0.0.1:1/evil", "ftp://x", "", "http://user:pw@127.0.0.1/"])),
    "bpx": maybe(st.dictionaries(st.text(max_size=10), json_values, max_size=3)),
}))

SWEEP_PATHS = ["protocol.c_rate", "protocol.duration_s", "conditions.ambient_temperature_C",
               "conditions.initial_soc", "parameters.Nominal cell capacity [A.h]", "parameter_set",
               "model.name", "protocol", "nope.x", "id"]
axes = st.one_of(
    st.lists(maybe(st.floats(0.1, 3) | st.sampled_from(["Chen2020", "SPM", "DFN"])), min_size=0, max_size=4),
    st.fixed_dictionaries({"start": maybe(st.floats(-10, 40)), "stop": maybe(st.floats(-10, 40)),
                           "num": maybe(st.integers(0, 5))}),
    st.fixed_dictionaries({"min": maybe(st.floats(0.1, 2)), "max": maybe(st.floats(0.1, 2))}),
    junk,
)
sweep_bodies = with_extra_keys(st.fixed_dictionaries(
    {"base": maybe(native_bodies),
     "vary": maybe(st.dictionaries(st.sampled_from(SWEEP_PATHS) | st.text(max_size=20), axes, min_size=1, max_size=3)),
     "design": maybe(st.sampled_from(["grid", "random", "latin_hypercube", "sobol"]))},
    optional={"samples": maybe(st.integers(-1, 6) | st.sampled_from([1000, 1001, 10 ** 9])),
              "seed": maybe(st.integers(-(2 ** 70), 2 ** 70))}))

EXTREME_VALUES = st.one_of(st.integers(max_value=-1), st.sampled_from([0, 2 ** 70, 10 ** 400, -(10 ** 400), "", True]),
                           EXTREME_FLOATS, huge_strings)


@st.composite
def mutated(draw, valid: st.SearchStrategy) -> dict:
    """A valid body with up to 2 top-level fields replaced by junk or extreme values, or dropped."""
    body = dict(draw(valid))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(body) + ["unexpected"]))
        action = draw(st.sampled_from(["junk", "extreme", "drop"]))
        if action == "drop":
            body.pop(key, None)
        else:
            body[key] = draw(junk if action == "junk" else EXTREME_VALUES)
    return body


def num(lo: float, hi: float) -> st.SearchStrategy:
    """Mostly inside [lo, hi], sometimes any float at all (incl. +-inf, nan)."""
    return st.floats(lo, hi) | st.floats(lo, hi) | st.floats()


valid_natives = st.fixed_dictionaries({
    "model": st.fixed_dictionaries({"name": st.sampled_from(["SPM", "SPMe", "DFN"])},
                                   optional={"options": st.sampled_from([{}, {"thermal": "lumped"}])}),
    "parameter_set": st.sampled_from(["Chen2020", "Marquis2019", "Ai2020"]),
    "protocol": st.one_of(
        st.fixed_dictionaries({"type": st.just("constant_current"), "c_rate": num(-25, 25),
                               "duration_s": num(-10, 200_000)}),
        st.fixed_dictionaries({"type": st.just("constant_current"), "current_A": num(-600, 600)}),
        st.fixed_dictionaries({"type": st.just("experiment"), "steps": st.lists(STEPS, min_size=1, max_size=3),
                               "cycles": st.integers(-1, 600)}, optional={"period_s": num(0, 4000)}),
        st.fixed_dictionaries({"type": st.just("drive_cycle"),
                               "name": st.sampled_from(["US06", "UDDS", "WLTC", "car_current", "nope"])},
                              optional={"scale": num(0, 120)}),
        st.lists(st.tuples(num(0, 10), num(-600, 600)), min_size=0, max_size=6).map(
            lambda pts: {"type": "drive_cycle", "time_s": [0.0] + [sum(p[0] for p in pts[:i + 1]) for i in range(len(pts))],
                         "current_A": [0.0] + [p[1] for p in pts]}),
    ),
}, optional={
    "parameters": st.dictionaries(st.sampled_from(PARAMETER_NAMES), num(0, 10), max_size=3),
    "conditions": st.fixed_dictionaries({}, optional={"ambient_temperature_C": num(-50, 90),
                                                      "initial_soc": num(-0.2, 1.2)}),
    "outputs": st.fixed_dictionaries({}, optional={
        "variables": st.lists(st.sampled_from(["Voltage [V]", "Time [s]", "Current [A]", "Nope [V]",
                                               "Electrolyte concentration [mol.m-3]"]), max_size=4),
        "period_s": num(0, 100_000), "max_points": st.integers(0, 25_000), "summary_only": st.booleans()}),
    "id": st.text(min_size=0, max_size=130),
})

VALID_BASE = {"model": {"name": "SPM"}, "protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}}
valid_sweeps = st.one_of(
    st.fixed_dictionaries({"base": st.just(VALID_BASE), "design": st.just("grid"),
                           "vary": st.fixed_dictionaries({"protocol.c_rate": st.lists(st.floats(0.1, 2), min_size=1,
                                                                                      max_size=3)})}),
    st.fixed_dictionaries({"base": st.just(VALID_BASE), "design": st.sampled_from(["random", "latin_hypercube"]),
                           # right type, any value: the range checks are what is fuzzed here
                           "samples": st.integers(-1, 5), "seed": st.integers() | st.none(),
                           "vary": st.fixed_dictionaries({"protocol.c_rate": st.fixed_dictionaries(
                               {"min": st.floats(0.1, 1), "max": st.floats(0.5, 2)})})}),
)

api_keys = st.sampled_from([API_KEY] * 8 + ["wrong", "", None])
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
paths = st.one_of(
    st.sampled_from(list(ROUTES) + ["/", "/jobs/", "//cell//simulate", "/cell/simulate/extra", "/CELL/SIMULATE",
                                    "/jobs?x=1", "/%00", "/..", "/%0A", "/robots.txt", "/favicon.ico"]),
    st.text(alphabet=string.printable + "éü☃\x00", max_size=60).map(lambda t: "/" + quote(t, safe="/")),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
# around the service's limit, around pydantic's and json's recursion limits, and far past them
depths = st.integers(1, 64) | st.integers(64, 1_500) | st.integers(1_500, 150_000)
VALID_PROTOCOL = '"protocol": {"type": "constant_current", "c_rate": 1, "duration_s": 60}'
deep_nesting = st.one_of(
    depths.map(lambda d: ("[" * d + "]" * d).encode()),
    depths.map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()),
    # inside an otherwise valid native job: bpx is free-form, parameters and steps are not
    depths.map(lambda d: ("{" + VALID_PROTOCOL + ', "bpx":' + '{"a":' * d + "1" + "}" * d + "}").encode()),
    depths.map(lambda d: ("{" + VALID_PROTOCOL + ', "parameters": {"x": ' + "[" * d + "]" * d + "}}").encode()),
)
raw_bodies = st.one_of(
    st.binary(max_size=2_000),
    deep_nesting,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b""),
    st.none(),
)


def dumps(value) -> bytes:
    return json.dumps(value).encode()  # NaN/Infinity become bare tokens, as a careless client sends them


# --------------------------------------------------------------------------
# The fuzz tests
# --------------------------------------------------------------------------
@settings(FUZZ, max_examples=800)
@given(route=st.sampled_from(POST_ROUTES),
       body=st.one_of((json_values | junk).map(dumps), deep_nesting))
def test_arbitrary_json_never_causes_a_5xx(target, route, body):
    """Any JSON value (objects, arrays, scalars, huge strings, non-finite numbers,
    nesting deeper than any parser allows) POSTed to a submit route is either
    accepted (202) or refused with a 4xx reason."""
    send(target, "arbitrary", "POST", route, body)


@settings(FUZZ, max_examples=600)
@given(route=st.sampled_from(["/cell/simulate", "/drivecycle/simulate"]), body=legacy_bodies, key=api_keys)
def test_near_valid_legacy_bodies_are_accepted_or_refused_with_reasons(target, route, body, key):
    """The Java Job Manager's body with fields dropped, mistyped, out of range,
    non-finite, huge or nested, plus unknown keys, with a right or wrong API key."""
    reply = send(target, "legacy", "POST", route, dumps(body), api_key=key)
    if key != API_KEY:
        assert reply.status_code == 401


@settings(FUZZ, max_examples=600)
@given(body=native_bodies | mutated(valid_natives), key=api_keys)
def test_near_valid_native_jobs_are_accepted_or_refused_with_reasons(target, body, key):
    """Native jobs with every section mutated: model, options, parameter set,
    parameters, each protocol type, conditions, outputs, callback_url, bpx, id."""
    reply = send(target, "native", "POST", "/jobs", dumps(body), api_key=key)
    if key != API_KEY:
        assert reply.status_code == 401
    elif reply.status_code == 202 and isinstance(body.get("callback_url"), str):
        pytest.fail(f"a job naming callback_url {body['callback_url']!r} was accepted without an allowlist")


@settings(FUZZ, max_examples=600)
@given(body=sweep_bodies | mutated(valid_sweeps), key=api_keys)
def test_near_valid_sweeps_are_accepted_or_refused_with_reasons(target, body, key):
    """Sweeps (a base native job + values to vary) with mutated base jobs, paths,
    axes (lists, start/stop/num, min/max), designs, sample counts and seeds."""
    reply = send(target, "sweep", "POST", "/sweeps", dumps(body), api_key=key)
    if key != API_KEY:
        assert reply.status_code == 401


@settings(FUZZ, max_examples=500)
@given(method=methods, path=paths, body=raw_bodies, content_type=content_types, key=api_keys)
def test_raw_bytes_wrong_routes_and_methods_never_cause_a_5xx(target, method, path, body, content_type, key):
    """Undecodable bytes, deeply nested JSON, empty bodies, odd content types,
    unknown or mangled paths and every method: 404/405/401/400/413, never 5xx."""
    send(target, "raw", method, path, body, content_type=content_type, api_key=key)


def test_every_accepted_job_was_published_exactly_once(target):
    """The 202s of the fuzz tests above each put exactly one message, with that
    job id, on the topic (a pull subscription created before any request)."""
    stack, _, audit = target
    assert ACCEPTED, "no 202 was recorded: run this module's fuzz tests first (the whole file)"
    os.environ["PUBSUB_EMULATOR_HOST"] = stack.emulator_host
    subscriber = pubsub_v1.SubscriberClient()
    published: Counter = Counter()
    try:
        for _ in range(200):  # bounded: at most 200 pulls
            try:
                response = subscriber.pull(request={"subscription": audit, "max_messages": 1000}, timeout=5)
            except DeadlineExceeded:
                break
            if not response.received_messages:
                break
            for m in response.received_messages:
                published[m.message.attributes.get("jobId", "")] += 1
            subscriber.acknowledge(request={"subscription": audit,
                                            "ack_ids": [m.ack_id for m in response.received_messages]})
            if sum(published.values()) >= len(ACCEPTED):
                time.sleep(1)  # let a stray extra message show up, then look once more
    finally:
        subscriber.close()
    assert published == Counter(ACCEPTED)
    print(f"\nfuzz: accepted={len(ACCEPTED)} published={sum(published.values())}")
