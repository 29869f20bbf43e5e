"""Parsing dockerd's answers."""

import struct

from novadock_driver import docker_api


def test_load_answer():
    raw = (b'{"stream":"Loaded image ID: sha256:' + b'a' * 64 + b'\\n"}\r\n'
           b'{"stream":"Loaded image: x:1\\n"}\r\n')
    assert docker_api.loaded_image_ids(raw) == ['sha256:' + 'a' * 64]
    assert docker_api.stream_errors(raw) == []
    bad = b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}\r\n'
    assert docker_api.stream_errors(bad) == ['unexpected EOF']


def test_log_frames_are_removed():
    frame = lambda k, b: bytes([k, 0, 0, 0]) + struct.pack('>I', len(b)) + b  # noqa: E731
    assert docker_api.demux_logs(frame(1, b'out\n') + frame(2, b'err\n')) == b'out\nerr\n'
    assert docker_api.demux_logs(b'tty output without frames\n') == b'tty output without frames\n'
