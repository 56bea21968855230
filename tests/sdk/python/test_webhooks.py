"""What confab's webhooks send is accepted by the official Event Grid parsers:
azure-eventgrid's EventGridEvent.from_dict and azure-core's CloudEvent.from_dict.

A small receiver on loopback answers the validation handshakes and records deliveries; the
chat traffic comes from the chat SDK. Needs confab started with --webhook-allow-private."""
import base64
import hashlib
import hmac
import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
import requests
from azure.communication.chat import ChatParticipant
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from test_sdk import chat_client, new_user


class Receiver(BaseHTTPRequestHandler):
    deliveries = []  # (headers, body) of every notification

    def log_message(self, *args):
        pass

    def do_OPTIONS(self):  # CloudEvents abuse-protection handshake
        self.send_response(200)
        self.send_header("WebHook-Allowed-Origin", "*")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("aeg-event-type") == "SubscriptionValidation":
            code = json.loads(body)[0]["data"]["validationCode"]
            reply = json.dumps({"validationResponse": code}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        Receiver.deliveries.append((self.headers, body))  # case-insensitive lookups
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def signed(connection_string, method, path, body=""):
    """An access-key request, signed with HMAC-SHA256 as the Communication SDKs sign."""
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if p)
    endpoint, key = parts["endpoint"].rstrip("/"), parts["accesskey"]
    url = urlparse(endpoint + path)
    date = formatdate(usegmt=True)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    to_sign = f"{method}\n{url.path}{'?' + url.query if url.query else ''}\n{date};{url.netloc};{digest}"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
    return requests.request(method, endpoint + path, data=body or None, headers={
        "content-type": "application/json", "x-ms-date": date, "x-ms-content-sha256": digest,
        "authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}",
    })


def wait_for(pred, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        found = pred()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_official_parsers_accept_confab_events(identity, endpoint, connection_string, receiver):
    kinds = ["ChatMessageReceived", "ChatMessageReceivedInThread", "ChatThreadCreated"]
    for name, schema in [("py-eventgrid", "EventGridSchema"), ("py-cloudevents", "CloudEventSchemaV1_0")]:
        r = signed(connection_string, "PUT", f"/eventSubscriptions/{name}", json.dumps(
            {"endpointUrl": receiver, "eventDeliverySchema": schema, "includedEventTypes": kinds}))
        assert r.status_code in (200, 201), r.text
        assert r.json()["provisioningState"] == "Succeeded"
    try:
        alice, alice_token = new_user(identity)
        bob, _ = new_user(identity)
        chat = chat_client(endpoint, alice_token)
        thread = chat.create_chat_thread("webhooks", thread_participants=[
            ChatParticipant(identifier=bob, display_name="Bob")]).chat_thread
        message_id = chat.get_chat_thread_client(thread.id).send_message("hello hooks", sender_display_name="Alice").id

        def by_schema(cloud):
            return [(h, b) for h, b in Receiver.deliveries
                    if h.get("aeg-subscription-name") == ("py-cloudevents" if cloud else "py-eventgrid")]

        grid = wait_for(lambda: len(by_schema(False)) >= 3 and by_schema(False), "3 Event Grid deliveries")
        for headers, body in grid:
            raw = json.loads(body)
            assert isinstance(raw, list) and len(raw) == 1
            event = EventGridEvent.from_dict(raw[0])
            assert event.id == raw[0]["id"]
            assert event.topic.endswith("/communicationServices/confab")
            assert event.data_version == "1.0"
            assert event.event_type.startswith("Microsoft.Communication.")
            assert headers["aeg-event-type"] == "Notification"
        received = [EventGridEvent.from_dict(json.loads(b)[0]) for _, b in grid]
        to_bob = next(e for e in received if e.event_type == "Microsoft.Communication.ChatMessageReceived")
        assert to_bob.subject == f"thread/{thread.id}/sender/{alice.properties['id']}/recipient/{bob.properties['id']}"
        assert to_bob.data["messageBody"] == "hello hooks"
        assert to_bob.data["messageId"] == message_id
        assert to_bob.data["senderDisplayName"] == "Alice"
        assert to_bob.data["recipientCommunicationIdentifier"]["rawId"] == bob.properties["id"]
        created = next(e for e in received if e.event_type == "Microsoft.Communication.ChatThreadCreated")
        assert created.data["properties"] == {"topic": "webhooks"}

        cloud = wait_for(lambda: len(by_schema(True)) >= 3 and by_schema(True), "3 CloudEvents deliveries")
        for headers, body in cloud:
            assert headers["Content-Type"].startswith("application/cloudevents+json")
            event = CloudEvent.from_dict(json.loads(body))
            assert event.specversion == "1.0"
            assert event.source.endswith("/communicationServices/confab")
            assert event.type in {f"Microsoft.Communication.{k}" for k in kinds}
            assert event.datacontenttype == "application/json"
            assert event.data["threadId"] == thread.id
        in_thread = next(CloudEvent.from_dict(json.loads(b)) for _, b in cloud
                         if json.loads(b)["type"].endswith("ChatMessageReceivedInThread"))
        assert in_thread.subject == f"thread/{thread.id}/sender/{alice.properties['id']}"
        assert in_thread.data["messageBody"] == "hello hooks"
    finally:
        for name in ["py-eventgrid", "py-cloudevents"]:
            assert signed(connection_string, "DELETE", f"/eventSubscriptions/{name}").status_code == 204
