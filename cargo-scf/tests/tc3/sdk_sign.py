"""Signs with Tencent's own Python SDK (tencentcloud-sdk-python-common), for cargo scf's tests.

Reads JSON from stdin: {"secret_id", "secret_key", "token", "region", "host", "timestamp",
"cases": [{"action", "params", "body"}]}. For each case it prints one JSON line:
- "sdk": the request the SDK builds for action and params at that time (its headers and body);
- "ours": the signature the SDK computes over "body", the bytes cargo scf sends.
"""
import json
import sys

from tencentcloud.common import abstract_client, credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile


def main():
    job = json.load(sys.stdin)
    ts = int(job["timestamp"])
    # The SDK reads the clock once per request; the test fixes it.
    abstract_client.time.time = lambda: ts
    cred = credential.Credential(job["secret_id"], job["secret_key"], job.get("token") or None)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=job["host"]))
    client = CommonClient("scf", "2018-04-16", cred, job["region"], profile=profile)
    for case in job["cases"]:
        req = RequestInternal(job["host"], "POST", "/", header={})
        client._build_req_with_tc3_signature(case["action"], case["params"], req)
        sdk = {"headers": dict(req.header), "body": req.data}
        ours = RequestInternal(job["host"], "POST", "/", header={
            "Content-Type": "application/json",
            "Host": job["host"],
            "X-TC-Timestamp": str(ts),
        })
        ours.data = case["body"]
        date = abstract_client.datetime.utcfromtimestamp(ts).strftime("%Y-%m-%d")
        signature = client._get_tc3_signature(case["params"], ours, date, "scf", job["secret_key"])
        print(json.dumps({"sdk": sdk, "ours": signature}), flush=True)


if __name__ == "__main__":
    main()
