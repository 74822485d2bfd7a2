"""The official Python SDK against exaid's /mcp: list tools, call chat."""
import asyncio, json, os, sys
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client, create_mcp_http_client

async def main():
    url, token = sys.argv[1], os.environ["EXAID_TOKEN"]
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport) as client:
            print("protocol", client.protocol_version)
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            chat = next(t for t in tools.tools if t.name == "chat")
            assert chat.annotations and chat.annotations.read_only_hint, chat
            print(f"tools {len(names)}: {', '.join(names)}")
            result = await client.call_tool("chat", {"prompt": "hello from the Python SDK"})
            text = result.content[0].text
            assert not result.is_error and "hello from the Python SDK" in text, text
            assert result.structured_content and result.structured_content["status"], result
            print("chat ok:", json.loads(text)["status"])

asyncio.run(main())
