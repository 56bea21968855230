"""Property-based API tests of a running confab, generated from its own /openapi.json.

Usage: python run.py <base-url> [--examples N] [--access-key KEY]

Every operation of the document gets N generated requests in each mode (data that fits the
schema, and data that does not), sent with real credentials: chat routes with a user token,
identity and webhook routes with the access-key HMAC signature (CONTRACT §4.2), computed over
the exact bytes sent. Half of the chat requests name a real thread the user is in (and a real
message of it), so the handlers run past the 404. Each response must:
  - not be a 5xx;
  - have a status, content type and body the document allows;
  - on 4xx, be an ACS error body {"error":{"code","message"}}.
Prints the number of generated cases; exits non-zero on the first failing case.
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
import random
import sys
import urllib.parse

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

DEV_KEY = "GiHYTbr7Hthx7jH3sJUozAx8YxlDVfFRbDNOPvbIzRmDiWvlMHr1Wy90vwSk1VbWlMqhqOfmSHJbHCuIImtqrA=="
CHAT_V = "2025-03-15"
ID_V = "2023-10-01"
HMAC_PREFIXES = ("/identities", "/eventSubscriptions", "/teamsUser")
# An endless stream: nothing to validate in one response.
SKIPPED = {("GET", "/realtime/sse")}


class Credentials(requests.auth.AuthBase):
    """Signs access-key routes over the prepared request's bytes; bearer for the rest."""

    def __init__(self, key: str):
        self.key = base64.b64decode(key)
        self.token = None

    def __call__(self, r):
        url = urllib.parse.urlsplit(r.url)
        if url.path.startswith(HMAC_PREFIXES):
            body = r.body or b""
            if isinstance(body, str):
                body = body.encode()
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            date = email.utils.formatdate(usegmt=True)
            target = url.path + ("?" + url.query if url.query else "")
            to_sign = f"{r.method}\n{target}\n{date};{url.netloc};{digest}"
            sig = base64.b64encode(hmac.new(self.key, to_sign.encode(), hashlib.sha256).digest()).decode()
            r.headers["x-ms-date"] = date
            r.headers["x-ms-content-sha256"] = digest
            r.headers["Authorization"] = (
                f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}"
            )
        elif self.token:
            r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class World:
    """Real users, threads and messages that generated requests are pointed at."""

    def __init__(self, base: str, session: requests.Session, creds: Credentials):
        self.base, self.session, self.creds = base, session, creds
        me = self.identity()
        other = self.identity()
        self.user, creds.token = me["identity"]["id"], me["accessToken"]["token"]
        self.other = other["identity"]["id"]
        self.threads = []
        for _ in range(3):
            self.new_thread()

    def identity(self):
        r = self.session.post(
            f"{self.base}/identities?api-version={ID_V}", json={"createTokenWithScopes": ["chat"]}
        )
        r.raise_for_status()
        return r.json()

    def new_thread(self):
        r = self.session.post(
            f"{self.base}/chat/threads?api-version={CHAT_V}",
            json={"topic": "schemathesis", "participants": [
                {"communicationIdentifier": {"rawId": self.other}}]},
        )
        r.raise_for_status()
        t = r.json()["chatThread"]["id"]
        q = urllib.parse.quote(t, safe="")
        m = self.session.post(
            f"{self.base}/chat/threads/{q}/messages?api-version={CHAT_V}", json={"content": "hello"}
        )
        m.raise_for_status()
        self.threads.append((t, m.json()["id"]))

    def aim(self, case, rng: random.Random):
        """Points half of the chat cases at a real thread and message."""
        params = case.path_parameters or {}
        if "chatThreadId" in params and self.threads and rng.random() < 0.5:
            t, m = rng.choice(self.threads)
            params["chatThreadId"] = t
            if "chatMessageId" in params:
                params["chatMessageId"] = m
        if "id" in params and rng.random() < 0.3:
            # another identity, never the one whose token the run uses
            params["id"] = self.other
        if case.operation.path == "/realtime/poll" and case.query is not None:
            # a parked poll would make each case wait up to 30 s
            case.query["timeout"] = 0

    def after(self, case, response):
        """A deleted thread or identity is replaced, so later cases still reach real ones."""
        if response.status_code != 204:
            return
        if case.method.upper() == "DELETE" and case.operation.path == "/chat/threads/{chatThreadId}":
            self.threads = [x for x in self.threads if x[0] != case.path_parameters["chatThreadId"]]
            self.new_thread()
        if case.operation.path.startswith("/identities/{id}") and case.path_parameters.get("id") == self.other:
            self.other = self.identity()["identity"]["id"]


@schemathesis.serializer("audio/wav", "audio/webm", "audio/ogg", "audio/mpeg")
def audio(ctx, value):
    """Generated audio bodies are sent as their bytes."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    return {"data": value if isinstance(value, bytes) else b""}


def acs_error_shape(response, case):
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{case.operation.label}: {response.status_code} without a JSON body")
        err = body.get("error") if isinstance(body, dict) else None
        if not (isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)):
            raise AssertionError(f"{case.operation.label}: {response.status_code} is not an ACS error: {body!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--examples", type=int, default=40, help="generated cases per operation and mode")
    ap.add_argument("--access-key", default=DEV_KEY)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    base = args.base.rstrip("/")
    creds = Credentials(args.access_key)
    session = requests.Session()
    session.auth = creds
    world = World(base, session, creds)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    rng = random.Random(args.seed)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    total, statuses = 0, {}
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SKIPPED:
            print(f"skip  {op.label} (an endless stream)")
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            count = 0

            @settings(max_examples=args.examples, deadline=None, database=None, derandomize=args.seed is not None,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal count
                count += 1
                world.aim(case, rng)
                response = case.call(base_url=base, session=session, timeout=40)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=checks)
                acs_error_shape(response, case)
                world.after(case, response)

            try:
                run()
            except Unsatisfiable:
                # nothing to get wrong: no parameters and no body
                print(f"ok    {op.label:70} {mode.value:8}    0 cases (nothing to vary)")
                continue
            except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - say which operation failed, then stop
                print(f"FAIL  {op.label} ({mode.value}) after {count} cases:\n{e}", file=sys.stderr)
                return 1
            total += count
            print(f"ok    {op.label:70} {mode.value:8} {count:4} cases")
    print(f"schemathesis: {total} generated cases, statuses {dict(sorted(statuses.items()))}, no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
