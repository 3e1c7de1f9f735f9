"""Public helpers for document-store plugins: the ones the built-in stores use, so that every store
serializes, normalizes and reports errors alike (docs/hooks.md, "Public API for plugins").

``dump_resource``/``load_resource(s)`` and ``dump_run``/``load_run``: the JSON documents a store
keeps; ``micros``: a datetime as integer microseconds since 1970 (naive UTC), how runs'
``started_at`` is indexed; ``as_uid``, ``state_values``, ``check_kind``: argument normalization;
``name_conflict``, ``uid_conflict``, ``run_conflict``, ``not_found``: the errors the contract
raises, with the API's messages; ``FINAL_STATES``: the states ``delete_runs_before`` may remove;
``from_epoch`` and ``server_record``: lease times and ``list_servers`` records.
"""

from flowdapt.builtin.stores._common import (
    FINAL_STATES,
    as_uid,
    check_kind,
    dump_resource,
    dump_run,
    from_epoch,
    load_resource,
    load_resources,
    load_run,
    micros,
    name_conflict,
    not_found,
    run_conflict,
    server_record,
    state_values,
    uid_conflict,
)

__all__ = [
    "FINAL_STATES",
    "as_uid",
    "check_kind",
    "dump_resource",
    "dump_run",
    "from_epoch",
    "load_resource",
    "load_resources",
    "load_run",
    "micros",
    "name_conflict",
    "not_found",
    "run_conflict",
    "server_record",
    "state_values",
    "uid_conflict",
]
