"""asof's MCP server through the official Python MCP client (PyPI `mcp`), over stdio (`asof mcp`)
and streamable HTTP (`asof serve --mcp`)."""

from __future__ import annotations

import asyncio
import json

import pytest

mcp = pytest.importorskip("mcp")

from asof import Store  # noqa: E402

from conftest import asof_bin  # noqa: E402

READ_TOOLS = {
    "list_feature_views",
    "describe",
    "get_online_features",
    "search_documents",
    "retrieve_and_rank",
    "status",
}


def text(result) -> str:
    return "".join(c.text for c in result.content if getattr(c, "text", None) is not None)


async def exercise(client, server_url: str) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == READ_TOOLS, "read-only by default: no push tool"
    schema = tools["get_online_features"].input_schema
    assert "entities" in schema["properties"] and "entities" in schema.get("required", [])

    views = json.loads(text(await client.call_tool("list_feature_views", {})))
    names = {v["name"] for v in views["feature_views"]}
    assert {"driver_hourly_stats", "document_clicks"} <= names

    described = json.loads(text(await client.call_tool("describe", {"name": "driver_hourly_stats"})))
    assert described["kind"] == "feature_view" and described["definition"]["source"] == "driver_stats_source"

    args = {"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001, 1002]}}
    result = await client.call_tool("get_online_features", args)
    assert not result.is_error
    served = json.loads(text(result))
    with Store(server_url) as asof:
        expected = asof.get_online_features(features=args["features"], entity_rows=args["entities"])
    assert served["metadata"]["feature_names"] == expected.feature_names
    assert served["results"][1]["values"] == pytest.approx(expected.values[1])

    # Bad arguments are tool errors an agent can act on, and the server keeps serving.
    bad = await client.call_tool("get_online_features", {"features": ["driver_hourly_stats:conv_rat"], "entities": {"driver_id": [1]}})
    assert bad.is_error and "conv_rate" in text(bad)
    bad = await client.call_tool("describe", {"name": "driver_hourly_stat"})
    assert bad.is_error and "driver_hourly_stats" in text(bad)
    bad = await client.call_tool("search_documents", {"index": "help_articles", "query": "refund", "mode": "fuzzy"})
    assert bad.is_error and "hybrid" in text(bad)

    found = json.loads(text(await client.call_tool("search_documents", {"index": "help_articles", "query": "refund to my card", "k": 3})))
    assert 0 < len(found["hits"]) <= 3
    ranked = json.loads(text(await client.call_tool("retrieve_and_rank", {"index": "help_articles", "query": "refund", "k": 3})))
    assert ranked["features"]["metadata"]["feature_names"][0] == "doc_id"
    status = json.loads(text(await client.call_tool("status", {})))
    assert any(v["view"] == "driver_hourly_stats" and v["rows"] > 0 for v in status["views"])

    resources = (await client.list_resources()).resources
    uris = {str(r.uri) for r in resources}
    assert "asof://feature_view/driver_hourly_stats" in uris and "asof://document_index/help_articles" in uris
    read = await client.read_resource("asof://feature_view/driver_hourly_stats")
    assert json.loads(read.contents[0].text)["name"] == "driver_hourly_stats"


def test_mcp_over_stdio(repo, server):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=asof_bin(), args=["--repo", str(repo), "mcp"])

    async def main():
        async with Client(params) as client:
            await exercise(client, server.url)

    asyncio.run(main())


def test_mcp_over_streamable_http(server):
    from mcp import Client

    async def main():
        async with Client(f"http://{server.http}/mcp") as client:
            await exercise(client, server.url)

    asyncio.run(main())


def test_push_only_with_allow_push(repo, tmp_path):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=asof_bin(), args=["--repo", str(repo), "mcp", "--allow-push"])

    async def main():
        async with Client(params) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "push" in tools
            result = await client.call_tool("push", {
                "view": "driver_hourly_stats",
                "to": "online",
                "columns": {"driver_id": [660001], "event_timestamp": ["2030-01-01T00:00:00Z"], "conv_rate": [0.5]},
            })
            assert not result.is_error, text(result)
            assert json.loads(text(result))["written"] == 1
            bad = await client.call_tool("push", {"view": "driver_hourly_stats", "columns": {"driver_id": [1]}})
            assert bad.is_error and "event_timestamp" in text(bad)

    asyncio.run(main())
