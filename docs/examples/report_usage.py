"""Report usage to meterdesk from your own server: the README's example, run as written by tests/api/test_readme.py.

    METERDESK_URL=http://127.0.0.1:8080 METERDESK_API_KEY=mdk_... python report_usage.py
"""

import os
import time
import uuid

import httpx

METERDESK_URL = os.environ.get("METERDESK_URL", "http://127.0.0.1:8080")
API_KEY = os.environ["METERDESK_API_KEY"]  # from `meterdesk apikey create my-backend --scope usage:write,usage:read`

client = httpx.Client(base_url=METERDESK_URL, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)


def report_usage(customer: str, unit: str, amount: str, request_id: str) -> dict:
    """Record one event. On a timeout, a dropped connection or a 5xx, send the SAME request id again:
    meterdesk counts it once and answers the retry with the original entry (`"duplicate": true`)."""
    event = {"customer": customer, "unit": unit, "amount": amount, "request_id": request_id}
    for attempt in range(5):
        try:
            response = client.post("/v1/usage", json=event)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code in (200, 201):
            return response.json()
        if response is not None and response.status_code not in (429, 503) and response.status_code < 500:
            response.raise_for_status()  # 4xx: the event itself is wrong; retrying will not help
        wait = int(response.headers.get("Retry-After", 1)) if response is not None else 2**attempt
        time.sleep(wait)
    raise RuntimeError(f"meterdesk did not answer for request {request_id}; retry later with the same id")


# One id per real-world event, made once and kept with it (e.g. your own request or job id).
request_id = f"job-{uuid.uuid4()}"
result = report_usage("acme", "api_calls", "1500", request_id)
print(result["entry_id"], result["duplicate"], result["charged"], result["balance"])

again = report_usage("acme", "api_calls", "1500", request_id)  # a retry: counted once
assert again["duplicate"] and again["entry_id"] == result["entry_id"]

summary = client.get("/v1/usage/summary", params={"customer": "acme"}).json()
print(summary["total"], summary["currency"])
