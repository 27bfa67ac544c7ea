"""A stand-in for SCF's API 3.0 endpoint on loopback, for cargo scf's tests.

It checks every request as the API 3.0 signature document says the service does, written
here from the document (Python's hashlib and hmac, nothing shared with the client under test),
and answers as the API reference documents: {"Response": {..., "RequestId"}} on success,
{"Response": {"Error": {"Code", "Message"}, "RequestId"}} on failure, both with HTTP 200.

    python3 scf_api.py --secret-id ID --secret-key KEY [--token T] [--log FILE]
    python3 scf_api.py --verify --secret-key KEY [--secret-id ID] < REQUESTS

prints `listening on 127.0.0.1:PORT` (an ephemeral port) and serves until killed. FILE gets one
JSON line per call that passed the signature check: action, region, params, whether a token
came. Functions live in memory; one is Creating or Updating for two GetFunction calls, then
Active, unless its ImageUri contains `pull-fails` (then CreateFailed / UpdateFailed, with
StatusReasons) or `never-ready` (it stays Creating / Updating).

With --verify it reads HTTP/1.1 requests as text (what `cargo scf deploy --dry-run` prints, one
after another), checks each one's signature as above (the credential's id as shown, whatever
it is, unless --secret-id is given; the time as signed) and prints `verified N`, or fails.
"""
import argparse
import hashlib
import hmac
import json
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "2018-04-16"
SERVICE = "scf"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def hmac_sha256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def check_signature(cfg, method, headers, body):
    """The service's side of TC3-HMAC-SHA256: recompute from what arrived, compare.

    headers: the request's, names in lower case."""
    auth = headers.get("authorization", "")
    m = re.fullmatch(
        r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z0-9]+)/tc3_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        auth,
    )
    if not m:
        raise ApiError("AuthFailure.InvalidAuthorization", "Authorization header is malformed")
    secret_id, date, service, signed, signature = m.groups()
    if secret_id != cfg.secret_id:
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found")
    ts = headers.get("x-tc-timestamp", "")
    if not ts.isdigit():
        raise ApiError("MissingParameter", "X-TC-Timestamp is missing")
    if abs(int(ts) - time.time()) > 300:
        raise ApiError("AuthFailure.SignatureExpire", "Signature expired")
    if datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%d") != date:
        raise ApiError("AuthFailure.SignatureFailure", "Credential date is not the UTC date of X-TC-Timestamp")
    if service != SERVICE:
        raise ApiError("AuthFailure.SignatureFailure", "Credential service is not scf")
    names = signed.split(";")
    if "content-type" not in names or "host" not in names or names != sorted(names):
        raise ApiError("AuthFailure.SignatureFailure", "SignedHeaders must list content-type and host, sorted")
    canonical_headers = "".join(
        "%s:%s\n" % (n, headers.get(n, "").strip().lower()) for n in names
    )
    canonical = "\n".join([method, "/", "", canonical_headers, signed, sha256_hex(body)])
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", ts, "%s/%s/tc3_request" % (date, service), sha256_hex(canonical.encode("utf-8"))]
    )
    k = hmac_sha256(("TC3" + cfg.secret_key).encode("utf-8"), date)
    k = hmac_sha256(k, service)
    k = hmac_sha256(k, "tc3_request")
    expected = hmac.new(k, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated")
    if cfg.token and headers.get("x-tc-token") != cfg.token:
        raise ApiError("AuthFailure.TokenFailure", "Token verification failed")


class State:
    def __init__(self):
        self.functions = {}

    def key(self, p):
        name = p.get("FunctionName")
        if not name:
            raise ApiError("MissingParameter", "FunctionName is required")
        if not NAME.match(name):
            raise ApiError("InvalidParameterValue.FunctionName", "FunctionName %r is invalid" % name)
        return (p.get("Namespace") or "default", name)

    def image(self, p):
        c = (p.get("Code") or {}).get("ImageConfig")
        if not isinstance(c, dict):
            raise ApiError("InvalidParameterValue.Code", "Code.ImageConfig is required for an image function")
        if c.get("ImageType") not in ("personal", "enterprise"):
            raise ApiError("InvalidParameterValue.ImageType", "ImageType must be personal or enterprise")
        if c.get("ImageType") == "enterprise" and not c.get("RegistryId"):
            raise ApiError("MissingParameter.RegistryId", "RegistryId is required for enterprise")
        if "@sha256:" not in c.get("ImageUri", ""):
            raise ApiError("InvalidParameterValue.ImageUri", "ImageUri must be {domain}/{namespace}/{imageName}:{tag}@{digest}")
        if c.get("ImagePort") not in (None, -1, 0) and not 0 < c.get("ImagePort") < 65536:
            raise ApiError("InvalidParameterValue.ImagePort", "ImagePort is invalid")
        return c

    def settings(self, p, f):
        if "MemorySize" in p:
            m = p["MemorySize"]
            if not (m == 64 or (128 <= m <= 3072 and m % 128 == 0)):
                raise ApiError("InvalidParameterValue.MemorySize", "MemorySize is invalid")
            f["MemorySize"] = m
        if "Timeout" in p:
            if not 1 <= p["Timeout"] <= 900:
                raise ApiError("InvalidParameterValue.Timeout", "Timeout is invalid")
            f["Timeout"] = p["Timeout"]
        if "Environment" in p:
            f["Environment"] = p["Environment"]
        if "InstanceConcurrencyConfig" in p:
            if f["Type"] != "HTTP":
                raise ApiError("InvalidParameterValue.InstanceConcurrencyConfig", "only web functions")
            f["InstanceConcurrencyConfig"] = p["InstanceConcurrencyConfig"]

    def transition(self, f, busy, failed, image):
        f["Status"], f["Polls"], f["Target"] = busy, 0, failed
        f["ImageConfig"] = image
        f["StatusReasons"] = []

    def call(self, action, p):
        if action == "GetFunction":
            k = self.key(p)
            f = self.functions.get(k)
            if f is None:
                raise ApiError("ResourceNotFound.Function", "Function %s does not exist" % k[1])
            uri = f["ImageConfig"]["ImageUri"]
            if f["Status"] in ("Creating", "Updating"):
                f["Polls"] += 1
                if "never-ready" in uri:
                    pass
                elif f["Polls"] > 2 and "pull-fails" in uri:
                    f["Status"] = f["Target"]
                    f["StatusDesc"] = "pull image failed"
                    f["StatusReasons"] = [{"ErrorCode": "PullImageFailed", "ErrorMessage": "failed to pull image %s: not found" % uri}]
                elif f["Polls"] > 2:
                    f["Status"], f["StatusDesc"] = "Active", ""
            return {k2: v for k2, v in f.items() if k2 not in ("Polls", "Target")}
        if action == "CreateFunction":
            k = self.key(p)
            if k in self.functions:
                raise ApiError("ResourceInUse.Function", "Function %s already exists" % k[1])
            if p.get("Type", "Event") not in ("Event", "HTTP"):
                raise ApiError("InvalidParameterValue.Type", "Type must be Event or HTTP")
            f = {"FunctionName": k[1], "Namespace": k[0], "Type": p.get("Type", "Event"),
                 "MemorySize": 128, "Timeout": 3, "StatusDesc": ""}
            image = self.image(p)
            self.settings(p, f)
            self.transition(f, "Creating", "CreateFailed", image)
            self.functions[k] = f
            return {}
        if action in ("UpdateFunctionCode", "UpdateFunctionConfiguration"):
            k = self.key(p)
            f = self.functions.get(k)
            if f is None:
                raise ApiError("ResourceNotFound.Function", "Function %s does not exist" % k[1])
            if f["Status"] != "Active" and not f["Status"].endswith("Failed"):
                raise ApiError("FailedOperation." + action, "The function is %s and cannot be updated now" % f["Status"])
            if action == "UpdateFunctionCode":
                self.transition(f, "Updating", "UpdateFailed", self.image(p))
            else:
                self.settings(p, f)
                f["Status"], f["Polls"], f["Target"] = "Updating", 0, "UpdateFailed"
            return {}
        raise ApiError("InvalidAction", "The action %s does not exist" % action)


def verify(cfg):
    """Checks the signature of every request printed on stdin."""
    text = sys.stdin.buffer.read().decode("utf-8")
    n = 0
    for part in text.split("POST / HTTP/1.1\r\n")[1:]:
        head, _, rest = part.partition("\r\n\r\n")
        headers = {}
        for line in head.split("\r\n"):
            k, _, v = line.partition(": ")
            headers[k.lower()] = v
        body = rest.encode("utf-8")[: int(headers["content-length"])]
        shown = re.search(r"Credential=([^/]+)/", headers.get("authorization", ""))
        cfg.secret_id = cfg.secret_id or (shown.group(1) if shown else "")
        real_time = time.time
        time.time = lambda: int(headers.get("x-tc-timestamp", "0"))
        try:
            check_signature(cfg, "POST", headers, body)
        except ApiError as e:
            sys.exit("request %d (%s): %s: %s" % (n + 1, headers.get("x-tc-action"), e.code, e.message))
        finally:
            time.time = real_time
        n += 1
    print("verified %d" % n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret-id")
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--token")
    ap.add_argument("--log")
    ap.add_argument("--verify", action="store_true")
    cfg = ap.parse_args()
    if cfg.verify:
        cfg.token = None  # a dry run hides it
        return verify(cfg)
    if not cfg.secret_id:
        ap.error("--secret-id is required")
    state = State()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, response):
            response["RequestId"] = str(uuid.uuid4())
            body = json.dumps({"Response": response}).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                if self.path != "/":
                    raise ApiError("InvalidParameter", "the path must be /")
                headers = {k.lower(): v for k, v in self.headers.items()}
                check_signature(cfg, "POST", headers, body)
                action = self.headers.get("X-TC-Action", "")
                if self.headers.get("X-TC-Version") != VERSION:
                    raise ApiError("InvalidParameterValue", "X-TC-Version must be %s" % VERSION)
                region = self.headers.get("X-TC-Region", "")
                if not region:
                    raise ApiError("MissingParameter", "X-TC-Region is required")
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    raise ApiError("InvalidParameter", "Content-Type must be application/json")
                try:
                    params = json.loads(body)
                except ValueError:
                    raise ApiError("InvalidParameter", "the body is not JSON")
                if cfg.log:
                    with open(cfg.log, "a") as f:
                        f.write(json.dumps({"action": action, "region": region, "params": params,
                                            "token": self.headers.get("X-TC-Token") is not None}) + "\n")
                self.answer(state.call(action, params))
            except ApiError as e:
                self.answer({"Error": {"Code": e.code, "Message": e.message}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
