"""An api_v3 client for simulator tests: JSON calls and multipart uploads, real HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from kretain.simulator import ks as ksmod
from kretain.simulator.testing import RunningSimulator


def admin_ks(sim: RunningSimulator, user: str = "") -> str:
    spec = sim.partner.spec
    return ksmod.sign_ks_v2(
        spec.admin_secret, spec.partner_id, user, 2, int(time.time()) + 600, "disableentitlement"
    )


def user_ks(sim: RunningSimulator, user: str) -> str:
    spec = sim.partner.spec
    return ksmod.sign_ks_v2(spec.admin_secret, spec.partner_id, user, 0, int(time.time()) + 600, "")


class Api:
    """Calls one simulator with one KS; ``format=1`` JSON answers."""

    def __init__(self, http: aiohttp.ClientSession, sim: RunningSimulator, ks: str) -> None:
        self.http, self.sim, self.ks = http, sim, ks

    def url(self, service: str, action: str) -> str:
        return f"{self.sim.url}/api_v3/service/{service}/action/{action}"

    async def raw(self, service: str, action: str, **params: Any) -> tuple[int, bytes]:
        body = {"format": "1", "ks": self.ks, **params}
        async with self.http.post(self.url(service, action), json=body) as r:
            return r.status, await r.read()

    async def __call__(self, service: str, action: str, **params: Any) -> Any:
        status, body = await self.raw(service, action, **params)
        assert status == 200, body
        return json.loads(body)

    async def error(self, service: str, action: str, **params: Any) -> str:
        """The API error code a call answers (fails if it succeeds)."""
        result = await self(service, action, **params)
        assert isinstance(result, dict) and result.get("objectType") == "KalturaAPIException", (
            result
        )
        return str(result["code"])

    async def multipart(
        self,
        service: str,
        action: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, Any]] | None = None,
        *,
        extra_fields: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """What the official client sends with files: one ``json`` field, file parts."""
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("json", json.dumps({"format": "1", "ks": self.ks, **params}))
        for name, value in (extra_fields or {}).items():
            form.add_field(name, value)
        for name, (filename, data) in (files or {}).items():
            form.add_field(name, data, filename=filename, content_type="application/octet-stream")
        async with self.http.post(self.url(service, action), data=form) as r:
            return r.status, await r.read()

    async def upload(
        self,
        token_id: str,
        data: Any,
        *,
        resume: bool = False,
        final: bool = True,
        resume_at: int = -1,
        filename: str = "movie.mp4",
    ) -> Any:
        """uploadToken.upload as the official client sends it (booleans as "True"/"False")."""
        status, body = await self.multipart(
            "uploadToken",
            "upload",
            {
                "uploadTokenId": token_id,
                "resume": str(resume),
                "finalChunk": str(final),
                "resumeAt": str(resume_at),
            },
            {"fileData": (filename, data)},
        )
        assert status == 200, body
        return json.loads(body)

    async def new_token(self, **fields: Any) -> dict[str, Any]:
        token = await self(
            "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", **fields}
        )
        assert token["objectType"] == "KalturaUploadToken", token
        return token

    async def uploaded_token(self, data: bytes, filename: str = "movie.mp4") -> str:
        token = await self.new_token()
        done = await self.upload(token["id"], data, filename=filename)
        assert done["status"] == 2, done
        return str(token["id"])

    async def new_entry(self, **fields: Any) -> dict[str, Any]:
        entry = {"objectType": "KalturaMediaEntry", "mediaType": "1", **fields}
        made = await self("media", "add", entry=entry)
        assert made.get("objectType") == "KalturaMediaEntry", made
        return made

    async def download(self, url: str) -> bytes:
        async with self.http.get(url) as r:
            assert r.status == 200
            return await r.read()
