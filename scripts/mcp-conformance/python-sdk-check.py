"""The official Python SDK against exaid's /mcp: list tools, call chat, and call chat again
through a proxy that cuts the call's stream before its result (the SDK must resume with
Last-Event-ID, and the daemon must neither cancel the call nor run it twice).

Usage: python-sdk-check.py URL DROPPING_URL METRICS_URL (token in EXAID_TOKEN)."""
import asyncio, json, os, sys, urllib.request
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client, create_mcp_http_client


def chat_calls(metrics_url):
    """exaid_calls_total of the chat tool, by outcome."""
    text = urllib.request.urlopen(metrics_url).read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith('exaid_calls_total{') and 'tool="chat"' in line:
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = counts.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
    return counts


async def call_chat(url, token, prompt, on_progress=None):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            result = await client.call_tool("chat", {"prompt": prompt},
                                            progress_callback=on_progress)
            text = result.content[0].text
            assert not result.is_error and prompt in text, text
            assert result.structured_content and result.structured_content["status"], result
            return client.protocol_version, json.loads(text)["status"]


async def main():
    url, dropping_url, metrics_url = sys.argv[1:4]
    token = os.environ["EXAID_TOKEN"]
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            print("protocol", client.protocol_version)
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            chat = next(t for t in tools.tools if t.name == "chat")
            assert chat.annotations and chat.annotations.read_only_hint, chat
            print(f"tools {len(names)}: {', '.join(names)}")
    _, status = await call_chat(url, token, "hello from the Python SDK")
    print("chat ok:", status)

    progress = []
    async def on_progress(value, total, message):
        progress.append(message)
    _, status = await call_chat(dropping_url, token, "asked once, stream cut", on_progress)
    calls = chat_calls(metrics_url)
    assert calls.get("CANCELLED", 0) == 0, calls
    assert calls.get("OK", 0) == 2, calls
    print(f"chat through a cut stream ok: {status}, after {len(progress)} progress "
          f"notification(s); chat calls by outcome: {calls}")

asyncio.run(main())
