"""Precompiled solver functions for the configurations this service sees most.

IDAKLU can run its CasADi functions (residual, Jacobian, events, outputs) as
native code instead of CasADi's interpreter: warm solves get 1.2-2x faster, but
compiling one configuration takes 10-25 s of gcc, far too long for an
invocation. So the build compiles the standard configurations ahead of time
into ``aot/`` and lists them, with their library files, in
``aot/manifest.json``.

At run time (``SOLVER_COMPILE``):

* ``auto`` (default): a configuration the manifest lists is built with compiled
  functions, and those are *loaded, never compiled*: a library that is missing
  (a different US06 file, a different CasADi build) leaves that function
  interpreted. Nothing runs gcc on a worker.
* ``always``: every configuration is compiled on its first job (PyBaMM's own
  flags, into PyBaMM's temporary cache), unless ``aot/`` already has it.
* ``never``: interpreted only.

The build command is ``shared.engine.build_precompiled``; this module is what a
worker needs at run time. Nothing here runs at import: the solver process calls
``install()`` before it builds a compiled configuration, and the worker function
calls ``mode()`` when it starts (a bad ``SOLVER_COMPILE`` stops it there).

Libraries are built with portable flags (``-march=x86-64-v2``), so a build
machine's CPU features never reach a runtime CPU that lacks them. The manifest
records the PyBaMM and CasADi versions and is ignored (with a warning) when they
differ from the running ones.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import platform
import sys
from pathlib import Path

from shared.settings import get_settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PORTABLE_FLAGS = ("-O3", "-fPIC", "-march=x86-64-v2")
LIBRARY_PREFIX = "pybamm_"  # how PyBaMM names its libraries


def aot_dir() -> Path:
    return Path(get_settings().aot_dir)


def mode() -> str:
    """SOLVER_COMPILE: auto | always | never (``Settings`` refuses any other value)."""
    return get_settings().solver_compile


def _versions() -> dict[str, str]:
    import casadi
    import pybamm

    return {"pybamm": pybamm.__version__, "casadi": casadi.__version__, "machine": platform.machine()}


@functools.lru_cache(maxsize=1)
def _listed() -> frozenset[str]:
    """Plan keys of the precompiled configurations that fit this install."""
    path = aot_dir() / MANIFEST
    if not path.is_file():
        return frozenset()
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("precompiled: %s is unreadable (%s); every configuration runs interpreted", path, exc)
        return frozenset()
    if manifest.get("versions") != _versions():
        log.warning("precompiled: %s was built for %s, this install is %s; every configuration runs interpreted",
                    path, manifest.get("versions"), _versions())
        return frozenset()
    return frozenset(manifest.get("configurations", {}))


def use_compiled(plan_key: str) -> bool:
    """Whether a configuration is built with compiled solver functions."""
    m = mode()
    return m == "always" or (m == "auto" and plan_key in _listed())


# ---------------------------------------------------------------------------
# Where PyBaMM compiles: every caller (IDAKLU set-up, solution observation, the
# algebraic solver) goes through pybamm.codegen.compilation._aot_compile.
# ---------------------------------------------------------------------------
_building = False  # set by shared.engine.build_precompiled while it builds


def library_name(fns: list) -> str:
    """The file PyBaMM compiles these functions into (its own naming: a hash of
    each function's name and serialised form)."""
    todo = [fn for fn in fns if fn.class_name() != "External"]
    hasher = hashlib.sha1(usedforsecurity=False)
    for fn in todo:
        hasher.update(fn.name().encode())
        hasher.update(b"\0")
        hasher.update(fn.serialize().encode())
        hasher.update(b"\0")
    label = todo[0].name() if len(todo) == 1 else "bundle"
    suffix = ".dylib" if sys.platform == "darwin" else ".dll" if sys.platform == "win32" else ".so"
    return f"{LIBRARY_PREFIX}{label}_{hasher.hexdigest()[:16]}{suffix}"


def _aot_compile(pybamm_aot_compile, fns, **kwargs):
    if _building:  # the build: portable flags, into aot/
        return pybamm_aot_compile(fns, **{**kwargs, "cache_dir": str(aot_dir()), "flags": PORTABLE_FLAGS})
    if (aot_dir() / library_name(fns)).is_file():  # precompiled: load it
        return pybamm_aot_compile(fns, **{**kwargs, "cache_dir": str(aot_dir())})
    if mode() == "always":  # PyBaMM's own flags and temporary cache
        return pybamm_aot_compile(fns, **kwargs)
    return list(fns)  # auto: never run gcc on a worker; this function stays interpreted


def install() -> None:
    """Route PyBaMM's compiles through ``_aot_compile`` (once per process)."""
    import pybamm.codegen.compilation as compilation

    if not isinstance(compilation._aot_compile, functools.partial):
        compilation._aot_compile = functools.partial(_aot_compile, compilation._aot_compile)


def is_compiled(sim) -> bool:
    """Whether a solved simulation's IDAKLU really runs compiled functions."""
    setup = getattr(sim.solver, "_setup", None) or {}
    fn = setup.get("rootfn_casadi")
    return fn is not None and fn.class_name() == "External"
