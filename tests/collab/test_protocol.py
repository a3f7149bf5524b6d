from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pycrdt import Doc, Text, handle_sync_message

from collab import protocol
from collab.protocol import MessageType, ProtocolError, SyncStep, parse_message


def test_step1_round_trip_and_step2_reply_syncs_two_peers() -> None:
    server, client = Doc(), Doc()
    server.get("t", type=Text).insert(0, "server text")
    client.get("t", type=Text).insert(0, "client ")
    message = parse_message(protocol.sync_step1(client.get_state()))
    assert message.type is MessageType.SYNC and message.step is SyncStep.STEP1
    reply = protocol.sync_step2(server.get_update(message.payload))
    # The reply is what a stock y-protocols peer expects: pycrdt's own handler applies it.
    assert handle_sync_message(reply[1:], client) is None
    assert "server text" in str(client.get("t", type=Text))


def test_update_and_awareness_and_query_parse() -> None:
    assert parse_message(protocol.sync_update(b"\x00\x00")).is_write
    assert parse_message(protocol.sync_step2(b"\x00\x00")).is_write
    assert not parse_message(protocol.sync_step1(b"\x00")).is_write
    assert parse_message(protocol.awareness(b"\x00")).type is MessageType.AWARENESS
    assert parse_message(protocol.query_awareness()).type is MessageType.QUERY_AWARENESS


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00",  # sync without step
        b"\x00\x03\x00",  # unknown sync step
        b"\x00\x02\x05ab",  # payload shorter than declared
        b"\x00\x02\x00\x00",  # trailing byte
        b"\x02\x00\x00",  # auth travels server to client only
        b"\x07",  # unknown type
        b"\x64\x01",  # the saved extension, server to client only
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varuint beyond 53 bits
        b"\x80",  # truncated varuint
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_message(frame)


def test_server_messages_have_the_documented_layout() -> None:
    assert protocol.permission_denied("read-only") == b"\x02\x00\x09read-only"
    assert protocol.saved(300) == b"\x64\xac\x02"
    assert protocol.title("Plan") == b"\x65\x04Plan"
    assert protocol.query_awareness() == b"\x03"


def test_protocol_imports_without_django() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, collab.protocol, yjs.updates, yjs.awareness, collab.sequences; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
