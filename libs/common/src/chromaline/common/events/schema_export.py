"""Generate the event contract documents in ``docs/events/`` from the pydantic models.

One JSON Schema per event (the envelope with its typed data, the type and version pinned) and
an AsyncAPI 3 document naming the exchange, the channels (routing keys) and their messages.
Run ``python -m chromaline.common.events.schema_export docs/events`` after changing a contract;
a test fails while the checked-in documents differ from what this module generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model

from chromaline.common.events.contracts import EVENTS, EventSpec
from chromaline.common.events.envelope import Envelope

EXCHANGE = "chromaline"


def envelope_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of one event's envelope, with ``type`` and ``schema_version`` fixed."""
    model = create_model(
        f"{spec.model.__name__}Event",
        __base__=Envelope[spec.model],  # type: ignore[name-defined]
        type=(Literal[spec.routing_key], Field(description="Event type, also the routing key.")),  # type: ignore[arg-type]
        schema_version=(Literal[spec.version], Field(description="Version of the data model.")),  # type: ignore[arg-type]
    )
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://chromaline.dev/events/{spec.routing_key}.v{spec.version}.schema.json"
    schema["description"] = spec.summary
    return schema


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in EVENTS:
        name = spec.model.__name__
        messages[name] = {
            "name": spec.routing_key,
            "title": name,
            "summary": spec.summary,
            "contentType": "application/json",
            "payload": {"$ref": f"./{spec.routing_key}.schema.json"},
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
        }
        channel_id = spec.routing_key.replace(".", "_")
        channels[channel_id] = {
            "address": spec.routing_key,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False},
                    "bindingVersion": "0.3.0",
                }
            },
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Publish {spec.routing_key} (persistent, publisher confirms).",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chromaline events",
            "version": "1.0.0",
            "description": "Events exchanged on the chromaline topic exchange. Every message is an "
            "envelope (event id, type = routing key, schema version, occurred-at UTC, producer, "
            "subject = job id, correlation id, causation id, data).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render_documents() -> dict[str, str]:
    """File name → content of every contract document."""
    documents = {
        f"{spec.routing_key}.schema.json": json.dumps(envelope_schema(spec), indent=2, sort_keys=True) + "\n"
        for spec in EVENTS
    }
    documents["asyncapi.json"] = json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"
    return documents


def write_documents(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_documents().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_documents(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/events")):
        print(path)
