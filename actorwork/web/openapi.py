"""The OpenAPI 3.1 document of the API: paths written here, schemas from msgspec's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from actorwork.messages import (
    MAX_ATTEMPTS,
    MAX_INT,
    MAX_KEY,
    MAX_SECONDS,
    AttemptRecord,
    JobView,
    LogLine,
    PoolView,
    QueueView,
    ScheduleView,
)
from actorwork.web.workflows import workflow_paths
from actorwork.work import Work
from actorwork.workflow import EXPAND, GATHER, WorkflowView

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "value": {},
    },
    "required": ["error", "field", "value"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": "OK", "content": {"application/json": {"schema": schema}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "an error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for code in (401, 403, 422, 503, *codes)
    }


def _param(name: str, schema: dict[str, Any], where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema}


_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
_TIME = {"type": "number", "minimum": 0, "maximum": 32503680000}
_STATUS = {
    "type": "string",
    "enum": [
        "scheduled",
        "queued",
        "running",
        "retrying",
        "succeeded",
        "failed",
        "dead",
        "cancelled",
    ],
}
_FILTERS = [
    _param("status", _STATUS),
    _param("queue", _NAME),
    _param("work", _NAME),
    _param("since", _TIME),
    _param("until", _TIME),
]
_PAGE = _ok(
    {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": _ref("JobView")},
            "next": {"type": ["integer", "null"]},
            "count": {"type": "integer", "minimum": 0},
        },
        "required": ["jobs", "next"],
    }
)
_LIST: dict[str, Any] = {
    "parameters": [
        *_FILTERS,
        _param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        _param("cursor", {"type": "integer", "minimum": -1, "maximum": 2**62}),
        _param("count", {"type": "string", "enum": ["true", "false"]}),
    ],
    "responses": {**_PAGE, **_errors(422)},
}
_JOB = _ok({"type": "object", "properties": {"job": _ref("JobView")}, "required": ["job"]})
_JOB_ID = _param("job_id", _NAME, "path")


def _submit_schema(payloads: dict[str, Any] | None) -> dict[str, Any]:
    """A submit's body; with the works known, one choice per work with its payload's schema."""
    options = {
        "queue": _NAME,
        "priority": {"type": "integer", "minimum": -MAX_INT - 1, "maximum": MAX_INT},
        "retries": {"type": "integer", "minimum": 0, "maximum": MAX_ATTEMPTS - 1},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
        "unique_key": {"type": "string", "maxLength": MAX_KEY},
        "delay": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        "job_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
    }

    def body(work: dict[str, Any], payload: tuple[dict[str, Any], bool]) -> dict[str, Any]:
        schema, needed = payload
        return {
            "type": "object",
            "properties": {"work": work, "payload": schema, **_nullable(options)},
            "required": ["work", "payload"] if needed else ["work"],
            "additionalProperties": False,
        }

    if not payloads:
        return body(_NAME, ({}, False))
    return {"oneOf": [body({"const": name}, payload) for name, payload in sorted(payloads.items())]}


def _nullable(properties: dict[str, Any]) -> dict[str, Any]:
    """``properties`` each allowing null too: the API takes null as "not given"."""
    return {key: {"anyOf": [schema, {"type": "null"}]} for key, schema in properties.items()}


def _needs_payload(work: Work) -> bool:
    """Whether a submit of ``work`` must give a payload (null is not one it takes)."""
    try:
        msgspec.convert(None, work.payload_type)
    except (msgspec.ValidationError, TypeError):
        return True
    return False


def _paths(payloads: dict[str, Any] | None) -> dict[str, Any]:
    set_list = {
        "get": {
            "parameters": _LIST["parameters"][1:],
            "responses": _LIST["responses"],
        }
    }
    submit_body = _submit_schema(payloads)
    return {
        "/jobs": {
            "get": _LIST,
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": submit_body}},
                },
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {
                                "job_id": {"type": "string"},
                                "created": {"type": "boolean"},
                            },
                        },
                        "201",
                    ),
                    **_errors(409, 422),
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "parameters": [_JOB_ID],
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {
                                "job": _ref("JobView"),
                                "attempts": {"type": "array", "items": _ref("AttemptRecord")},
                            },
                        }
                    ),
                    **_errors(404),
                },
            },
            "delete": {"parameters": [_JOB_ID], "responses": {**_JOB, **_errors(404, 409)}},
        },
        "/jobs/{job_id}/logs": {
            "get": {
                "parameters": [_JOB_ID],
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {"logs": {"type": "array", "items": _ref("LogLine")}},
                        }
                    ),
                    **_errors(404),
                },
            }
        },
        "/jobs/{job_id}/artifacts/{artifact}": {
            "get": {
                "parameters": [
                    _JOB_ID,
                    _param(
                        "artifact", {"type": "string", "minLength": 1, "maxLength": MAX_KEY}, "path"
                    ),
                    # Present: shown in the browser (inline) if a PDF, PNG, JPEG or plain text.
                    _param("view", {"type": "string"}),
                ],
                "responses": {"200": {"description": "the artifact's bytes"}, **_errors(404)},
            }
        },
        "/jobs/{job_id}/{action}": {
            "post": {
                "parameters": [
                    _JOB_ID,
                    _param("action", {"type": "string", "enum": ["cancel", "retry"]}, "path"),
                ],
                "responses": {**_JOB, **_errors(404, 409)},
            }
        },
        **workflow_paths(_NAME, _ok, _errors),
        "/jobs/{action}/by-filter": {
            "post": {
                "parameters": [
                    _param(
                        "action", {"type": "string", "enum": ["cancel", "retry", "delete"]}, "path"
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": _nullable(
                                    {
                                        "status": _STATUS,
                                        "queue": _NAME,
                                        "work": _NAME,
                                        "since": _TIME,
                                        "until": _TIME,
                                        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                                    }
                                ),
                                "anyOf": [
                                    {
                                        "required": [key],
                                        "properties": {key: {"not": {"type": "null"}}},
                                    }
                                    for key in ("status", "queue", "work", "since", "until")
                                ],
                            }
                        }
                    },
                },
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "properties": {
                                "done": {"type": "array", "items": {"type": "string"}},
                                "failed": {"type": "array"},
                            },
                        }
                    ),
                    **_errors(404, 422),
                },
            }
        },
        "/scheduled": set_list,
        "/retrying": set_list,
        "/dead": set_list,
        "/queues": {
            "get": {
                "responses": _ok(
                    {
                        "type": "object",
                        "properties": {"queues": {"type": "array", "items": _ref("QueueView")}},
                    }
                )
                | _errors()
            }
        },
        "/queues/{name}/{action}": {
            "post": {
                "parameters": [
                    _param("name", _NAME, "path"),
                    _param("action", {"type": "string", "enum": ["pause", "resume"]}, "path"),
                ],
                "responses": _ok({"type": "object", "properties": {"queue": _ref("QueueView")}})
                | _errors(404, 422),
            }
        },
        "/pools": {
            "get": {
                "responses": _ok(
                    {
                        "type": "object",
                        "properties": {"pools": {"type": "array", "items": _ref("PoolView")}},
                    }
                )
                | _errors()
            }
        },
        "/schedules": {
            "get": {
                "parameters": [_param("count", {"type": "integer", "minimum": 0, "maximum": 100})],
                "responses": _ok(
                    {
                        "type": "object",
                        "properties": {
                            "schedules": {"type": "array", "items": _ref("ScheduleView")}
                        },
                    }
                )
                | _errors(422),
            }
        },
        "/schedules/{name}/{action}": {
            "post": {
                "parameters": [
                    _param("name", _NAME, "path"),
                    _param(
                        "action", {"type": "string", "enum": ["enable", "disable", "run"]}, "path"
                    ),
                ],
                "responses": {
                    "200": {"description": "the schedule"},
                    **_JOB_201(),
                    **_errors(404, 422),
                },
            }
        },
        "/events": {
            "get": {
                "parameters": [
                    _param("job_id", _NAME),
                    _param("work", _NAME),
                    _param("queue", _NAME),
                    _param("status", _STATUS),
                    _param("kinds", {"type": "string"}),
                ],
                "responses": {
                    "200": {
                        "description": "Server-Sent Events, one per job event",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(422),
                },
            }
        },
        "/metrics": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(),
                }
            }
        },
    }


def _JOB_201() -> dict[str, Any]:  # noqa: N802 - reads as the constant it stands for
    return {"201": _JOB["200"]}


_VIEWS = (JobView, AttemptRecord, LogLine, QueueView, PoolView, ScheduleView, WorkflowView)
_documents: dict[tuple[str, ...] | None, dict[str, Any]] = {}


def openapi_document(works: Sequence[Work] | None = None) -> dict[str, Any]:
    """The document served at ``/openapi.json``; with ``works``, a submit's body lists
    them, each with its payload's schema (else any work name, any payload)."""
    if works is not None:  # a workflow's own nodes are not for submitting by hand
        works = [work for work in works if work.name not in (EXPAND, GATHER)]
    key = None if works is None else tuple(sorted(work.name for work in works))
    document = _documents.get(key)
    if document is not None:
        return document
    types = [work.payload_type for work in works or ()]
    try:
        schemas, components = msgspec.json.schema_components(
            [*_VIEWS, *types], ref_template="#/components/schemas/{name}"
        )
        payloads = {
            work.name: (schema, _needs_payload(work))
            for work, schema in zip(works or (), schemas[len(_VIEWS) :], strict=True)
        }
    except (TypeError, ValueError):  # a payload type without a JSON schema: leave them open
        _, components = msgspec.json.schema_components(
            _VIEWS, ref_template="#/components/schemas/{name}"
        )
        payloads = {work.name: ({}, _needs_payload(work)) for work in works or ()}
    components["Error"] = _ERROR
    document = {
        "openapi": "3.1.0",
        "info": {"title": "actorwork", "version": "1"},
        "paths": _paths(payloads or None),
        "components": {"schemas": components},
    }
    if len(_documents) < 64:
        _documents[key] = document
    return document
