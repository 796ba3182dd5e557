"""Stores: the durable state of a job system, behind one small contract.

:class:`JobStore` (in :mod:`actorwork.stores.base`) is what the Scheduler asks of a
store: apply a batch of changes in one transaction, load the live jobs and schedules,
lead the store through a lease, and answer get, find and attempts. A store is chosen by
its URL through :func:`open_store`; ``sqlite://`` (:mod:`actorwork.stores.sqlite`, a
file, nothing to install) is the embedded default.
"""

from actorwork.stores.base import Job, JobStore, StoreEffect
from actorwork.stores.registry import known_stores, open_store, register_store

__all__ = ["Job", "JobStore", "StoreEffect", "known_stores", "open_store", "register_store"]
