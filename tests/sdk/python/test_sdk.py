"""The official Python SDKs (azure-communication-identity, azure-communication-chat) run
their REST flows against confab, unmodified, over HTTPS."""
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    CommunicationTokenCredential,
)
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)


def expires(token):
    return datetime.fromisoformat(token.expires_on.replace("Z", "+00:00"))


def new_user(identity):
    user, token = identity.create_user_and_token(scopes=["chat"])
    return user, token.token


def chat_client(endpoint, token):
    return ChatClient(endpoint, CommunicationTokenCredential(token))


def test_identity_flows(identity):
    """create_user, create_user_and_token, get_token, revoke_tokens, delete_user."""
    user = identity.create_user()
    assert user.properties["id"].startswith("8:acs:")
    token = identity.get_token(user, scopes=["chat", "voip"], token_expires_in=timedelta(hours=2))
    assert token.token.count(".") == 2
    # the identity SDK hands expiresOn through as the wire string: RFC 3339, 3 digits, Z
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", token.expires_on), token.expires_on
    assert expires(token) > datetime.now(timezone.utc) + timedelta(minutes=110)
    user2, token2 = identity.create_user_and_token(scopes=["chat"])
    assert expires(token2) > datetime.now(timezone.utc) + timedelta(hours=23)
    identity.revoke_tokens(user2)
    identity.delete_user(user)
    with pytest.raises(ResourceNotFoundError):
        identity.get_token(user, scopes=["chat"])


def test_full_chat_flow(identity, endpoint):
    alice, alice_token = new_user(identity)
    bob, bob_token = new_user(identity)
    carol, _ = new_user(identity)
    chat = chat_client(endpoint, alice_token)

    # create with participants and an idempotency token, then replay it
    token = str(uuid.uuid4())
    participants = [
        ChatParticipant(identifier=alice, display_name="Alice"),
        ChatParticipant(identifier=bob, display_name="Bob", share_history_time=datetime.now(timezone.utc)),
    ]
    created = chat.create_chat_thread("SDK flow", thread_participants=participants, idempotency_token=token)
    assert not created.errors
    thread_id = created.chat_thread.id
    again = chat.create_chat_thread("SDK flow", thread_participants=participants, idempotency_token=token)
    assert again.chat_thread.id == thread_id

    thread = chat.get_chat_thread_client(thread_id)
    props = thread.get_properties()
    assert props.topic == "SDK flow"
    assert props.created_by.properties["id"] == alice.properties["id"]
    thread.update_topic(topic="SDK flow, renamed")
    assert thread.get_properties().topic == "SDK flow, renamed"

    # text and html messages with metadata
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    text = thread.send_message("hello 👋🏽 👨‍👩‍👧", sender_display_name="Alice", metadata={"k": "v"})
    html = thread.send_message("<b>bold</b><script>x()</script>", chat_message_type=ChatMessageType.HTML)
    ids = [text.id, html.id]
    for i in range(6):
        ids.append(thread.send_message(f"message {i}").id)

    m = thread.get_message(text.id)
    assert m.content.message == "hello 👋🏽 👨‍👩‍👧"
    assert m.sender_display_name == "Alice"
    assert m.metadata == {"k": "v"}
    assert m.type == ChatMessageType.TEXT
    h = thread.get_message(html.id)
    assert h.type == ChatMessageType.HTML
    assert h.content.message == "<b>bold</b>"

    # paging: 3 per page gives at least 3 pages; every message once, newest first
    pages = list(thread.list_messages(results_per_page=3).by_page())
    assert len(pages) >= 3
    seen = [msg for page in pages for msg in page]
    texts = [msg.id for msg in seen if msg.type in (ChatMessageType.TEXT, ChatMessageType.HTML)]
    assert texts == list(reversed(ids))
    seqs = [int(msg.sequence_id) for msg in seen]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    recent = [msg for msg in thread.list_messages(results_per_page=50, start_time=before)]
    assert {msg.id for msg in recent} >= set(ids)

    # update and delete
    thread.update_message(text.id, content="edited", metadata={"k": "w"})
    edited = thread.get_message(text.id)
    assert edited.content.message == "edited"
    assert edited.edited_on is not None
    thread.delete_message(html.id)
    gone = thread.get_message(html.id)
    assert gone.deleted_on is not None

    # participants, with share-history times
    names = {p.identifier.properties["id"]: p.display_name for p in thread.list_participants()}
    assert names == {alice.properties["id"]: "Alice", bob.properties["id"]: "Bob"}
    failures = thread.add_participants(
        [ChatParticipant(identifier=carol, display_name="Carol", share_history_time=datetime.now(timezone.utc) - timedelta(days=1))]
    )
    assert failures == []
    assert len(list(thread.list_participants(results_per_page=1))) == 3
    thread.remove_participant(carol)
    assert carol.properties["id"] not in {p.identifier.properties["id"] for p in thread.list_participants()}

    # read receipts and typing, as Bob
    bob_thread = chat_client(endpoint, bob_token).get_chat_thread_client(thread_id)
    bob_thread.send_read_receipt(ids[-1])
    receipts = list(thread.list_read_receipts())
    assert [r.chat_message_id for r in receipts] == [ids[-1]]
    assert receipts[0].sender.properties["id"] == bob.properties["id"]
    bob_thread.send_typing_notification(sender_display_name="Bob")

    # list threads with paging
    for i in range(3):
        chat.create_chat_thread(f"extra {i}")
    pages = list(chat.list_chat_threads(results_per_page=2).by_page())
    listed = [t.id for page in pages for t in page]
    assert len(pages) >= 2 and thread_id in listed and len(listed) == len(set(listed))

    # delete the thread
    chat.delete_chat_thread(thread_id)
    with pytest.raises(ResourceNotFoundError):
        thread.get_properties()


def test_errors_map_to_sdk_exceptions(identity, endpoint):
    alice, alice_token = new_user(identity)
    stranger, stranger_token = new_user(identity)
    chat = chat_client(endpoint, alice_token)
    thread_id = chat.create_chat_thread("private").chat_thread.id
    thread = chat.get_chat_thread_client(thread_id)

    # a missing message
    with pytest.raises(ResourceNotFoundError):
        thread.get_message("12345")

    # a non-participant
    outsider = chat_client(endpoint, stranger_token).get_chat_thread_client(thread_id)
    with pytest.raises(HttpResponseError) as e:
        outsider.send_message("let me in")
    assert e.value.status_code == 403

    # revoked tokens
    identity.revoke_tokens(alice)
    with pytest.raises(ClientAuthenticationError):
        thread.get_properties()
