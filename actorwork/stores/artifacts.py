"""Artifacts as files beside the store, so the database stays small.

A result's artifacts are kept once each, in a file named by the SHA-256 of their
bytes (``<store>-artifacts/ab/abcdef…``): two jobs that made the same PDF share a
file. The store writes and fsyncs the files of a batch before the transaction that
names them commits, so a committed reference always has its file; it removes a file
after the commit that dropped the last reference to it, so a rolled-back delete never
loses one. A crash between that commit and the removal leaves a file nothing names,
never the reverse.

Every method is blocking; the store calls them from its own thread.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from actorwork._log import get_logger
from actorwork.errors import StoreError
from actorwork.messages import Artifact, WorkResult
from actorwork.stores._files import DIRECTORY_MODE, FILE_MODE, make_private_directory, tighten

__all__ = ["ArtifactFiles", "reference"]

log = get_logger(__name__)


def reference(result: WorkResult) -> tuple[WorkResult, dict[str, bytes]]:
    """``result`` with its artifacts as references, and their bytes by SHA-256."""
    if not any(artifact.data for artifact in result.artifacts):
        return result, {}
    files: dict[str, bytes] = {}
    refs = []
    for artifact in result.artifacts:
        if not artifact.data:
            refs.append(artifact)
            continue
        digest = hashlib.sha256(artifact.data).hexdigest()
        files[digest] = artifact.data
        refs.append(
            Artifact(
                artifact.name, b"", artifact.media_type, sha256=digest, size=len(artifact.data)
            )
        )
    return msgspec.structs.replace(result, artifacts=tuple(refs)), files


class ArtifactFiles:
    """The directory of one store's artifact files (created 0700, files 0600)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def secure(self) -> None:
        """Tighten the directory to ``0o700`` if it exists looser (see ``_files``).

        Its own mode is enough to keep others from every file below it, so the files,
        which may be many, are not walked.
        """
        tighten(self.root, DIRECTORY_MODE)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise StoreError(f"artifact reference {digest!r} is not a SHA-256 in hex")
        return self.root / digest[:2] / digest

    def write(self, files: dict[str, bytes]) -> None:
        """Make every file durable (file, then directory fsynced) unless it is there."""
        for digest, data in files.items():
            final = self.path(digest)
            try:
                if final.stat().st_size == len(data):
                    continue  # content-addressed: the same name holds the same bytes
            except FileNotFoundError:
                pass
            try:
                self._write_one(final, data)
            except OSError as exc:
                raise StoreError(f"cannot write artifact file {str(final)!r}: {exc}") from exc

    def _write_one(self, final: Path, data: bytes) -> None:
        make_private_directory(final.parent)
        temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        for directory in (final.parent, self.root):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def load(self, result: WorkResult) -> WorkResult:
        """``result`` with the bytes of its referenced artifacts read back.

        A file gone missing (removed by hand) leaves its reference, with a warning.
        """
        if not any(artifact.is_reference for artifact in result.artifacts):
            return result
        loaded = []
        for artifact in result.artifacts:
            if artifact.is_reference:
                try:
                    data = self.path(artifact.sha256).read_bytes()
                except OSError as exc:
                    log.warning(
                        "artifact_file_missing",
                        job_id=result.job_id,
                        artifact=artifact.name,
                        sha256=artifact.sha256,
                        error=str(exc),
                    )
                else:
                    loaded.append(msgspec.structs.replace(artifact, data=data))
                    continue
            loaded.append(artifact)
        return msgspec.structs.replace(result, artifacts=tuple(loaded))

    def remove(self, digests: Iterable[str]) -> None:
        """Delete the files of ``digests`` (no longer referenced); a missing one is fine."""
        for digest in digests:
            try:
                self.path(digest).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("artifact_file_not_removed", sha256=digest, error=str(exc))
