"""Uploads over real HTTP: how the body is read, uploadToken.* and chunked uploads."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import aiohttp
import pytest
from simapi import Api, user_ks

from kretain.simulator.content import content_bytes, content_sha256

DATA = content_bytes(5, 0, 300_000)


# ---- how a request body is read ----------------------------------------------------------


async def test_multipart_json_field_is_the_whole_body(api: Api) -> None:
    # With a `json` field the other plain fields are ignored (getRequestParams), even ks.
    status, body = await api.multipart(
        "media", "list", {"pager": {"pageSize": "2"}}, extra_fields={"pager:pageSize": "5"}
    )
    assert status == 200 and len(json.loads(body)["objects"]) == 2
    form_only = {"format": "1", "ks": api.ks, "pager:pageSize": "4"}
    async with api.http.post(api.url("media", "list"), data=form_only) as r:
        assert len(json.loads(await r.read())["objects"]) == 4
    # A multipart body whose `json` is not a non-empty object falls back to its fields.
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in (("json", "{}"), ("format", "1"), ("ks", api.ks), ("pager:pageSize", "3")):
        form.add_field(name, value)
    async with api.http.post(api.url("media", "list"), data=form) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        assert len(json.loads(await r.read())["objects"]) == 3


async def test_file_params_missing_plain_or_real(api: Api) -> None:
    token = await api.new_token()
    params = {"uploadTokenId": token["id"]}
    status, body = await api.multipart("uploadToken", "upload", params)
    assert json.loads(body)["code"] == "MISSING_MANDATORY_PARAMETER"
    assert json.loads(body)["args"] == {"PARAM_NAME": "fileData"}
    # A fileData that is a plain field (no file name) is no upload: UPLOAD_ERROR.
    plain = {**params, "fileData": "just text"}
    status, body = await api.multipart("uploadToken", "upload", plain)
    assert json.loads(body)["code"] == "UPLOAD_ERROR"
    assert (await api("uploadToken", "get", uploadTokenId=token["id"]))["status"] == 0


async def test_request_temp_files_are_removed(api: Api, simulator) -> None:
    incoming = simulator.partner.incoming_dir()
    token = await api.new_token()
    # A call that fails keeps nothing; one that succeeds moved its part away.
    status, body = await api.multipart(
        "uploadToken", "upload", {"uploadTokenId": "0_nosuch"}, {"fileData": ("a.bin", DATA)}
    )
    assert json.loads(body)["code"] == "UPLOAD_TOKEN_NOT_FOUND"
    await api.upload(token["id"], DATA)
    assert os.listdir(incoming) == []


# ---- upload tokens --------------------------------------------------------------------------


async def test_token_lifecycle(api: Api, simulator) -> None:
    token = await api.new_token(fileName="lecture.mp4", fileSize=str(len(DATA)))
    assert token["status"] == 0 and token["fileName"] == "lecture.mp4"
    assert token["fileSize"] == len(DATA) and "uploadedFileSize" not in token
    got = await api("uploadToken", "get", uploadTokenId=token["id"])
    assert got == token
    done = await api.upload(token["id"], DATA)
    assert done["status"] == 2 and done["uploadedFileSize"] == len(DATA)
    # A FULL token takes no more data.
    status, body = await api.multipart(
        "uploadToken", "upload", {"uploadTokenId": token["id"]}, {"fileData": ("x.mp4", b"x")}
    )
    assert json.loads(body)["code"] == "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD"
    path = simulator.partner.upload_token_file(token["id"])
    with open(path, "rb") as f:
        assert f.read() == DATA
    listed = await api("uploadToken", "list", filter={"statusEqual": "2"})
    assert [t["id"] for t in listed["objects"]] == [token["id"]] and listed["totalCount"] == 1
    assert (await api("uploadToken", "delete", uploadTokenId=token["id"])) is None
    assert not os.path.exists(path)
    for action in ("get", "delete"):
        code = await api.error("uploadToken", action, uploadTokenId=token["id"])
        assert code == "UPLOAD_TOKEN_NOT_FOUND"
    assert (await api("uploadToken", "list"))["totalCount"] == 0


async def test_token_readonly_fields_and_auto_finalize(api: Api) -> None:
    for field, value in (("uploadedFileSize", "10"), ("status", "2"), ("id", "0_x")):
        code = await api.error(
            "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", field: value}
        )
        assert code == "PROPERTY_VALIDATION_NOT_UPDATABLE"
    code = await api.error(
        "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", "autoFinalize": "1"}
    )
    assert code == "UPLOAD_TOKEN_MISSING_FILE_SIZE"
    # autoFinalize: a non-final upload that reaches fileSize is final.
    token = await api.new_token(autoFinalize="1", fileSize=str(len(DATA)))
    done = await api.upload(token["id"], DATA, final=False)
    assert done["status"] == 2


async def test_user_session_sees_only_its_tokens(api: Api, simulator, http) -> None:
    mine = Api(http, simulator, user_ks(simulator, "anna@univ.example.edu"))
    theirs = Api(http, simulator, user_ks(simulator, "ben@univ.example.edu"))
    token = await mine.new_token()
    assert token["userId"] == "anna@univ.example.edu"
    code = await theirs.error("uploadToken", "get", uploadTokenId=token["id"])
    assert code == "UPLOAD_TOKEN_NOT_FOUND"
    assert (await theirs("uploadToken", "list"))["totalCount"] == 0
    assert (await api("uploadToken", "get", uploadTokenId=token["id"]))["id"] == token["id"]


# ---- chunks ------------------------------------------------------------------------------------


async def test_chunks_in_order(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    pieces = [DATA[:100_000], DATA[100_000:250_000], DATA[250_000:]]
    first = await api.upload(token, pieces[0], final=False)
    assert first["status"] == 1 and first["uploadedFileSize"] == 100_000
    second = await api.upload(token, pieces[1], resume=True, final=False, resume_at=100_000)
    assert second["status"] == 1 and second["uploadedFileSize"] == 250_000
    last = await api.upload(token, pieces[2], resume=True, final=True, resume_at=250_000)
    assert last["status"] == 2 and last["uploadedFileSize"] == len(DATA)
    with open(simulator.partner.upload_token_file(token), "rb") as f:
        assert f.read() == DATA


async def test_chunks_out_of_order_are_parked_until_they_fit(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    a, b, c, d = DATA[:50_000], DATA[50_000:120_000], DATA[120_000:200_000], DATA[200_000:]
    await api.upload(token, a, final=False)
    parked = await api.upload(token, c, resume=True, final=False, resume_at=120_000)
    assert parked["uploadedFileSize"] == 50_000  # beyond the end: parked
    # The final chunk cannot complete while b is missing; it is kept for the retry.
    code = (
        await api.multipart(
            "uploadToken",
            "upload",
            {"uploadTokenId": token, "resume": "True", "finalChunk": "True", "resumeAt": "200000"},
            {"fileData": ("m.mp4", d)},
        )
    )[1]
    assert json.loads(code)["code"] == "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE"
    state = await api("uploadToken", "get", uploadTokenId=token)
    assert state["status"] == 1 and state["uploadedFileSize"] == 50_000
    # b fits at the end; the next call appends what was parked behind it.
    after_b = await api.upload(token, b, resume=True, final=False, resume_at=50_000)
    assert after_b["uploadedFileSize"] == 120_000
    done = await api.upload(token, d, resume=True, final=True, resume_at=200_000)
    assert done["status"] == 2 and done["uploadedFileSize"] == len(DATA)
    with open(simulator.partner.upload_token_file(token), "rb") as f:
        assert f.read() == DATA
    path = simulator.partner.upload_token_file(token)
    assert [n for n in os.listdir(os.path.dirname(path)) if ".chunk." in n] == []


async def test_overlapping_chunk_overwrites_and_stale_chunk_is_ignored(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    await api.upload(token, DATA[:100_000], final=False)
    # A resent chunk that overlaps the end is written at its offset.
    again = await api.upload(
        token, DATA[80_000:150_000], resume=True, final=False, resume_at=80_000
    )
    assert again["uploadedFileSize"] == 150_000
    # resumeAt -1 appends at the end.
    tail = await api.upload(token, DATA[150_000:], resume=True, final=True, resume_at=-1)
    assert tail["status"] == 2
    with open(simulator.partner.upload_token_file(token), "rb") as f:
        assert f.read() == DATA


async def test_resume_needs_data_and_resume_false_replaces_it(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    status, body = await api.multipart(
        "uploadToken",
        "upload",
        {"uploadTokenId": token, "resume": "True", "finalChunk": "False", "resumeAt": "0"},
        {"fileData": ("m.mp4", DATA[:10])},
    )
    assert json.loads(body)["code"] == "UPLOAD_TOKEN_CANNOT_RESUME"
    await api.upload(token, DATA[:100_000], final=False)
    # resume=false on a token with data: the new file replaces the old one (handleMoveFile).
    replaced = await api.upload(token, DATA[:7_000], final=False)
    assert replaced["status"] == 1 and replaced["uploadedFileSize"] == 7_000
    # An empty non-final chunk past 0 is dismissed without a change.
    empty = await api.upload(token, b"", resume=True, final=False, resume_at=7_000)
    assert empty["uploadedFileSize"] == 7_000
    done = await api.upload(token, DATA[7_000:20_000], resume=True, final=True, resume_at=7_000)
    assert done["uploadedFileSize"] == 20_000
    with open(simulator.partner.upload_token_file(token), "rb") as f:
        assert f.read() == DATA[:20_000]


async def test_partial_token_expires_after_seven_days(api: Api, simulator) -> None:
    simulator.knobs.now = 1_800_000_000
    token = (await api.new_token())["id"]
    await api.upload(token, DATA[:1000], final=False)
    simulator.knobs.now += 604_800
    more = await api.upload(token, DATA[1000:2000], resume=True, final=False, resume_at=1000)
    assert more["uploadedFileSize"] == 2000 and more["updatedAt"] == simulator.knobs.now
    simulator.knobs.now += 604_801
    status, body = await api.multipart(
        "uploadToken",
        "upload",
        {"uploadTokenId": token, "resume": "True", "finalChunk": "True", "resumeAt": "2000"},
        {"fileData": ("m.mp4", DATA[2000:3000])},
    )
    err = json.loads(body)
    assert err["code"] == "UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED"
    assert err["args"] == {"MAX_RESUME_TIME": "604800"}


async def test_chunks_inside_a_multirequest(api: Api, simulator) -> None:
    token = (await api.new_token())["id"]
    params = {
        "0": {
            "service": "uploadToken",
            "action": "upload",
            "uploadTokenId": token,
            "resume": "False",
            "finalChunk": "False",
            "resumeAt": "0",
        },
        "1": {
            "service": "uploadToken",
            "action": "upload",
            "uploadTokenId": token,
            "resume": "True",
            "finalChunk": "True",
            "resumeAt": "{1:result:uploadedFileSize}",
        },
    }
    status, body = await api.multipart(
        "multirequest",
        "null",
        params,
        {"0:fileData": ("a.mp4", DATA[:1000]), "1:fileData": ("a.mp4", DATA[1000:3000])},
    )
    first, second = json.loads(body)
    assert status == 200 and first["status"] == 1 and second["status"] == 2
    assert second["uploadedFileSize"] == 3000
    with open(simulator.partner.upload_token_file(token), "rb") as f:
        assert f.read() == DATA[:3000]


@pytest.mark.parametrize("name", ["file.MP4", "noextension", "blob"])
async def test_token_file_name_and_extension(api: Api, simulator, name: str) -> None:
    token = (await api.new_token())["id"]
    done = await api.upload(token, DATA[:10], filename=name)
    assert done["fileName"] == name
    path = simulator.partner.upload_token_file(token)
    assert path.endswith(".mp4" if name == "file.MP4" else ".noex")


# ---- big uploads: streamed to disk, no size cap ----------------------------------------------


class _RssSampler:
    """Peak resident memory of this process (server thread and client alike) while running."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.base = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


async def _stream_upload(api: Api, token: str, size: int, seed: int) -> dict:
    """One uploadToken.upload whose file part is generated while it is sent (chunked)."""

    async def chunks():
        for offset in range(0, size, 1 << 20):
            yield content_bytes(seed, offset, min(1 << 20, size - offset))

    params = {"format": "1", "ks": api.ks, "uploadTokenId": token, "resume": "False"}
    with aiohttp.MultipartWriter("form-data") as form:
        form.append(json.dumps(params)).set_content_disposition("form-data", name="json")
        part = form.append_payload(aiohttp.payload.AsyncIterablePayload(chunks()))
        part.set_content_disposition("form-data", name="fileData", filename="big.mp4")
        async with api.http.post(api.url("uploadToken", "upload"), data=form) as r:
            assert r.status == 200
            return json.loads(await r.read())


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(80 * 1024 * 1024, id="80MiB"),  # over the 64 MiB body cap
        pytest.param(2_500 * 1024 * 1024, id="2.5GiB", marks=pytest.mark.slow),
    ],
)
async def test_big_upload_is_streamed_to_disk(api: Api, simulator, size: int) -> None:
    token = (await api.new_token())["id"]
    with _RssSampler() as rss:
        done = await _stream_upload(api, token, size, seed=77)
    assert done["status"] == 2 and done["uploadedFileSize"] == size
    # Buffering the body would hold it all in memory; streaming holds a few MiB.
    assert rss.growth < 48 * 1024 * 1024, rss.growth
    path = simulator.partner.upload_token_file(token)
    assert _sha256_file(path) == content_sha256(77, size)
