"""A `docker save` tarball made tag-free, in one streaming pass.

A tenant controls the tarball: its own tags (manifest.json RepoTags, the legacy
`repositories` file, OCI index.json ref-name annotations) could name any image on the
host, so they are dropped and the image is tagged by its Glance id instead. Nothing is
extracted to disk; members are copied from one tar stream to another.
"""

import hashlib
import io
import json
import tarfile

REF_ANNOTATIONS = ('org.opencontainers.image.ref.name', 'io.containerd.image.name')


class TarballError(Exception):
    pass


class HashingWriter:
    """A file-like sink that hashes what is written to it and passes it on to `f`.

    Nova's Glance API writes an image to a file object it is given (`download(...,
    data=f)`); the iterator it returns without one may come back empty once its
    one-time client is gone, so the driver always gives it a file."""

    def __init__(self, f, algo):
        try:
            self.hash = hashlib.new(algo)
        except ValueError as e:
            raise TarballError('unknown hash algorithm %r' % algo) from e
        self._f = f
        self.size = 0

    def write(self, chunk):
        self.hash.update(chunk)
        self.size += len(chunk)
        return self._f.write(chunk)

    def truncate(self, size=None):
        return self._f.truncate(size)


def _rewrite_manifest(data):
    try:
        manifest = json.loads(data)
    except ValueError as e:
        raise TarballError('manifest.json is not JSON: %s' % e) from e
    if not isinstance(manifest, list) or len(manifest) != 1:
        raise TarballError('manifest.json must describe exactly one image, found %s'
                           % (len(manifest) if isinstance(manifest, list) else 'no list'))
    entry = manifest[0]
    config = entry.get('Config') if isinstance(entry, dict) else None
    if not isinstance(config, str) or not config:
        raise TarballError('manifest.json has no Config')
    entry['RepoTags'] = None
    return json.dumps(manifest).encode(), config_digest(config)


def config_digest(config):
    """The image id from manifest.json's Config: `<hex>.json` or `blobs/sha256/<hex>`."""
    name = config.rsplit('/', 1)[-1]
    if name.endswith('.json'):
        name = name[:-5]
    if len(name) != 64 or any(c not in '0123456789abcdef' for c in name):
        raise TarballError('manifest.json Config %r is not a sha256 digest' % config)
    return 'sha256:' + name


def _rewrite_index(data):
    try:
        index = json.loads(data)
    except ValueError as e:
        raise TarballError('index.json is not JSON: %s' % e) from e
    for m in index.get('manifests') or []:
        ann = m.get('annotations')
        if isinstance(ann, dict):
            for k in REF_ANNOTATIONS:
                ann.pop(k, None)
    return json.dumps(index).encode()


def strip_tags(src, dst):
    """Copies the tar stream `src` to `dst` without its tags; returns the image id.

    Fails on anything but one image with a manifest.json (docker save's format, also
    written alongside the OCI layout by Docker 25 and later)."""
    image_id = None
    with tarfile.open(fileobj=src, mode='r|*') as tin, \
            tarfile.open(fileobj=dst, mode='w|', format=tarfile.PAX_FORMAT) as tout:
        for info in tin:
            name = info.name[2:] if info.name.startswith('./') else info.name
            if name == 'repositories':
                continue
            if name in ('manifest.json', 'index.json') and info.isfile():
                data = tin.extractfile(info).read()
                if name == 'manifest.json':
                    data, image_id = _rewrite_manifest(data)
                else:
                    data = _rewrite_index(data)
                new = tarfile.TarInfo(info.name)
                new.size = len(data)
                new.mode = info.mode
                new.mtime = info.mtime
                tout.addfile(new, io.BytesIO(data))
            elif info.isfile():
                tout.addfile(info, tin.extractfile(info))
            else:
                tout.addfile(info)
    if image_id is None:
        raise TarballError('not a docker image archive: no manifest.json')
    return image_id
