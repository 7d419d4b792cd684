"""The ``llm`` node's ``images``: paths and URLs turned into the ``llm`` library's attachments.

As in pflow-cli 0.16, ``images`` is one string or a list of strings; one starting with
``http://`` or ``https://`` is a URL and is passed on as it is (the provider fetches it), any
other is a file path, relative to the working directory, that must exist. What was sent is
recorded for the trace by reference only: a file by its path, size and SHA-256, a URL by
itself; the image's bytes never reach the trace, a span or the store.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any

from pflow_trace.nodes.base import NodeFailure

URL_PREFIXES = ("http://", "https://")
_CHUNK_BYTES = 1 << 20


def image_list(images: Any) -> list[str]:
    """``images`` as a list of strings (one string is a list of one; none is empty)."""
    if images is None:
        return []
    listed = images if isinstance(images, list) else [images]
    for image in listed:
        if not isinstance(image, str):
            raise NodeFailure(
                f"llm: each image must be a path or a URL (a string), got {type(image).__name__}",
                retriable=False,
            )
    return listed


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def attachments_for(images: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """The attachments to send, and the record of each (``{path, bytes, sha256}`` or ``{url}``).

    A missing or unreadable file fails the node in one line before anything is sent.
    """
    import llm

    attachments: list[Any] = []
    records: list[dict[str, Any]] = []
    for image in image_list(images):
        if image.startswith(URL_PREFIXES):
            # A type guessed from the name spares the library a HEAD request to ask for it.
            kind = mimetypes.guess_type(image.split("?", 1)[0])[0]
            attachments.append(llm.Attachment(url=image, type=kind))
            records.append({"url": image})
            continue
        path = Path(image)
        if not path.is_file():
            raise NodeFailure(f"llm: image file not found: {image}", retriable=False)
        try:
            digest, size = sha256_of(path), path.stat().st_size
        except OSError as exc:
            raise NodeFailure(
                f"llm: cannot read image {image}: {exc.strerror or exc}", retriable=False
            ) from None
        attachments.append(llm.Attachment(path=str(path)))
        records.append({"path": image, "bytes": size, "sha256": digest})
    return attachments, records
