"""The five examples of Asana's generated asyncio client documentation run on our client.

Only the edits the issue allows are applied: ``asana_asyncio`` -> ``asana_webhooks``,
``async with`` -> ``with``, ``await`` dropped, ``true`` -> ``True``. The documentation's
examples use ``os.environ`` without importing ``os``; the namespace they run in provides it,
as the script around them would. Asana is replaced by ``responses`` at the real host.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.parse
from pathlib import Path

import pytest
import responses

DOC = Path(__file__).parent / "data" / "WebhooksApi-asyncio.md"
HOST = "https://app.asana.com/api/1.0"
TOKEN = "2/1234567890/doc-example-token"

WEBHOOK = {
    "gid": "12345",
    "resource_type": "webhook",
    "active": True,
    "resource": {"gid": "51648", "resource_type": "project", "name": "Bugs"},
    "target": "https://example.com/receive-webhook/7654",
    "created_at": "2012-02-22T02:06:58.147Z",
    "last_success_at": None,
    "filters": [],
}


def examples() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = {}
    for block in blocks:
        name = re.search(r"api_instance\.(\w+)\(", block)
        assert name, "every example calls one method of api_instance"
        found[name.group(1)] = block
    return found


def convert(source: str) -> str:
    source = source.replace("asana_asyncio", "asana_webhooks")
    source = source.replace("async with", "with")
    source = source.replace("await ", "")
    return re.sub(r"\btrue\b", "True", source)


def test_the_documentation_has_the_five_examples() -> None:
    assert sorted(examples()) == [
        "create_webhook",
        "delete_webhook",
        "get_webhook",
        "get_webhooks",
        "update_webhook",
    ]


@pytest.fixture
def asana() -> responses.RequestsMock:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        single = re.compile(re.escape(HOST) + r"/webhooks/\w+")
        listing = re.compile(re.escape(HOST) + r"/webhooks(\?.*)?$")
        mock.add(responses.GET, single, json={"data": WEBHOOK})
        mock.add(responses.PUT, single, json={"data": WEBHOOK})
        mock.add(responses.DELETE, single, json={"data": {}})
        mock.add(responses.GET, listing, json={"data": [WEBHOOK], "next_page": None})
        mock.add(
            responses.POST,
            listing,
            status=400,
            json={"errors": [{"message": "You should specify one of resource"}]},
        )
        yield mock


def run_example(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import os

    monkeypatch.setenv("ACCESS_TOKEN", TOKEN)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(convert(examples()[name]), f"<{name} example>", "exec"), {"os": os})  # noqa: S102
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "method", "path"),
    [
        ("get_webhook", "GET", "/api/1.0/webhooks/12345"),
        ("get_webhooks", "GET", "/api/1.0/webhooks"),
        ("update_webhook", "PUT", "/api/1.0/webhooks/12345"),
        ("delete_webhook", "DELETE", "/api/1.0/webhooks/12345"),
    ],
)
def test_example_runs_and_prints_a_typed_response(
    name: str,
    method: str,
    path: str,
    asana: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printed = run_example(name, monkeypatch)
    assert f"The response of WebhooksApi->{name}:" in printed, printed
    assert "Exception when calling" not in printed, printed
    (call,) = asana.calls
    request = call.request
    url = urllib.parse.urlsplit(request.url)
    assert (request.method, url.path) == (method, path)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    query = urllib.parse.parse_qs(url.query)
    assert query["opt_pretty"] == ["true"]
    if name != "delete_webhook":
        fields = query["opt_fields"][0].split(",")
        assert "last_failure_content" in fields and "resource.name" in fields
        assert not any('"' in f or "[" in f for f in fields), fields
    if name == "get_webhooks":
        assert query["workspace"] == ["1331"] and query["limit"] == ["50"]
        assert query["resource"] == ["51648"]
        assert "GetWebhooks200Response" in printed
    if name == "update_webhook":
        assert json.loads(request.body) == {"data": {}}
    if name == "delete_webhook":
        assert "EmptyResponse(data={})" in printed
    else:
        assert "WebhookResponse(gid='12345'" in printed
    assert TOKEN not in printed


def test_create_example_runs_and_reports_the_missing_webhook_data(
    asana: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documentation's example sends an empty CreateWebhookRequest(); we refuse it before
    # it leaves, with a message that says what to fill in, and the example prints it.
    printed = run_example("create_webhook", monkeypatch)
    assert "Exception when calling WebhooksApi->create_webhook" in printed
    assert "create_webhook_request.data is missing" in printed
    assert asana.calls == [] or len(asana.calls) == 0
