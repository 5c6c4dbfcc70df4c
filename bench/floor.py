"""The floor of the side-by-side bench: a bare Flask app that does what any CDS Hooks endpoint must
(read the request body, parse its JSON, answer a card-sized JSON) and nothing else. Run under
gunicorn with the service's settings (bench/server.py), it is the cost below which the service
cannot go on this machine; bench/side_by_side.py reports the service's figures as ratios to it.

    gunicorn bench.floor:app
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from service.config import default_settings

# About the size of one card of the service (summary, detail, indicator, source, a link).
CARD: dict[str, Any] = {
    "uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "summary": "Tacrolimus trough 6.4 ng/mL (2026-11-18) is within the 4-8 ng/mL target",
    "detail": (
        "The latest tacrolimus trough is within the target range. Keep the dose and check the next "
        "trough as planned; take the capsules at the same time each day, with the same relation "
        "to food."
    )
    * 3,
    "indicator": "info",
    "source": {
        "label": "tacro-cds protocol",
        "topic": {
            "system": "http://example.org/fhir/CodeSystem/tacro-cds",
            "code": "trough",
            "display": "Trough monitoring",
        },
    },
    "links": [{"label": "Protocol", "url": "https://example.org/protocol#trough", "type": "absolute"}],
}


def create_app() -> Flask:
    app = Flask("tacro-cds-floor")
    app.config["MAX_CONTENT_LENGTH"] = default_settings().max_request_bytes  # the service's body limit

    @app.post("/cds-services/<service_id>")
    def hook(service_id: str) -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "hook" not in body:
            return jsonify({"error": "a JSON object with a hook is required"}), 400
        return jsonify({"cards": [CARD]}), 200

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app


app = create_app()
