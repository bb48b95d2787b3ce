"""describe(): the topology as text and as Mermaid, from the API and from the command line."""

from __future__ import annotations

import subprocess
import sys

from streams import App
from tests.process_helpers import REPO


def clicks_app() -> App:
    app = App("shop", brokers="unused:9092")
    clicks = app.stream("clicks")
    clicks.filter(lambda k, v: v["ok"], name="only-ok").to("ok-clicks")
    clicks.group_by(lambda k, v: v["user"], name="by-user").count(name="per-user").to_stream().to("counts")
    return app


EXPECTED_TEXT = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [clicks])
      --> only-ok, by-user-key-select
    Processor: only-ok
      --> KSTREAM-SINK-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Sink: KSTREAM-SINK-0000000002 (topic: ok-clicks)
      <-- only-ok
    Processor: by-user-key-select
      --> by-user-sink
      <-- KSTREAM-SOURCE-0000000000
    Sink: by-user-sink (topic: shop-by-user-repartition)
      <-- by-user-key-select
   Sub-topology: 1
    Source: by-user-source (topics: [shop-by-user-repartition])
      --> KSTREAM-COUNT-0000000006
    Processor: KSTREAM-COUNT-0000000006 (stores: [per-user])
      --> KSTREAM-SINK-0000000007
      <-- by-user-source
    Sink: KSTREAM-SINK-0000000007 (topic: counts)
      <-- KSTREAM-COUNT-0000000006
    Store: per-user (changelog: shop-per-user-changelog)
"""


def test_describe_text_lists_subtopologies_sources_processors_sinks_and_stores():
    assert clicks_app().describe() == EXPECTED_TEXT


def test_describe_mermaid_links_topics_processors_and_stores():
    mermaid = clicks_app().describe(mermaid=True)
    assert mermaid.startswith("flowchart TD\n")
    assert 'subgraph sub0["Sub-topology 0"]' in mermaid and 'subgraph sub1["Sub-topology 1"]' in mermaid
    assert '[("shop-by-user-repartition")]' in mermaid
    assert '{{"per-user"}}' in mermaid
    lines = mermaid.splitlines()
    node_ids = {line.split("[")[0].strip(): line.split('"')[1] for line in lines if line.strip().startswith("n")
                and "[" in line and "-->" not in line and "-.-" not in line}
    assert set(node_ids.values()) >= {"only-ok", "by-user-sink", "by-user-source", "KSTREAM-COUNT-0000000006"}


def test_streams_describe_command(tmp_path):
    module = tmp_path / "describe_me.py"
    module.write_text("from tests.test_describe import clicks_app\napp = clicks_app()\n")
    result = subprocess.run([sys.executable, "-m", "streams", "describe", "describe_me:app"], cwd=tmp_path,
                            env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_TEXT
    mermaid = subprocess.run([sys.executable, "-m", "streams", "describe", "--mermaid", "describe_me:app"],
                             cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60)
    assert mermaid.stdout.startswith("flowchart TD")


def test_describe_shows_global_tables_and_their_readers():
    app = App("shop", brokers="unused:9092")
    products = app.global_table("products-topic", name="products")
    app.global_table("regions-topic", name="regions")
    app.stream("orders").join(products, lambda k, o: o["product"], lambda o, p: [o, p], name="pricing").to("priced")
    text = app.describe()
    assert text.endswith("    Sink: KSTREAM-SINK-0000000002 (topic: priced)\n      <-- pricing\n"
                         "   Global table: products (topic: products-topic, a full copy in every worker)\n"
                         "      read by: pricing\n"
                         "   Global table: regions (topic: regions-topic, a full copy in every worker)\n")
    mermaid = app.describe(mermaid=True).splitlines()
    topic = next(line.split("[")[0].strip() for line in mermaid if '[("products-topic")]' in line)
    pricing = next(line.split("[")[0].strip() for line in mermaid if line.strip().endswith('["pricing"]'))
    assert f'    {topic} --> s_products{{{{"products (global)"}}}}' in mermaid
    assert f"    {pricing} -.- s_products" in mermaid
    assert any('[("regions-topic")]' in line for line in mermaid)
    assert any('s_regions{{"regions (global)"}}' in line for line in mermaid)
