"""A stand-in for the runtime in operator tests: serves /healthz and /readyz on $POD_IP:$TIDEFLOW_PORT.

It also serves /definition (the mounted definition file), so tests can see which definition a pod
was started with. The operator's tests do not depend on the real runtime server this way.
"""

from __future__ import annotations

import http.server
import json
import os
from pathlib import Path


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers the probes and the definition."""

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            body = b"ok"
        elif self.path == "/definition":
            body = Path(os.environ["TIDEFLOW_DEFINITION_PATH"]).read_bytes()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    address = (os.environ.get("POD_IP", "127.0.0.1"), int(os.environ.get("TIDEFLOW_PORT", "8080")))
    print(
        json.dumps(
            {"listening": f"{address[0]}:{address[1]}", "workflow": os.environ.get("TIDEFLOW_WORKFLOW")}
        ),
        flush=True,
    )
    http.server.ThreadingHTTPServer(address, Handler).serve_forever()


if __name__ == "__main__":
    main()
