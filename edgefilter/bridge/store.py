"""Kept frames into S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

Each frame goes to one deterministic key (:func:`object_key`), so a retried upload overwrites the same
object instead of adding a copy. The header travels as object metadata (one entry per header key,
JSON-encoded ASCII values) and, when asked, as a JSON sidecar beside the JPEG. Retries belong to the
bridge's outbox, not to botocore: one attempt per call, short timeouts.
"""
from __future__ import annotations

import json
import logging
import time

import boto3
import botocore.config
import botocore.exceptions

from .config import BridgeConfig, Secret

log = logging.getLogger(__name__)

# Header keys larger than this are left out of the metadata (AWS allows 2 KB of user metadata in all);
# the sidecar and the MQTT message still carry them.
_MAX_METADATA_VALUE = 256


# Refusals that mean the keys are wrong or lack rights (HEAD requests have no body: only "403").
_AUTH_CODES = {"403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken"}


class StoreError(Exception):
    """An upload failed; the message names the store and the reason (never a credential)."""


def object_key(site: str, header: dict) -> str:
    """``<site>/<source>/<UTC date>/<capture ms>_<seq>.jpg``: the same header gives the same key, and keys
    sort by capture time within a source and day."""
    ts = float(header["ts"])
    day = time.strftime("%Y-%m-%d", time.gmtime(ts))
    source = header["source"]  # checked by the decoder: [A-Za-z0-9_.-], but "." and ".." must not become paths
    folder = "_" + source if source in (".", "..") else source
    return f"{site}/{folder}/{day}/{int(round(ts * 1000)):013d}_{int(header['seq']):08d}.jpg"


def sidecar_key(key: str) -> str:
    return key[:-len(".jpg")] + ".json" if key.endswith(".jpg") else key + ".json"


def object_metadata(header: dict) -> dict[str, str]:
    meta = {}
    for k, v in header.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=True, separators=(",", ":"))
        if text.isascii() and len(text) <= _MAX_METADATA_VALUE:
            meta[k] = text
    return meta


class ObjectStore:
    def __init__(self, cfg: BridgeConfig, access_key: Secret | None, secret_key: Secret | None):
        s3 = cfg.s3
        self.bucket = s3.bucket
        self.sidecar = s3.sidecar
        self.where = f"{s3.endpoint or 'aws:' + s3.region}/{s3.bucket}"
        self._create_bucket = s3.create_bucket
        self._bucket_ready = not s3.create_bucket
        creds = {}
        if access_key is not None:
            creds["aws_access_key_id"] = access_key.reveal()
        if secret_key is not None:
            creds["aws_secret_access_key"] = secret_key.reveal()
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=s3.endpoint, region_name=s3.region,
            verify=str(cfg.resolve(s3.ca_file)) if s3.ca_file else None,
            config=botocore.config.Config(
                retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=s3.timeout_s,
                read_timeout=s3.timeout_s, max_pool_connections=max(10, s3.uploads),
                # Path-style addressing works with every S3-compatible store; virtual hosts need DNS.
                s3={"addressing_style": "path"}),
            **creds)

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code", "?"))
            hint = " (check s3.access_key and s3.secret_key)" if code in _AUTH_CODES else ""
            raise StoreError(f"{self.where}: {what}: {code}: {err.get('Message', e)}{hint}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as e:
            raise StoreError(f"{self.where}: {what}: {e}") from None

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self._call("head bucket", self._client.head_bucket, Bucket=self.bucket)
        except StoreError as e:
            if "404" not in str(e) and "NoSuchBucket" not in str(e) and "NotFound" not in str(e):
                raise
            self._call("create bucket", self._client.create_bucket, Bucket=self.bucket)
            log.info("created bucket %s", self.where)
        self._bucket_ready = True

    def put_frame(self, key: str, jpeg: bytes, header: dict) -> None:
        """Upload one frame (after :meth:`ensure_bucket`); StoreError when the store did not take it."""
        self._call(f"put {key}", self._client.put_object, Bucket=self.bucket, Key=key, Body=jpeg,
                   ContentType="image/jpeg", Metadata=object_metadata(header))
        if self.sidecar:
            body = json.dumps({**header, "key": key}, separators=(",", ":")).encode("utf-8")
            self._call(f"put {sidecar_key(key)}", self._client.put_object, Bucket=self.bucket,
                       Key=sidecar_key(key), Body=body, ContentType="application/json")
