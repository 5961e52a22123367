import os

from config_client import ConfigClient
from config_client.agents import build_agents

client = ConfigClient(
    os.environ["CONFIG_URL"],
    os.environ["CONFIG_API_KEY"],
    cache_path=os.environ.get("CONFIG_CACHE", "config.json"),
    poll_interval=30,
)
client.on_change(lambda bundle: print("config changed: now revision", bundle["revision"]))
client.start()  # the last-known-good file first, then the server; then polls in the background
print(f"revision {client.revision}, {client.age_seconds:.1f} s old, {client.errors} fetch errors")
secretary = client.assistant("Secretary")
print(secretary["name"], secretary["model"], [tool["name"] for tool in secretary["tools"]])

weather = {"get_weather": lambda arguments: f"Sunny in {arguments['city']}"}
agents = build_agents(client.bundle, handlers=weather)  # no network, no OpenAI key needed
for name, agent in agents.items():
    tools = [tool.name + (" (strict)" if tool.strict_json_schema else "") for tool in agent.tools]
    print(f"{name} [{agent.model}]: {', '.join(tools)}")
# With OPENAI_API_KEY: from agents import Runner; Runner.run_sync(agents["Secretary"], "Hi")
client.stop()
