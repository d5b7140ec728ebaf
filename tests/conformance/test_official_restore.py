"""kretain's restore calls read back with Kaltura's own client (KalturaApiClient).

An upload that the official client starts and kretain's client finishes (and the other way
round) is one file: our multipart wire (parameters in the ``json`` field, ``fileData``,
resumeAt) means what the official client's does. The entry our client adds is what the
official client reads.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

pytest.importorskip("lxml")
pytest.importorskip("KalturaClient")

from KalturaClient import KalturaClient as OfficialClient
from KalturaClient import KalturaConfiguration
from KalturaClient.Plugins.Core import (
    KalturaFlavorAssetFilter,
    KalturaSessionType,
    KalturaUploadTokenStatus,
)

from kretain.kaltura.client import ClientConfig, KalturaClient
from kretain.kaltura.transport import FilePart
from kretain.simulator.content import content_bytes
from kretain.simulator.partner import PartnerSpec
from kretain.simulator.testing import run_simulator

SPEC = PartnerSpec(entries=50, seed=33)
DATA = content_bytes(7, 0, 2_500_000 + 17)
CUT = 1_000_000


def official(sim) -> OfficialClient:
    client = OfficialClient(KalturaConfiguration(serviceUrl=sim.url))
    spec = sim.partner.spec
    client.setKs(
        client.session.start(
            spec.admin_secret, "", KalturaSessionType.ADMIN, spec.partner_id, 3600, ""
        )
    )
    return client


def ours(sim) -> KalturaClient:
    spec = sim.partner.spec
    return KalturaClient(
        ClientConfig(
            service_url=sim.url, partner_id=spec.partner_id, admin_secret=spec.admin_secret
        )
    )


def test_an_upload_half_by_each_client_is_one_file(tmp_path: Path) -> None:
    path = tmp_path / "lecture.mp4"
    path.write_bytes(DATA)
    first = tmp_path / "first.mp4"
    first.write_bytes(DATA[:CUT])
    with run_simulator(SPEC) as sim:
        theirs = official(sim)

        async def go() -> str:
            async with ours(sim) as client:
                token = (await client.add_upload_token("lecture.mp4", len(DATA)))["id"]
                # The official client sends the first chunk...
                with open(first, "rb") as fh:
                    theirs.uploadToken.upload(token, fh, False, False, 0)
                # ...kretain's the rest, in two chunks.
                for offset, length in ((CUT, 900_000), (CUT + 900_000, len(DATA) - CUT - 900_000)):
                    part = FilePart(path, filename="lecture.mp4", offset=offset, length=length)
                    final = offset + length == len(DATA)
                    await client.upload_to_token(
                        token, part, resume=True, resume_at=offset, final_chunk=final
                    )
                    assert part.sha256 == hashlib.sha256(DATA[offset : offset + length]).hexdigest()
                return token

        token = asyncio.run(go())
        state = theirs.uploadToken.get(token)
        assert int(state.status.getValue()) == int(KalturaUploadTokenStatus.FULL_UPLOAD)
        assert state.uploadedFileSize == len(DATA)
        with open(sim.partner.upload_token_file(token), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_the_entry_our_client_adds_is_what_the_official_client_reads(tmp_path: Path) -> None:
    path = tmp_path / "lecture.mp4"
    path.write_bytes(DATA)
    with run_simulator(SPEC) as sim:

        async def go() -> str:
            async with ours(sim) as client:
                token = (await client.add_upload_token("lecture.mp4", len(DATA)))["id"]
                part = FilePart(path, filename="lecture.mp4", length=len(DATA))
                await client.upload_to_token(token, part, resume=False, resume_at=0,
                                             final_chunk=True)  # fmt: skip
                entry = await client.add_media_entry(
                    {"name": "Biologie — Woche 1", "mediaType": 1, "tags": "bio,kretain-restored",
                     "userId": "alice", "referenceId": "kretain-restore-0_orig0001"}
                )  # fmt: skip
                await client.add_media_content(entry["id"], token)
                found = await client.find_entries_by_reference("kretain-restore-0_orig0001")
                assert [e["id"] for e in found] == [entry["id"]]
                return str(entry["id"])

        entry_id = asyncio.run(go())
        theirs = official(sim)
        got = theirs.media.get(entry_id)
        assert got.name == "Biologie — Woche 1" and got.referenceId == "kretain-restore-0_orig0001"
        assert got.userId == "alice" and got.tags == "bio,kretain-restored"
        listed = theirs.flavorAsset.list(KalturaFlavorAssetFilter(entryIdEqual=entry_id))
        [flavor] = listed.objects
        assert flavor.isOriginal and flavor.sizeInBytes == len(DATA)
