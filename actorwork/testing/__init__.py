"""Public test helpers.

Testing a transport (:mod:`actorwork.testing.transports`): every transport passes
:data:`CONFORMANCE_CHECKS`, run through a harness that serves and connects for its
scheme. ``python -m actorwork.testing echo ADDRESS`` is an echo peer in another process.
"""

from __future__ import annotations

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
    "NotApplicable",
    "PipeHarness",
    "TCPHarness",
    "TransportHarness",
    "UnixHarness",
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
]
