"""Public test helpers: an inline job system for testing your work, and the transport
conformance suite.

Testing work (:mod:`actorwork.testing.jobs`): :func:`job_system` runs a job system in
this process on a temporary store, by a manual clock, so delays, ``at``, cron
schedules and retry backoff are tested without sleeping; with pytest, the fixtures
``actorwork_jobs`` and ``actorwork_clock`` (:mod:`actorwork.testing.pytest_plugin`)
are there once actorwork is installed.

Testing a transport (:mod:`actorwork.testing.transports`): every transport passes
:data:`CONFORMANCE_CHECKS`, run through a harness that serves and connects for its
scheme. ``python -m actorwork.testing echo ADDRESS`` is an echo peer in another process.
"""

from __future__ import annotations

from actorwork.testing.jobs import (
    InlineJobs,
    calendar_now,
    hosted,
    inline_config,
    job_system,
    pending,
)
from actorwork.testing.transports import (
    CONFORMANCE_CHECKS,
    HARNESSES,
    DockerHarness,
    InProcHarness,
    NotApplicable,
    PipeHarness,
    TCPHarness,
    TransportHarness,
    UnixHarness,
    check_aclose_idempotent,
    check_auth,
    check_forged_proof_refused,
    check_handshake_version_mismatch,
    check_hostile_input_closes_only_that_connection,
    check_many_connections,
    check_order_kept,
    check_over_cap_closes_receiver,
    check_peer_killed_detected,
    check_silent_client_refused,
    check_sizes_up_to_cap,
)

__all__ = [
    "CONFORMANCE_CHECKS",
    "HARNESSES",
    "DockerHarness",
    "InProcHarness",
    "InlineJobs",
    "NotApplicable",
    "PipeHarness",
    "TCPHarness",
    "TransportHarness",
    "UnixHarness",
    "calendar_now",
    "check_aclose_idempotent",
    "check_auth",
    "check_forged_proof_refused",
    "check_handshake_version_mismatch",
    "check_hostile_input_closes_only_that_connection",
    "check_many_connections",
    "check_order_kept",
    "check_over_cap_closes_receiver",
    "check_peer_killed_detected",
    "check_silent_client_refused",
    "check_sizes_up_to_cap",
    "hosted",
    "inline_config",
    "job_system",
    "pending",
]
