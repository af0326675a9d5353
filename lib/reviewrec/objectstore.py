"""Object stores (s3a://): the preflight check every session runs, credential redaction, and the
local S3 server lib/s3.sh starts.

Preflight. A run.root or input.path on s3a:// is probed through Hadoop's S3A connector with the
session's own settings (endpoint, path style, credentials provider), but with retries cut to one
attempt and short connection timeouts, before any stage runs. S3A's defaults retry a missing
endpoint or a refused request for minutes; the probe fails in seconds with an
ObjectStoreUnavailable naming the URL and which of the three it is: the bucket does not exist,
the credentials are rejected (or absent), or the endpoint is unreachable.

Redaction. Object-store keys come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) through s3a's credentials providers, never from a file
of ours; should a conf carry one anyway (fs.s3a.secret.key and the like), every place that
prints configuration (config.Config.log_effective, the job's start line) shows it redacted, and
Spark's spark.redaction.regex hides it in the event log and the UI. The config hash leaves the
whole spark section out, so no key is hashed either.

The local S3 server: moto's S3-compatible server (PyPI moto[server]) with its credential checks
on, so wrong keys fail as they do on S3 (`python -m reviewrec.objectstore serve|provision`, run by
lib/s3.sh).

Imports nothing from Spark at module level: config.py and the launcher use the redaction.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

SCHEMES = ("s3a://",)
REDACTED = "*********(redacted)"
# Property and variable names whose values are secrets: those ending in what Spark's default
# spark.redaction.regex names (secret, password, token, access.key) and the other spellings of
# s3a, the AWS SDK and the GCS/Azure connectors (fs.s3a.secret.key, AWS_ACCESS_KEY_ID,
# fs.s3a.encryption.key, ...private.key, fs.azure.account.key.<account>...). Anchored at the end,
# so config keys such as text.min_token_length are not taken for secrets.
SECRET_NAME = re.compile(r"(?i)(password|secret|token|access[._-]?key(?:[._-]?id)?|secret[._-]?key"
                         r"|encryption[._-]?key|private[._-]?key(?:[._-]?id)?)$|account\.key\.")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# The probe's S3A settings: one attempt, short timeouts, its own FileSystem instance (not the
# cached one the jobs use, so these never reach a job).
PREFLIGHT_CONF = {
    "fs.s3a.attempts.maximum": "1",
    "fs.s3a.retry.limit": "1",
    "fs.s3a.retry.interval": "100ms",
    "fs.s3a.retry.throttle.limit": "1",
    "fs.s3a.connection.establish.timeout": "3000",
    "fs.s3a.connection.timeout": "5000",
    "fs.s3a.impl.disable.cache": "true",
}
CREDENTIAL_ERRORS = re.compile(r"InvalidAccessKeyId|SignatureDoesNotMatch|InvalidToken|ExpiredToken|No AWS Credentials")
# Java exception class names -> what failed.
BUCKET_MISSING = ("org.apache.hadoop.fs.s3a.UnknownStoreException",)
CREDENTIALS = ("java.nio.file.AccessDeniedException", "org.apache.hadoop.fs.s3a.auth.NoAuthWithAWSException",
               "org.apache.hadoop.fs.s3a.CredentialInitializationException")
UNREACHABLE = ("org.apache.hadoop.fs.s3a.AWSClientIOException", "java.net.ConnectException",
               "java.net.UnknownHostException", "java.net.SocketTimeoutException",
               "org.apache.hadoop.net.ConnectTimeoutException", "org.apache.hadoop.fs.s3a.AWSApiCallTimeoutException")


class ObjectStoreUnavailable(RuntimeError):
    """A run root or input on an object store cannot be used: missing bucket, rejected
    credentials or unreachable endpoint (the message names the URL and which)."""


# -- redaction ---------------------------------------------------------------------------------

def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def redact_value(name: str, value: Any) -> Any:
    """`value`, or REDACTED when `name` is a secret's (a key, a token, a password)."""
    return REDACTED if is_secret_name(name) and value not in (None, "") else value


def secret_values(conf: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret strings in force: the credential variables of the environment and the values of
    conf properties whose names are secrets'."""
    environ = os.environ if environ is None else environ
    out = [environ[k] for k in CREDENTIAL_ENV if environ.get(k)]
    out += [str(v) for k, v in (conf or {}).items() if is_secret_name(str(k)) and v not in (None, "")]
    # Longest first, so a value that contains another is replaced whole.
    return sorted({v for v in out if len(v) >= 4}, key=len, reverse=True)


_ASSIGNMENT = re.compile(r"(?P<name>[\w.\-]+)(?P<sep>\s*[=:]\s*)(?P<value>[^\s,;'\"]+)")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every `name=value` (or `name: value`) whose name is a secret's redacted, and
    every string of `secrets` (see secret_values) replaced wherever it appears."""
    for s in secrets:
        text = text.replace(s, REDACTED)

    def sub(m: re.Match[str]) -> str:
        if is_secret_name(m.group("name")) and m.group("value") != REDACTED:
            return f"{m.group('name')}{m.group('sep')}{REDACTED}"
        return m.group(0)

    return _ASSIGNMENT.sub(sub, text)


# -- preflight ---------------------------------------------------------------------------------

def is_object_store(path: str | None) -> bool:
    return bool(path) and str(path).startswith(SCHEMES)


def bucket_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def object_store_urls(cfg: Mapping[str, Any]) -> list[str]:
    """The config's paths on an object store: run.root, and input.path unless the input is
    synthetic (generated under the run root)."""
    urls = [cfg["run"]["root"]]
    if cfg["input"].get("format") != "synthetic":
        urls.append(cfg["input"].get("path"))
    return [u for u in urls if is_object_store(u)]


def classify(java_class: str, message: str) -> str | None:
    """"bucket", "credentials", "endpoint" or None (another failure) for a Java exception."""
    if java_class in BUCKET_MISSING or "NoSuchBucket" in message or "Bucket does not exist" in message:
        return "bucket"
    if java_class in CREDENTIALS or re.search(r"Status Code: 40[13]\b", message) or CREDENTIAL_ERRORS.search(message):
        return "credentials"
    if java_class in UNREACHABLE or "Unable to execute HTTP request" in message:
        return "endpoint"
    return None


def _problem(kind: str | None, url: str, endpoint: str) -> str:
    bucket = bucket_of(url)
    if kind == "bucket":
        return (f"{url}: the bucket {bucket!r} does not exist at {endpoint} (create it, e.g. "
                f"`./spark-submit.sh s3 up --bucket {bucket}` for the local S3 server, or fix the path)")
    if kind == "credentials":
        return (f"{url}: the credentials were rejected or are missing at {endpoint} (s3a reads them from "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with the providers in "
                "fs.s3a.aws.credentials.provider; check they are set and belong to this store)")
    if kind == "endpoint":
        return (f"{url}: the endpoint {endpoint} is unreachable (is the S3 server up? "
                "`./spark-submit.sh s3 status`; or fix fs.s3a.endpoint)")
    return f"{url}: cannot be used"


def probe(spark: Any, url: str, overrides: Mapping[str, str] | None = None) -> None:
    """Reach `url` through S3A with the session's Hadoop settings (plus `overrides`, on a copy)
    and PREFLIGHT_CONF; raise ObjectStoreUnavailable saying which of bucket, credentials or
    endpoint failed."""
    from py4j.protocol import Py4JJavaError

    jvm = spark.sparkContext._jvm
    hconf = jvm.org.apache.hadoop.conf.Configuration(spark.sparkContext._jsc.hadoopConfiguration())
    for key, value in {**(overrides or {}), **PREFLIGHT_CONF}.items():
        hconf.set(key, value)
    bucket = bucket_of(url)
    endpoint = (hconf.get(f"fs.s3a.bucket.{bucket}.endpoint") or hconf.get("fs.s3a.endpoint")
                or "the default AWS endpoint")
    path = jvm.org.apache.hadoop.fs.Path(url)
    fs = None
    try:
        fs = path.getFileSystem(hconf)
        try:
            fs.getFileStatus(path)
        except Py4JJavaError as e:
            # A run root that does not exist yet is fine: the bucket answered.
            if e.java_exception.getClass().getName() != "java.io.FileNotFoundException":
                raise
    except Py4JJavaError as e:
        je = e.java_exception
        name = str(je.getClass().getName())
        message = str(je.toString())
        cause = je.getCause()
        while cause is not None:
            message += " | " + str(cause.toString())
            cause = cause.getCause()
        kind = classify(name, message)
        detail = redact_text(message.splitlines()[0] if message else name, secret_values(_s3a_conf(hconf)))
        raise ObjectStoreUnavailable(f"{_problem(kind, url, endpoint)} [{detail[:400]}]") from None
    finally:
        if fs is not None:
            fs.close()


def _s3a_conf(hconf: Any) -> dict[str, str]:
    it = hconf.iterator()
    out: dict[str, str] = {}
    while it.hasNext():
        e = it.next()
        k = str(e.getKey())
        if k.startswith("fs.s3a."):
            out[k] = str(e.getValue())
    return out


def preflight(spark: Any, cfg: Mapping[str, Any]) -> None:
    """Probe every object-store URL of the config (object_store_urls) before any stage runs."""
    for url in object_store_urls(cfg):
        t0 = time.perf_counter()
        probe(spark, url)
        log.info("object store %s reachable (%.1fs)", url, time.perf_counter() - t0)


# -- the local S3 server (lib/s3.sh) -----------------------------------------------------------

USER = "reviewrec"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def serve(host: str, port: int) -> None:
    """moto's server (moto_server -H host -p port) with one fix to its SigV4 check: botocore's
    signer, which moto reuses to recompute signatures, never signs User-Agent, but the AWS SDK
    for Java (s3a's) does, as S3 allows; without the fix every s3a request fails with 403."""
    import botocore.auth

    botocore.auth.SIGNED_HEADERS_BLACKLIST = [h for h in botocore.auth.SIGNED_HEADERS_BLACKLIST if h != "user-agent"]
    from moto.server import main as moto_main

    moto_main(["-H", host, "-p", str(port)])


def _client(service: str, endpoint: str, key: str = "unchecked", secret: str = "unchecked") -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def provision(endpoint: str, credentials_file: str, buckets: list[str]) -> None:
    """First call on a fresh server: create an IAM user with full S3 access and a key pair, write
    it to `credentials_file` (mode 600, AWS_ACCESS_KEY_ID=... lines for `set -a; . FILE`), create
    `buckets`, then turn moto's credential checks on. Later calls create the missing buckets with
    the stored keys."""
    import urllib.request

    if not os.path.exists(credentials_file):
        iam = _client("iam", endpoint)
        iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="s3-all", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        fd = os.open(credentials_file + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\nAWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n")
        os.replace(credentials_file + ".tmp", credentials_file)
        # From now on every request is checked: unknown keys and bad signatures get 403.
        req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).read()
    creds = read_credentials(credentials_file)
    s3 = _client("s3", endpoint, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
    have = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for b in buckets:
        if b not in have:
            s3.create_bucket(Bucket=b)
            print(f"created bucket {b}", file=sys.stderr)


def read_credentials(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        return dict(line.strip().split("=", 1) for line in fh if "=" in line)


def s3_client(endpoint: str, credentials: dict[str, str]) -> Any:
    """A boto3 S3 client for `endpoint` with the keys `read_credentials` returns."""
    return _client("s3", endpoint, credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"])


def list_buckets(endpoint: str, credentials_file: str) -> list[str]:
    s3 = s3_client(endpoint, read_credentials(credentials_file))
    return sorted(b["Name"] for b in s3.list_buckets()["Buckets"])


def main(argv: list[str]) -> int:
    usage = ("usage: python -m reviewrec.objectstore serve HOST PORT\n"
             "       python -m reviewrec.objectstore provision ENDPOINT CREDENTIALS_FILE [BUCKET ...]\n"
             "       python -m reviewrec.objectstore buckets ENDPOINT CREDENTIALS_FILE")
    if len(argv) >= 3 and argv[0] == "serve":
        serve(argv[1], int(argv[2]))
    elif len(argv) >= 3 and argv[0] == "provision":
        provision(argv[1], argv[2], argv[3:])
    elif len(argv) == 3 and argv[0] == "buckets":
        print(" ".join(list_buckets(argv[1], argv[2])))
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
