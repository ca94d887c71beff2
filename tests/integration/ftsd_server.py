"""Child process of tests.integration.dovecot.FtsdServer: `python -m tests.integration.ftsd_server CONFIG PORT APP`.

APP "router": a bare FastAPI app with ftsd.api.solr.solr_router; "create_app": ftsd.api.app.create_app(settings)
(with its middleware, error handlers and lifespan), the Solr routes added if it does not mount them.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from fastapi import FastAPI

from ftsd.api.server import protocol
from ftsd.api.solr import solr_router
from ftsd.settings import load_settings


def build(config: str, kind: str) -> FastAPI:
    settings = load_settings(config)
    if kind == "create_app":
        from ftsd.api.app import create_app

        full = create_app(settings)
        if not any(str(getattr(route, "path", "")).startswith("/solr/") for route in full.routes):
            full.include_router(solr_router(settings))  # until create_app mounts solr_router(settings) itself
        return full
    app = FastAPI()
    app.include_router(solr_router(settings))
    return app


def main(argv: list[str]) -> None:
    config, port, kind = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # ftsd's own HTTP protocol (connection bounds, 102 Processing on long Solr requests), as `ftsd serve` runs it
    uvicorn.run(build(config, kind), host="127.0.0.1", port=int(port), log_level="warning",
                http=protocol(load_settings(config)))


if __name__ == "__main__":
    main(sys.argv[1:])
