"""media.add / addContent, asset add + setContent + setAsDefault, flavorAsset.convert."""

from __future__ import annotations

import hashlib
import os

import pytest
from simapi import Api, user_ks

from kretain.simulator import generator, ids
from kretain.simulator.content import content_bytes
from kretain.simulator.ingest import ENTRY_READONLY
from kretain.simulator.partner import Partner, PartnerSpec

DATA = content_bytes(9, 0, 200_000)
VTT = "WEBVTT\n\n00:00.000 --> 00:02.000\nHello\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- media.add ---------------------------------------------------------------------------------


async def test_media_add_fields_and_defaults(api: Api, simulator) -> None:
    simulator.knobs.now = generator.YEAR * 56  # a fixed "now" stamps createdAt
    entry = await api.new_entry(
        name="Restored lecture",
        description="from the archive",
        tags="lecture,restored",
        categories="MediaSpace>site>channels>Biology",
        userId="anna@univ.example.edu",
        referenceId="0_original1",
        partnerData="kretain:run-7",
        msDuration="61500",
    )
    assert entry["status"] == 7 and entry["type"] == 1 and entry["mediaType"] == 1
    assert entry["createdAt"] == entry["updatedAt"] == generator.YEAR * 56
    assert entry["name"] == "Restored lecture" and entry["description"] == "from the archive"
    assert entry["userId"] == entry["creatorId"] == "anna@univ.example.edu"
    assert entry["categories"] == "MediaSpace>site>channels>Biology"
    assert entry["categoriesIds"] == "1000"
    assert entry["referenceId"] == "0_original1" and entry["partnerData"] == "kretain:run-7"
    assert entry["duration"] == 62 and entry["msDuration"] == 61500
    assert entry["rootEntryId"] == entry["id"] and entry["displayInSearch"] == 1
    assert "lastPlayedAt" not in entry and entry["plays"] == 0
    # It lives beside the generated entries: gettable, listable (also by referenceId).
    assert await api("baseEntry", "get", entryId=entry["id"]) == entry
    found = await api(
        "baseEntry", "list", filter={"referenceIdEqual": "0_original1", "statusIn": "7"}
    )
    assert [o["id"] for o in found["objects"]] == [entry["id"]]
    found = await api(
        "media", "list", filter={"referenceIdIn": "x1,0_original1", "statusIn": "7,2"}
    )
    assert [o["id"] for o in found["objects"]] == [entry["id"]]
    assert simulator.partner.added_entries() == [entry["id"]]
    # Default name: "<partnerId>_<now>"; default owner: the session's user.
    plain = await api.new_entry()
    assert plain["name"] == f"{simulator.partner.spec.partner_id}_{generator.YEAR * 56}"
    assert (
        plain["userId"] == "" and ids.entry_index(plain["id"]) == ids.entry_index(entry["id"]) + 1
    )


@pytest.mark.parametrize("field", ["createdAt", "plays", "lastPlayedAt", "status", "id", "views"])
async def test_media_add_rejects_read_only_fields(api: Api, field: str) -> None:
    assert field in ENTRY_READONLY
    code = await api.error(
        "media", "add", entry={"objectType": "KalturaMediaEntry", "mediaType": "1", field: "5"}
    )
    assert code == "PROPERTY_VALIDATION_NOT_UPDATABLE"


async def test_media_add_validation(api: Api, simulator, http) -> None:
    base = {"objectType": "KalturaMediaEntry"}
    assert await api.error("media", "add") == "MISSING_MANDATORY_PARAMETER"
    assert await api.error("media", "add", entry=base) == "PROPERTY_VALIDATION_CANNOT_BE_NULL"
    bad_type = {**base, "mediaType": "9"}
    assert await api.error("media", "add", entry=bad_type) == "INVALID_ENUM_VALUE"
    media = {**base, "mediaType": "5"}
    code = await api.error("media", "add", entry={**media, "categoriesIds": "999999"})
    assert code == "CATEGORY_NOT_FOUND"
    code = await api.error("media", "add", entry={**media, "referenceId": "x"})
    assert code == "PROPERTY_VALIDATION_MIN_LENGTH"
    code = await api.error("media", "add", entry={**media, "displayInSearch": "2"})
    assert code == "ENTRY_DISPLAY_IN_SEARCH_VALUE_NOT_ALLOWED"
    child = {**media, "parentEntryId": "0_whatever", "categories": "MediaSpace>site>galleries>Law"}
    code = await api.error("media", "add", entry=child)
    assert code == "ASSIGNING_INFO_TO_ENTRY_WITH_PARENT_IS_FORBIDDEN"
    # A user session may not create entries for someone else.
    user = Api(http, simulator, user_ks(simulator, "ben@univ.example.edu"))
    code = await user.error("media", "add", entry={**media, "userId": "anna@univ.example.edu"})
    assert code == "INVALID_KS"
    own = await user.new_entry()
    assert own["userId"] == "ben@univ.example.edu"


async def test_media_add_child_entries(api: Api) -> None:
    parent = await api.new_entry(name="dual screen")
    # The server does not check parentEntryId on insert; a child is SYSTEM (-1) by choice.
    child = await api.new_entry(parentEntryId=parent["id"], displayInSearch="-1")
    assert child["parentEntryId"] == parent["id"] and child["displayInSearch"] == -1
    kids = await api(
        "baseEntry", "list", filter={"parentEntryIdEqual": parent["id"], "statusIn": "7"}
    )
    assert [o["id"] for o in kids["objects"]] == [child["id"]]
    hidden = await api("baseEntry", "list", filter={"idEqual": child["id"], "statusIn": "7"})
    assert [o["id"] for o in hidden["objects"]] == [child["id"]]
    default = await api(
        "baseEntry",
        "list",
        filter={"statusIn": "7", "createdAtGreaterThanOrEqual": str(child["createdAt"])},
    )
    assert child["id"] not in [o["id"] for o in default["objects"]]  # SYSTEM is hidden
    # Deleting the parent deletes the child (entry::postUpdate cascade).
    assert await api("baseEntry", "delete", entryId=parent["id"]) is None
    assert await api.error("baseEntry", "get", entryId=child["id"]) == "ENTRY_ID_NOT_FOUND"


# ---- media.addContent --------------------------------------------------------------------------


async def test_add_content_from_a_full_token(api: Api, simulator) -> None:
    entry = await api.new_entry(name="with content")
    token = await api.uploaded_token(DATA, filename="Lecture.MOV")
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
    ready = await api("media", "addContent", entryId=entry["id"], resource=resource)
    assert ready["status"] == 2 and ready["id"] == entry["id"]
    flavors = await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]})
    (source,) = flavors["objects"]
    assert source["isOriginal"] is True and source["flavorParamsId"] == 0
    assert source["tags"] == "source" and source["status"] == 2 and source["fileExt"] == "mov"
    assert source["sizeInBytes"] == len(DATA) and source["size"] == 196
    url = await api("flavorAsset", "getUrl", id=source["id"])
    assert sha(await api.download(url)) == sha(DATA)
    assert simulator.partner.read_content(source["id"]) == DATA
    # The token is used up (CLOSED); the entry has content now.
    assert (await api("uploadToken", "get", uploadTokenId=token))["status"] == 3
    again = await api.error("media", "addContent", entryId=entry["id"], resource=resource)
    assert again == "ENTRY_ALREADY_WITH_CONTENT"
    # A Range request on uploaded content.
    async with api.http.get(url, headers={"Range": "bytes=1000-1999"}) as r:
        assert r.status == 206 and await r.read() == DATA[1000:2000]


async def test_add_content_before_the_upload_finishes(api: Api) -> None:
    entry = await api.new_entry()
    token = (await api.new_token())["id"]
    await api.upload(token, DATA[:50_000], final=False)
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
    importing = await api("media", "addContent", entryId=entry["id"], resource=resource)
    assert importing["status"] == 0  # IMPORT
    (source,) = (await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"]
    assert source["status"] == 7 and "sizeInBytes" not in source
    assert await api.error("flavorAsset", "getUrl", id=source["id"]) == "FLAVOR_ASSET_IS_NOT_READY"
    attached = await api("uploadToken", "get", uploadTokenId=token)
    assert attached["attachedObjectType"] == "flavorAsset"
    assert attached["attachedObjectId"] == source["id"]
    # The last chunk completes the flavor and the entry.
    await api.upload(token, DATA[50_000:], resume=True, final=True, resume_at=50_000)
    assert (await api("baseEntry", "get", entryId=entry["id"]))["status"] == 2
    done = await api("flavorAsset", "get", id=source["id"])
    assert done["status"] == 2 and done["sizeInBytes"] == len(DATA)
    url = await api("flavorAsset", "getUrl", id=source["id"])
    assert await api.download(url) == DATA
    assert (await api("uploadToken", "get", uploadTokenId=token))["status"] == 3


async def test_add_content_errors(api: Api, simulator) -> None:
    entry = await api.new_entry()
    token = {"objectType": "KalturaUploadedFileTokenResource", "token": "0_nosuch"}
    assert await api.error("media", "addContent", entryId=entry["id"], resource=token) == (
        "UPLOAD_TOKEN_NOT_FOUND"
    )
    empty = {"objectType": "KalturaUploadedFileTokenResource"}
    assert await api.error("media", "addContent", entryId=entry["id"], resource=empty) == (
        "PROPERTY_VALIDATION_CANNOT_BE_NULL"
    )
    url = {"objectType": "KalturaUrlResource", "url": "https://example.edu/a.mp4"}
    assert await api.error("media", "addContent", entryId=entry["id"], resource=url) == (
        "RESOURCE_TYPE_NOT_SUPPORTED"
    )
    # No resource: nothing happens.
    assert (await api("media", "addContent", entryId=entry["id"]))["status"] == 7
    # Only media clips in NO_CONTENT.
    ready = simulator.partner.sql("SELECT id FROM entries WHERE type = '1' AND status = 2")[0][0]
    real = {
        "objectType": "KalturaUploadedFileTokenResource",
        "token": await api.uploaded_token(DATA),
    }
    assert await api.error("media", "addContent", entryId=ready, resource=real) == (
        "ENTRY_ALREADY_WITH_CONTENT"
    )
    playlist = simulator.partner.sql("SELECT id FROM entries WHERE type = '5'")[0][0]
    assert await api.error("media", "addContent", entryId=playlist, resource=real) == (
        "ENTRY_ID_NOT_FOUND"
    )


# ---- captions, attachments, thumbnails ------------------------------------------------------


async def test_caption_add_and_set_content(api: Api, simulator) -> None:
    entry = await api.new_entry()
    caption = await api(
        "caption_captionAsset",
        "add",
        entryId=entry["id"],
        captionAsset={
            "objectType": "KalturaCaptionAsset",
            "language": "Spanish",
            "label": "Español",
            "format": "3",
            "isDefault": "true",
        },
    )
    assert caption["status"] == 0 and caption["objectType"] == "KalturaCaptionAsset"
    assert (caption["language"], caption["languageCode"], caption["label"]) == (
        "Spanish",
        "es",
        "Español",
    )
    assert caption["format"] == "3" and caption["isDefault"] is True
    code = await api.error("caption_captionAsset", "getUrl", id=caption["id"])
    assert code == "CAPTION_ASSET_IS_NOT_READY"
    token = await api.uploaded_token(VTT.encode(), filename="subs")
    done = await api(
        "caption_captionAsset",
        "setContent",
        id=caption["id"],
        contentResource={"objectType": "KalturaUploadedFileTokenResource", "token": token},
    )
    assert done["status"] == 2 and done["fileExt"] == "vtt"  # from the format: no extension
    assert done["sizeInBytes"] == len(VTT.encode()) and done["version"] == 1
    assert (done["language"], done["label"], done["isDefault"]) == ("Spanish", "Español", True)
    url = await api("caption_captionAsset", "getUrl", id=caption["id"])
    assert await api.download(url) == VTT.encode()
    listed = await api("caption_captionAsset", "list", filter={"entryIdEqual": entry["id"]})
    assert listed["objects"] == [done]
    # Replace the content with a string resource.
    srt = "1\n00:00:00,000 --> 00:00:01,000\nHola\n"
    again = await api(
        "caption_captionAsset",
        "setContent",
        id=caption["id"],
        contentResource={"objectType": "KalturaStringResource", "content": srt},
    )
    assert again["version"] == 2 and await api.download(url) == srt.encode()


async def test_caption_rules(api: Api, simulator) -> None:
    partner = simulator.partner
    image = await api.new_entry(mediaType="2")
    cap = {"objectType": "KalturaCaptionAsset", "language": "English"}
    assert await api.error(
        "caption_captionAsset", "add", entryId=image["id"], captionAsset=cap
    ) == ("ENTRY_ID_NOT_FOUND")
    made = await api(
        "caption_captionAsset", "add", entryId=(await api.new_entry())["id"], captionAsset=cap
    )
    assert made["format"] == "1" and made["isDefault"] is False  # SRT by default
    ro = {**cap, "status": "2"}
    assert await api.error(
        "caption_captionAsset", "add", entryId=made["entryId"], captionAsset=ro
    ) == ("PROPERTY_VALIDATION_NOT_UPDATABLE")
    # Captions of a multi-stream child are the parent's.
    parent, child = partner.sql(
        "SELECT parent_entry_id, id FROM entries WHERE parent_entry_id IS NOT NULL LIMIT 1"
    )[0]
    on_child = await api("caption_captionAsset", "add", entryId=child, captionAsset=cap)
    assert on_child["entryId"] == parent


async def test_attachment_and_thumb(api: Api, simulator) -> None:
    entry = await api.new_entry()
    att = await api(
        "attachment_attachmentAsset",
        "add",
        entryId=entry["id"],
        attachmentAsset={
            "objectType": "KalturaAttachmentAsset",
            "filename": "slides.pdf",
            "title": "Slides",
            "format": "3",
        },
    )
    pdf = b"%PDF-1.4 not really\n" * 100
    token = await api.uploaded_token(pdf, filename="slides.pdf")
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
    att = await api(
        "attachment_attachmentAsset", "setContent", id=att["id"], contentResource=resource
    )
    assert att["status"] == 2 and att["fileExt"] == "pdf" and att["filename"] == "slides.pdf"
    url = await api("attachment_attachmentAsset", "getUrl", id=att["id"])
    assert await api.download(url) == pdf

    jpeg = b"\xff\xd8\xff" + bytes(range(256)) * 40
    thumbs = []
    for i in range(2):
        thumb = await api(
            "thumbAsset", "add", entryId=entry["id"], thumbAsset={"objectType": "KalturaThumbAsset"}
        )
        assert thumb["status"] == 0 and thumb["thumbParamsId"] == 0
        token = await api.uploaded_token(jpeg, filename=f"t{i}.jpg")
        resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
        thumbs.append(
            await api("thumbAsset", "setContent", id=thumb["id"], contentResource=resource)
        )
    # The first thumbnail of a NO_CONTENT entry became its default; the second did not.
    assert "default_thumb" in thumbs[0]["tags"] and "default_thumb" not in thumbs[1]["tags"]
    assert await api("thumbAsset", "setAsDefault", thumbAssetId=thumbs[1]["id"]) is None
    listed = {
        t["id"]: t
        for t in (await api("thumbAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"]
    }
    assert "default_thumb" in listed[thumbs[1]["id"]]["tags"]
    assert "default_thumb" not in listed[thumbs[0]["id"]]["tags"]
    url = await api("thumbAsset", "getUrl", id=thumbs[1]["id"])
    assert await api.download(url) == jpeg
    assert await api.error("thumbAsset", "setAsDefault", thumbAssetId="1_nosuch00") == (
        "THUMB_ASSET_ID_NOT_FOUND"
    )
    # Data entries take no thumbnails.
    data_entry = simulator.partner.sql("SELECT id FROM entries WHERE type = '6'")[0][0]
    code = await api.error(
        "thumbAsset", "add", entryId=data_entry, thumbAsset={"objectType": "KalturaThumbAsset"}
    )
    assert code == "ENTRY_ID_NOT_FOUND"


async def test_set_as_default_on_a_generated_entry(api: Api, simulator) -> None:
    partner = simulator.partner
    eid = partner.sql(
        "SELECT id FROM entries WHERE type = '1' AND status = 2 AND n_thumbs >= 2 LIMIT 1"
    )[0][0]
    thumbs = (await api("thumbAsset", "list", filter={"entryIdEqual": eid}))["objects"]
    old_default = next(t for t in thumbs if "default_thumb" in t["tags"])
    other = next(t for t in thumbs if t["id"] != old_default["id"])
    await api("thumbAsset", "setAsDefault", thumbAssetId=other["id"])
    after = {
        t["id"]: t
        for t in (await api("thumbAsset", "list", filter={"entryIdEqual": eid}))["objects"]
    }
    assert "default_thumb" in after[other["id"]]["tags"]
    assert "default_thumb" not in after[old_default["id"]]["tags"]
    # Their bytes are still the generated ones.
    size, seed = partner.asset_content(other["id"])
    url = await api("thumbAsset", "getUrl", id=other["id"])
    assert await api.download(url) == content_bytes(seed, 0, size)


async def test_set_content_replaces_a_generated_caption(api: Api, simulator) -> None:
    eid = simulator.partner.sql("SELECT id FROM entries WHERE n_captions > 0 AND status = 2")[0][0]
    cap = (await api("caption_captionAsset", "list", filter={"entryIdEqual": eid}))["objects"][0]
    resource = {"objectType": "KalturaStringResource", "content": VTT}
    new = await api("caption_captionAsset", "setContent", id=cap["id"], contentResource=resource)
    assert new["id"] == cap["id"] and new["language"] == cap["language"]
    assert new["sizeInBytes"] == len(VTT) and new["version"] == 2
    url = await api("caption_captionAsset", "getUrl", id=cap["id"])
    assert await api.download(url) == VTT.encode()


# ---- flavorAsset.convert -----------------------------------------------------------------------


async def test_convert_makes_or_remakes_a_flavor(api: Api, simulator) -> None:
    entry = await api.new_entry()
    token = await api.uploaded_token(DATA)
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
    await api("media", "addContent", entryId=entry["id"], resource=resource)
    assert await api("flavorAsset", "convert", entryId=entry["id"], flavorParamsId="487061") is None
    flavors = (await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"]
    made = next(f for f in flavors if f["flavorParamsId"] == 487061)
    assert made["status"] == 2 and made["isOriginal"] is False
    assert (made["width"], made["height"], made["bitrate"]) == (1280, 720, 2400)
    assert made["sizeInBytes"] == len(DATA) * 2400 // 4000
    url = await api("flavorAsset", "getUrl", id=made["id"])
    assert len(await api.download(url)) == made["sizeInBytes"]
    # Converting again reuses the flavor: same id, next version.
    await api("flavorAsset", "convert", entryId=entry["id"], flavorParamsId="487061")
    again = await api("flavorAsset", "get", id=made["id"])
    assert again["version"] == made["version"] + 1 and again["status"] == 2
    # After a delete, convert makes a new flavor (the deleted one is gone for good).
    await api("flavorAsset", "delete", id=made["id"])
    await api("flavorAsset", "convert", entryId=entry["id"], flavorParamsId="487061")
    flavors = (await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"]
    remade = [f for f in flavors if f["flavorParamsId"] == 487061]
    assert len(remade) == 1 and remade[0]["id"] != made["id"]
    # The source params make nothing.
    await api("flavorAsset", "convert", entryId=entry["id"], flavorParamsId="0")
    assert (
        len((await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"])
        == 2
    )


async def test_convert_errors_and_generated_entries(api: Api, simulator) -> None:
    partner = simulator.partner
    fresh = await api.new_entry()
    code = await api.error("flavorAsset", "convert", entryId=fresh["id"], flavorParamsId="487041")
    assert code == "INVALID_ENTRY_STATUS"  # NO_CONTENT
    code = await api.error("flavorAsset", "convert", entryId=fresh["id"], flavorParamsId="424242")
    assert code == "FLAVOR_PARAMS_ID_NOT_FOUND"
    code = await api.error("flavorAsset", "convert", entryId="0_nosuch00", flavorParamsId="2")
    assert code == "ENTRY_ID_NOT_FOUND"
    # A generated entry whose source was deleted cannot be converted.
    eid = partner.sql("SELECT id FROM entries WHERE type='1' AND status=2 AND n_flavors > 2")[0][0]
    flavors = (await api("flavorAsset", "list", filter={"entryIdEqual": eid}))["objects"]
    other = next(f for f in flavors if not f["isOriginal"])
    await api("flavorAsset", "delete", id=other["id"])
    await api("flavorAsset", "convert", entryId=eid, flavorParamsId=str(other["flavorParamsId"]))
    after = (await api("flavorAsset", "list", filter={"entryIdEqual": eid}))["objects"]
    assert len(after) == len(flavors)  # a new flavor in place of the deleted one
    source = next(f for f in flavors if f["isOriginal"])
    await api("flavorAsset", "delete", id=source["id"])
    code = await api.error("flavorAsset", "convert", entryId=eid, flavorParamsId="487041")
    assert code == "ORIGINAL_FLAVOR_ASSET_IS_MISSING"


# ---- beside the generated data ----------------------------------------------------------------


async def test_added_entries_are_deletable_and_recyclable(api: Api, simulator) -> None:
    entry = await api.new_entry()
    token = await api.uploaded_token(DATA)
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token}
    await api("media", "addContent", entryId=entry["id"], resource=resource)
    (source,) = (await api("flavorAsset", "list", filter={"entryIdEqual": entry["id"]}))["objects"]
    _, _, path = simulator.partner.content_ref(source["id"])
    recycled = await api("baseEntry", "recycle", entryId=entry["id"])
    assert recycled["displayInSearch"] == -2 and recycled["status"] == 2
    await api("baseEntry", "restoreRecycled", entryId=entry["id"])
    assert await api("media", "delete", entryId=entry["id"]) is None
    assert await api.error("flavorAsset", "get", id=source["id"]) == "FLAVOR_ASSET_ID_NOT_FOUND"
    assert simulator.partner.assets_of(entry["id"]) == []
    assert not os.path.exists(path)  # the deletion removed the uploaded file


def test_generated_assets_unchanged_by_additions(tmp_path) -> None:
    spec = PartnerSpec(entries=300, seed=3)
    with Partner.create(spec) as clean, Partner.create(spec) as used:
        eids = [r[0] for r in clean.sql("SELECT id FROM entries ORDER BY idx")]
        entry = used.add_media_entry({"mediaType": "1", "name": "new"}, now=spec.now)
        used.add_asset("caption", eids[40], {"language": "French"}, now=spec.now)
        assert used.sql("SELECT COUNT(*) FROM entries")[0][0] == 301
        for eid in eids:
            before = clean.assets_of(eid, include_deleted=True)
            after = [
                a
                for a in used.assets_of(eid, include_deleted=True)
                if ids.stored_asset_num(a["id"]) is None
            ]
            assert before == after, eid
        assert entry["id"] == ids.entry_id(301)
