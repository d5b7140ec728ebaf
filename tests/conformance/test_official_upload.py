"""The official KalturaApiClient's upload and restore path against the simulator.

Kaltura's own client sends files as multipart with one ``json`` field, file parts
named ``fileData`` (``"{i}:fileData"`` in a multirequest), booleans as "True"/"False",
and parses our XML answers. If it round-trips bytes, our upload wire is the real one.
"""

from __future__ import annotations

import hashlib
import itertools
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("lxml")
pytest.importorskip("KalturaClient")

from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.exceptions import KalturaException
from KalturaClient.Plugins.Caption import KalturaCaptionAsset, KalturaCaptionType
from KalturaClient.Plugins.Core import (
    KalturaEntryStatus,
    KalturaFlavorAssetFilter,
    KalturaLanguage,
    KalturaMediaEntry,
    KalturaMediaType,
    KalturaNullableBoolean,
    KalturaSessionType,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
    KalturaUploadTokenStatus,
)

from kretain.simulator.content import content_bytes
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=200, seed=31, recycle_bin=True)
DATA = content_bytes(41, 0, 3 * 1024 * 1024 + 123)
VTT = b"WEBVTT\n\n00:00.000 --> 00:02.000\nHello from the archive\n"


@pytest.fixture
def sim():
    with run_simulator(SPEC) as running:
        yield running


def _client(sim) -> KalturaClient:
    client = KalturaClient(KalturaConfiguration(serviceUrl=sim.url))
    spec = sim.partner.spec
    ks = client.session.start(
        spec.admin_secret, "", KalturaSessionType.ADMIN, spec.partner_id, 3600, ""
    )
    client.setKs(ks)
    return client


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _status(value) -> int:
    return int(value.getValue() if hasattr(value, "getValue") else value)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:  # loopback only
        return r.read()


def test_upload_add_content_caption_recycle_convert_download(sim, tmp_path: Path) -> None:
    client = _client(sim)
    source_file = _write(tmp_path, "lecture.mp4", DATA)
    token = client.uploadToken.add(KalturaUploadToken(fileName="lecture.mp4", fileSize=len(DATA)))
    assert _status(token.status) == int(KalturaUploadTokenStatus.PENDING)
    with open(source_file, "rb") as f:
        uploaded = client.uploadToken.upload(token.id, f)
    assert _status(uploaded.status) == int(KalturaUploadTokenStatus.FULL_UPLOAD)
    assert uploaded.uploadedFileSize == len(DATA)

    entry = KalturaMediaEntry()
    entry.name = "Restored: Biology 101"
    entry.mediaType = KalturaMediaType.VIDEO
    entry.referenceId = "0_original"
    entry.tags = "restored"
    added = client.media.add(entry)
    assert _status(added.status) == int(KalturaEntryStatus.NO_CONTENT)
    assert added.referenceId == "0_original"

    resource = KalturaUploadedFileTokenResource(token=token.id)
    ready = client.media.addContent(added.id, resource)
    assert _status(ready.status) == int(KalturaEntryStatus.READY)

    caption_file = _write(tmp_path, "captions.vtt", VTT)
    caption_token = client.uploadToken.add(KalturaUploadToken())
    with open(caption_file, "rb") as f:
        client.uploadToken.upload(caption_token.id, f)
    caption = KalturaCaptionAsset(
        language=KalturaLanguage.EN,
        label="English",
        format=KalturaCaptionType.WEBVTT,
        isDefault=KalturaNullableBoolean.TRUE_VALUE,
    )
    caption = client.caption.captionAsset.add(added.id, caption)
    caption = client.caption.captionAsset.setContent(
        caption.id, KalturaUploadedFileTokenResource(token=caption_token.id)
    )
    assert caption.fileExt == "vtt" and caption.label == "English"
    assert _get(client.caption.captionAsset.getUrl(caption.id)) == VTT

    recycled = client.baseEntry.recycle(added.id)
    assert recycled.displayInSearch.getValue() == -2
    restored = client.baseEntry.restoreRecycled(added.id)
    assert restored.displayInSearch.getValue() == 1
    with pytest.raises(KalturaException) as err:
        client.baseEntry.restoreRecycled(added.id)
    assert err.value.code == "INVALID_ENTRY_STATUS_FOR_RESTORE"

    assert client.flavorAsset.convert(added.id, 487041) is None
    flt = KalturaFlavorAssetFilter()
    flt.entryIdEqual = added.id
    flavors = client.flavorAsset.list(flt).objects
    assert sorted(f.flavorParamsId for f in flavors) == [0, 487041]
    source = next(f for f in flavors if f.isOriginal)
    assert source.sizeInBytes == len(DATA) and "source" in source.tags
    assert _sha(_get(client.flavorAsset.getUrl(source.id))) == _sha(DATA)
    # Ground truth: the mutation log saw each step once, all answered.
    steps = [(m["service"], m["action"], m["outcome"]) for m in sim.mutations]
    assert ("media", "addcontent", "ok") in steps and ("flavorasset", "convert", "ok") in steps
    assert not any(m["answer_lost"] for m in sim.mutations)


def test_chunked_upload_with_resume_at(sim, tmp_path: Path) -> None:
    client = _client(sim)
    cuts = [0, 700_000, 1_500_000, 2_600_000, len(DATA)]
    chunks = [
        _write(tmp_path, f"part{i}.mp4", DATA[a:b])
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    token = client.uploadToken.add(KalturaUploadToken(fileName="lecture.mp4"))
    with open(chunks[0], "rb") as f:  # the first chunk starts the file (resume=false)
        first = client.uploadToken.upload(token.id, f, False, False, 0)
    assert _status(first.status) == int(KalturaUploadTokenStatus.PARTIAL_UPLOAD)
    # Out of order: the third chunk waits until the second arrives.
    with open(chunks[2], "rb") as f:
        waiting = client.uploadToken.upload(token.id, f, True, False, cuts[2])
    assert waiting.uploadedFileSize == cuts[1]
    with open(chunks[1], "rb") as f:
        client.uploadToken.upload(token.id, f, True, False, cuts[1])
    with open(chunks[3], "rb") as f:
        last = client.uploadToken.upload(token.id, f, True, True, cuts[3])
    assert _status(last.status) == int(KalturaUploadTokenStatus.FULL_UPLOAD)
    assert last.uploadedFileSize == len(DATA)
    with open(sim.partner.upload_token_file(token.id), "rb") as f:
        assert _sha(f.read()) == _sha(DATA)


def test_uploads_inside_a_multirequest(sim, tmp_path: Path) -> None:
    client = _client(sim)
    one = _write(tmp_path, "a.mp4", DATA[:1000])
    two = _write(tmp_path, "b.mp4", DATA[1000:5000])
    token = client.uploadToken.add(KalturaUploadToken())
    with open(one, "rb") as f1, open(two, "rb") as f2:
        client.startMultiRequest()
        client.uploadToken.upload(token.id, f1, False, False, 0)
        client.uploadToken.upload(token.id, f2, True, True, 1000)
        first, second = client.doMultiRequest()
    assert _status(first.status) == int(KalturaUploadTokenStatus.PARTIAL_UPLOAD)
    assert _status(second.status) == int(KalturaUploadTokenStatus.FULL_UPLOAD)
    assert second.uploadedFileSize == 5000


def test_file_without_a_name_is_no_upload(sim) -> None:
    # The official client sends a nameless file object as a plain field; PHP then has no
    # $_FILES entry and the json field wins: the file parameter is missing.
    import io

    client = _client(sim)
    token = client.uploadToken.add(KalturaUploadToken())
    with pytest.raises(KalturaException) as err:
        client.uploadToken.upload(token.id, io.BytesIO(b"abc"))
    assert err.value.code == "MISSING_MANDATORY_PARAMETER"
