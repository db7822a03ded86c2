"""Shared helpers for the bench's tests."""

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def python_server_argv():
    """A tiny stdlib HTTP server that prints the book's listening line."""
    code = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "print('listening on 127.0.0.1:%d' % s.server_address[1], flush=True)\n"
        "s.serve_forever()\n"
    )
    return [sys.executable, "-c", code]
