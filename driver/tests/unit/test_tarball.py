"""A tenant's tarball loses its own tags; the image id comes from its manifest."""

import hashlib
import io
import json
import tarfile

import pytest

from novadock_driver import tarball

CONFIG = 'a' * 64


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _docker_save(manifest=None, oci=True):
    if manifest is None:
        manifest = [{'Config': 'blobs/sha256/' + CONFIG,
                     'RepoTags': ['library/nginx:latest', 'victim:1'],
                     'Layers': ['blobs/sha256/' + 'b' * 64]}]
    members = [('blobs/sha256/' + CONFIG, b'{}'), ('blobs/sha256/' + 'b' * 64, b'layer'),
               ('manifest.json', json.dumps(manifest).encode()),
               ('repositories', b'{"victim": {"1": "x"}}')]
    if oci:
        members.append(('index.json', json.dumps({'manifests': [{
            'digest': 'sha256:' + 'c' * 64,
            'annotations': {'io.containerd.image.name': 'docker.io/library/victim:1',
                            'org.opencontainers.image.ref.name': '1', 'keep': 'me'}}]}).encode()))
    return _tar(members)


def _rewrite(data):
    out = io.BytesIO()
    image_id = tarball.strip_tags(io.BytesIO(data), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile()}
    return image_id, files


def test_tags_are_stripped_everywhere():
    image_id, files = _rewrite(_docker_save())
    assert image_id == 'sha256:' + CONFIG
    assert 'repositories' not in files
    assert json.loads(files['manifest.json'])[0]['RepoTags'] is None
    ann = json.loads(files['index.json'])['manifests'][0]['annotations']
    assert ann == {'keep': 'me'}
    assert files['blobs/sha256/' + 'b' * 64] == b'layer'


def test_legacy_config_name():
    m = [{'Config': CONFIG + '.json', 'RepoTags': ['x:1'], 'Layers': []}]
    assert _rewrite(_docker_save(m, oci=False))[0] == 'sha256:' + CONFIG


@pytest.mark.parametrize('manifest,match', [
    ([], 'exactly one image'),
    ([{'Config': 'a.json'}, {'Config': 'b.json'}], 'exactly one image'),
    ([{'Config': '../../etc/passwd'}], 'not a sha256 digest'),
    ([{'RepoTags': ['x']}], 'no Config'),
])
def test_bad_manifests(manifest, match):
    with pytest.raises(tarball.TarballError, match=match):
        _rewrite(_docker_save(manifest, oci=False))


def test_no_manifest():
    with pytest.raises(tarball.TarballError, match='no manifest.json'):
        _rewrite(_tar([('index.json', b'{}')]))


def test_hashing_writer_hashes_and_passes_on_everything_written():
    data = _docker_save() + b'\0' * 4096
    out = io.BytesIO()
    w = tarball.HashingWriter(out, 'sha512')
    for i in range(0, len(data), 1000):
        w.write(data[i:i + 1000])
    assert w.hash.hexdigest() == hashlib.sha512(data).hexdigest()
    assert w.size == len(data) and out.getvalue() == data
    out.seek(0)
    tarball.strip_tags(out, io.BytesIO())


def test_hashing_writer_refuses_an_unknown_algorithm():
    with pytest.raises(tarball.TarballError, match='unknown hash algorithm'):
        tarball.HashingWriter(io.BytesIO(), 'md42')
