import json

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from mdp_wds.protocol import (
    MAX_FIELD_NAME,
    MAX_FIELDS,
    BadRequest,
    ErrorCode,
    Frame,
    Request,
    decode_request,
    encode_message,
    list_snapshot_data,
    snapshot_frame,
    update_frame,
)


def test_decodes_each_op() -> None:
    assert decode_request('{"op":"auth","token":"t"}') == Request(op="auth", token="t")
    assert decode_request(b'{"op":"auth","key":"k","id":1}') == Request(op="auth", id=1, key="k")
    assert decode_request('{"op":"subscribe","id":2,"feeds":["a","b","a"],"limit":5}') == Request(
        op="subscribe", id=2, feeds=("a", "b"), limit=5
    )
    assert decode_request('{"op":"unsubscribe","feeds":["a"],"snapshot":false}').snapshot is False
    assert decode_request('{"op":"get","id":3,"feed":"x"}') == Request(op="get", id=3, feed="x")
    assert decode_request('{"op":"ping"}') == Request(op="ping")


@pytest.mark.parametrize(
    ("raw", "request_id"),
    [
        ("not json", None),
        ("[1]", None),
        ('{"id": 1}', 1),
        ('{"op": "dance", "id": 2}', 2),
        ('{"op": "ping", "id": "x"}', None),
        ('{"op": "ping", "id": true}', None),
        ('{"op": "auth", "id": 3}', 3),
        ('{"op": "auth", "token": 5}', None),
        ('{"op": "subscribe", "feeds": []}', None),
        ('{"op": "subscribe", "feeds": "quote:*"}', None),
        ('{"op": "subscribe", "feeds": [1]}', None),
        ('{"op": "subscribe", "feeds": ["a"], "snapshot": 1}', None),
        ('{"op": "subscribe", "feeds": ["a"], "limit": 0}', None),
        ('{"op": "get", "id": 4}', 4),
    ],
)
def test_bad_requests(raw: str, request_id: int | None) -> None:
    with pytest.raises(BadRequest) as bad:
        decode_request(raw)
    assert bad.value.request_id == request_id


def test_too_many_feeds_in_one_request() -> None:
    feeds = json.dumps([f"quote:S{i}" for i in range(1001)])
    with pytest.raises(BadRequest, match="at most"):
        decode_request(f'{{"op":"subscribe","feeds":{feeds}}}')


def test_frames_embed_the_payload_bytes_verbatim() -> None:
    frame = update_frame('quote:"odd', b'{"p": 1.50}', 12.0)
    assert frame.data == b'{"op":"update","feed":"quote:\\"odd","data":{"p": 1.50}}'
    assert json.loads(frame.data)["feed"] == 'quote:"odd'
    assert frame.as_of_ms == 12.0
    snap = snapshot_frame("news:latest", list_snapshot_data([b"{}", b"[1]"]), 9)
    assert json.loads(snap.data) == {
        "op": "snapshot",
        "id": 9,
        "feed": "news:latest",
        "data": [{}, [1]],
    }
    assert json.loads(snapshot_frame("x", b"null").data) == {
        "op": "snapshot",
        "feed": "x",
        "data": None,
    }


def test_control_messages() -> None:
    assert json.loads(encode_message("pong", 4)) == {"op": "pong", "id": 4}
    assert json.loads(encode_message("pong")) == {"op": "pong"}
    error = json.loads(encode_message("error", None, code="bad_request", message="m"))
    assert error == {"op": "error", "id": None, "code": "bad_request", "message": "m"}


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_prebuilt_wire_frame_matches_the_websockets_serializer(size: int) -> None:
    data = b"x" * size
    assert Frame(data).wire == WsFrame(Opcode.TEXT, data).serialize(mask=False)
    update = update_frame("f", data)
    assert update.wire == WsFrame(Opcode.TEXT, update.data).serialize(mask=False)


def test_nested_json_is_a_too_deep_bad_request() -> None:
    with pytest.raises(BadRequest) as caught:
        decode_request(b"[" * 5000 + b"]" * 5000)
    assert caught.value.kind == "too_deep"
    with pytest.raises(BadRequest) as plain:
        decode_request(b"{not json")
    assert plain.value.kind == "bad_request"


def test_fields_decode_as_a_set_for_subscribe_and_get_only() -> None:
    subscribe = decode_request(
        '{"op":"subscribe","feeds":["b"],"fields":["price","end_ms","price"]}'
    )
    assert subscribe.fields == frozenset({"price", "end_ms"})
    assert decode_request('{"op":"subscribe","feeds":["b"]}').fields is None
    assert decode_request('{"op":"subscribe","feeds":["b"],"fields":null}').fields is None
    assert decode_request('{"op":"subscribe","feeds":["b"],"fields":[]}').fields == frozenset()
    get = decode_request('{"op":"get","feed":"b","fields":["price"]}')
    assert get == Request(op="get", feed="b", fields=frozenset({"price"}))
    # unsubscribe ignores it (whatever it is), like the other subscription options
    assert decode_request('{"op":"unsubscribe","feeds":["b"],"fields":7}').fields is None


def test_the_fields_limits_are_exact() -> None:
    assert MAX_FIELDS == 64
    assert MAX_FIELD_NAME == 64
    most = [f"f{i}" for i in range(MAX_FIELDS)]
    message = {"op": "subscribe", "feeds": ["b"], "fields": most}
    assert decode_request(json.dumps(message)).fields == frozenset(most)
    longest = {"op": "get", "feed": "b", "fields": ["x" * MAX_FIELD_NAME]}
    assert decode_request(json.dumps(longest)).fields == frozenset({"x" * MAX_FIELD_NAME})
    assert decode_request(json.dumps(dict(longest, fields=["x"]))).fields == frozenset({"x"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("price", "'fields' must be a list of row field names"),
        ({"price": 1}, "'fields' must be a list of row field names"),
        ([f"f{i}" for i in range(MAX_FIELDS + 1)], "at most 64 names in 'fields'"),
        ([1], "'fields' names are strings of 1 to 64 characters"),
        ([""], "'fields' names are strings of 1 to 64 characters"),
        (["price", None], "'fields' names are strings of 1 to 64 characters"),
        (["x" * (MAX_FIELD_NAME + 1)], "'fields' names are strings of 1 to 64 characters"),
    ],
)
@pytest.mark.parametrize("op", ["subscribe", "get"])
def test_bad_fields_are_a_bad_fields_error_with_the_request_id(
    fields: object, message: str, op: str
) -> None:
    raw = {"op": op, "id": 7, "feeds": ["b"], "feed": "b", "fields": fields}
    with pytest.raises(BadRequest) as bad:
        decode_request(json.dumps(raw))
    assert bad.value.message == message
    assert bad.value.request_id == 7
    assert bad.value.kind == "bad_fields"
    assert bad.value.code is ErrorCode.BAD_FIELDS


def test_other_bad_requests_are_bad_request_errors() -> None:
    with pytest.raises(BadRequest) as bad:
        decode_request("not json")
    assert bad.value.kind == "bad_request"
    assert bad.value.code is ErrorCode.BAD_REQUEST
