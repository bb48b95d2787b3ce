"""A stateless pipeline: filter, map, split, repartition and a dead-letter queue.

    python scripts/kafka start
    python examples/clicks_pipeline.py describe      # print the topology
    python examples/clicks_pipeline.py worker        # run it (Ctrl-C stops it cleanly)
    streams send examples.clicks_pipeline:app clicks --key ada --value '{"user": "ada", "page": "/", "ms": 1500}'
    streams tail examples.clicks_pipeline:app slow-clicks --follow

It reads JSON clicks such as {"user": "ada", "page": "/home", "ms": 120} from
"clicks", writes slow page loads to "slow-clicks" keyed by page, and splits
clicks into "mobile-clicks" and "desktop-clicks".  A record that is not valid
JSON, or lacks a field, lands in "clicks-pipeline-dlq" with headers saying why.
"""

from streams import App

app = App("clicks-pipeline", on_error="dlq", commit_interval=1.0)

# Declared topics: the worker creates the missing ones when it starts.
clicks_topic = app.topic("clicks", partitions=4, key_serde="str", value_serde="json")
slow_clicks = app.topic("slow-clicks", partitions=4)
mobile_clicks = app.topic("mobile-clicks", partitions=4)
desktop_clicks = app.topic("desktop-clicks", partitions=4)

clicks = app.stream(clicks_topic)

slow = clicks.filter(lambda user, click: click["ms"] > 1000).map(lambda user, click: (click["page"], click["ms"]))
slow.repartition(name="slow-by-page").to(slow_clicks)

by_device = clicks.split({"mobile": lambda user, click: click.get("device") == "mobile"}, default="desktop")
by_device["mobile"].map_values(lambda click: {**click, "mobile": True}).to(mobile_clicks)
by_device["desktop"].to(desktop_clicks)

if __name__ == "__main__":
    app.main()
