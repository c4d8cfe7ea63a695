"""Code shared by the submit and worker functions.

* ``contract/``  what the service accepts and returns (native job, the Java Job Manager's contract, limits)
* ``engine/``    PyBaMM: kinds of simulation, protocols, planning, building, solving, results
* ``delivery/``  Pub/Sub messages and publishing, callbacks and their signatures
* ``store/``     the job store (Firestore): records, results, sweeps
* ``settings.py``, ``logs.py``  configuration and structured logs
"""

SERVICE_VERSION = "0.2.0"  # part of result-reuse keys: bump when results could change
