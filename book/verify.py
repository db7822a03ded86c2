"""Checks a server's answers before any load, so a broken server is never
measured. The JSON checks follow the rules of TechEmpower's JSON test:
status, exact body, Content-Type, Server and Date headers, a Date that
changes from one second to the next.
"""

import email.utils
import http.client
import json
import time
from dataclasses import dataclass

TECHEMPOWER_JSON = {"message": "Hello, World!"}


class VerificationFailed(AssertionError):
    """The server answered wrongly; the message lists every fault found."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    timeout_s: float = 10.0,
) -> Answer:
    """One HTTP/1.1 request to 127.0.0.1:port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    headers = {}
    if body is not None and content_type:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        found = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, found, data)
    finally:
        connection.close()


def _json_faults(answer: Answer) -> list[str]:
    faults = []
    if answer.status != 200:
        faults.append(f"status {answer.status}, want 200")
    content_type = answer.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        faults.append(f"Content-Type {content_type!r}, want application/json")
    for header in ("server", "date"):
        if header not in answer.headers:
            faults.append(f"no {header.title()} header")
    if "content-length" not in answer.headers and "transfer-encoding" not in (
        answer.headers
    ):
        faults.append("neither Content-Length nor Transfer-Encoding")
    try:
        if answer.json() != TECHEMPOWER_JSON:
            faults.append(f"body {answer.body[:80]!r}, want {TECHEMPOWER_JSON}")
    except ValueError:
        faults.append(f"body is not JSON: {answer.body[:80]!r}")
    date = answer.headers.get("date")
    if date and email.utils.parsedate_to_datetime(date) is None:
        faults.append(f"Date header {date!r} is not an HTTP date")
    return faults


def verify_techempower_json(port: int, path: str = "/json") -> None:
    """GET /json answers as TechEmpower's JSON test requires."""
    first = request(port, "GET", path)
    faults = _json_faults(first)
    # A Date that never changes means the server caches its answer.
    time.sleep(1.1)
    second = request(port, "GET", path)
    faults += _json_faults(second)
    if first.headers.get("date") == second.headers.get("date"):
        faults.append("the Date header did not change after 1.1 s")
    if faults:
        raise VerificationFailed(f"GET {path} on port {port}: " + "; ".join(faults))


def verify_post_json(port: int, path: str, body: bytes, expected) -> Answer:
    """A POST of valid JSON answers 200 with the expected JSON value."""
    answer = request(port, "POST", path, body)
    faults = []
    if answer.status != 200:
        faults.append(f"status {answer.status}, want 200: {answer.body[:200]!r}")
    elif not answer.headers.get("content-type", "").startswith("application/json"):
        faults.append(f"Content-Type {answer.headers.get('content-type')!r}")
    elif answer.json() != expected:
        faults.append(f"answer {answer.json()} differs from {expected}")
    if faults:
        raise VerificationFailed(f"POST {path} on port {port}: " + "; ".join(faults))
    return answer


def verify_error(
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    want_status: int,
    content_type: str | None = "application/json",
) -> Answer:
    """Bad input is refused with the wanted 4xx and a JSON error body."""
    answer = request(port, method, path, body, content_type)
    faults = []
    if answer.status != want_status:
        faults.append(f"status {answer.status}, want {want_status}")
    try:
        error = answer.json()
        if not isinstance(error, dict) or "error" not in error:
            faults.append(f"error body has no 'error' field: {answer.body[:120]!r}")
    except ValueError:
        faults.append(f"error body is not JSON: {answer.body[:120]!r}")
    if faults:
        raise VerificationFailed(
            f"{method} {path} on port {port} (bad input): " + "; ".join(faults)
        )
    return answer
