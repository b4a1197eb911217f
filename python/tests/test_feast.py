"""Real Feast (PyPI `feast`) as a client of asof: a Feast repo whose `feature_store.yaml` points its
online store at asof's HTTP endpoints and its offline store at asof's Arrow Flight, with the same
definitions as the asof repo. What Feast returns must be exactly what asof's own paths return."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests

from asof import Store

feast = pytest.importorskip("feast")

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
]


@pytest.fixture(scope="module")
def feast_store(server, tmp_path_factory):
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Int64

    repo = tmp_path_factory.mktemp("feast_repo")
    http_host, http_port = server.http.rsplit(":", 1)
    flight_host, flight_port = server.flight.rsplit(":", 1)
    (repo / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: rideshare
        provider: local
        registry: {repo / 'registry.db'}
        entity_key_serialization_version: 3
        online_store:
          type: remote
          path: http://{http_host}:{http_port}
        offline_store:
          type: remote
          host: {flight_host}
          port: {flight_port}
        """))
    store = FeatureStore(repo_path=str(repo))
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="driver_stats_source",
        path=str(server.repo / "data" / "driver_stats.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        field_mapping={"trips_today": "avg_daily_trips"},
    )
    view = FeatureView(
        name="driver_hourly_stats",
        entities=[driver],
        ttl=dt.timedelta(days=1),
        schema=[
            Field(name="driver_id", dtype=Int64),
            Field(name="conv_rate", dtype=Float32),
            Field(name="acc_rate", dtype=Float32),
            Field(name="avg_daily_trips", dtype=Int64),
        ],
        online=True,
        source=source,
    )
    store.apply([driver, source, view])
    return store


def test_feast_get_online_features_equals_asof_grpc(server, feast_store):
    drivers = [1001, 1002, 1003, 424242]
    got = feast_store.get_online_features(
        features=FEATURES, entity_rows=[{"driver_id": d} for d in drivers]
    ).to_dict()
    with Store(server.url) as asof:
        expected = asof.get_online_features(
            features=FEATURES, entity_rows=[{"driver_id": d} for d in drivers]
        ).to_dict()
    assert got == expected
    assert got["driver_id"] == drivers and got["conv_rate"][-1] is None
    assert any(v is not None for v in got["conv_rate"])


def test_feast_get_historical_features_equals_asof_training_set(server, feast_store):
    from conftest import run

    entities_path = server.repo / "data" / "entities.parquet"
    entity_df = pq.read_table(entities_path, columns=["driver_id", "event_timestamp"]).to_pandas()
    got = feast_store.get_historical_features(entity_df=entity_df, features=FEATURES).to_df()
    out = entities_path.parent / "feast_expected.parquet"
    run(server.repo, "training-set", "--entities", str(entities_path), "--features", ",".join(FEATURES),
        "--output", str(out))
    expected = pq.read_table(out, columns=["driver_id", "event_timestamp", "conv_rate", "acc_rate", "avg_daily_trips"]).to_pandas()
    assert len(got) == len(expected) > 100
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def test_feast_writes_reach_asof_through_write_to_online_store(server, feast_store):
    now = pd.Timestamp.now(tz="UTC").floor("s")
    rows = pd.DataFrame({
        "driver_id": [880001],
        "event_timestamp": [now - pd.Timedelta(minutes=1)],
        "created": [now - pd.Timedelta(minutes=1)],
        "conv_rate": [0.125],
        "acc_rate": [0.5],
        "avg_daily_trips": [7],
    })
    feast_store.write_to_online_store("driver_hourly_stats", rows)
    with Store(server.url) as asof:
        got = asof.get_online_features(features=FEATURES, entity_rows=[{"driver_id": 880001}]).to_dict()
    assert got["conv_rate"] == [0.125] and got["avg_daily_trips"] == [7]


def test_feast_http_shapes_and_errors(server):
    base = f"http://{server.http}"
    assert requests.get(f"{base}/health").status_code == 200
    r = requests.post(f"{base}/get-online-features", json={
        "features": ["driver_hourly_stats:conv_rate"],
        "entities": {"driver_id": [1001, 424242]},
        "full_feature_names": True,
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["feature_names"] == ["driver_id", "driver_hourly_stats__conv_rate"]
    keys, conv = body["results"]
    assert keys["values"] == [1001, 424242] and keys["statuses"] == ["PRESENT", "PRESENT"]
    assert keys["event_timestamps"] == ["1970-01-01T00:00:00Z"] * 2
    assert conv["statuses"][1] == "NOT_FOUND" and conv["values"][1] is None

    # Push to a source name: every view over it gets the rows.
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    r = requests.post(f"{base}/push", json={
        "push_source_name": "driver_stats_source",
        "df": {"driver_id": [770001], "event_timestamp": [now.isoformat()], "conv_rate": [0.5],
               "acc_rate": [0.25], "avg_daily_trips": [2]},
        "to": "online",
    })
    assert r.status_code == 200, r.text
    r = requests.post(f"{base}/get-online-features", json={
        "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        "entities": {"driver_id": [770001]},
    })
    assert [res["values"] for res in r.json()["results"][1:]] == [[0.5], [2]]

    # Errors: Feast's status codes, and its body (a JSON string holding module, class, message).
    def error(r):
        detail = json.loads(r.json())
        assert detail["module"] == "feast.errors"
        return detail

    r = requests.post(f"{base}/get-online-features", json={"features": ["nope:x"], "entities": {"driver_id": [1]}})
    assert r.status_code == 404 and error(r)["class"] == "FeatureViewNotFoundException"
    r = requests.post(f"{base}/push", json={"push_source_name": "driver_stats_sourc", "df": {}})
    assert r.status_code == 422 and "driver_stats_source" in error(r)["message"]
    r = requests.post(f"{base}/get-online-features", data=b"{not json")
    assert r.status_code == 422 and "line 1" in error(r)["message"]
    r = requests.post(f"{base}/push", json={"push_source_name": "driver_stats_source", "to": "online",
                                             "df": {"driver_id": [1], "event_timestamp": ["yesterday"]}})
    assert r.status_code == 422 and "event_timestamp" in error(r)["message"]
    assert requests.get(f"{base}/health").status_code == 200
