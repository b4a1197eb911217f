"""The Python package against a real `asof serve`: every answer is checked against another path
of asof itself (the CLI's training set, the online store read through gRPC at the same instant),
so the client cannot drift from the server's semantics."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from asof import AsofError, Store

from conftest import run

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:avg_daily_trips",
    "customer_profile:segment",
]


@pytest.fixture(scope="module")
def store(server):
    with Store(server.url) as s:
        yield s


def cli_training_set(repo, entities_path, features, *flags) -> pa.Table:
    out = entities_path.parent / f"cli-{abs(hash((str(entities_path), tuple(features), flags)))}.parquet"
    run(repo, "training-set", "--entities", str(entities_path), "--features", ",".join(features),
        "--output", str(out), *flags)
    return pq.read_table(out)


def test_training_sets_over_flight_equal_the_cli_for_pandas_polars_and_arrow(repo, store):
    entities = repo / "data" / "entities.parquet"
    expected = cli_training_set(repo, entities, FEATURES)
    table = pq.read_table(entities)
    assert expected.num_rows == table.num_rows > 100
    for given in (table, table.to_pandas(), pl.from_arrow(table)):
        got = store.get_historical_features(given, features=FEATURES)
        assert got.to_arrow().column_names == expected.column_names
        assert got.to_arrow().equals(expected.cast(got.to_arrow().schema)), type(given)
    frame = store.get_historical_features(table, features=FEATURES).to_pandas()
    pd.testing.assert_frame_equal(frame, expected.to_pandas(), check_dtype=False)
    assert store.get_historical_features(table, features=FEATURES).to_polars().height == table.num_rows


def test_training_set_options_reach_the_join(repo, store):
    entities = repo / "data" / "entities.parquet"
    expected = cli_training_set(repo, entities, FEATURES, "--full-feature-names", "--with-timestamps")
    got = store.get_historical_features(
        pq.read_table(entities), features=FEATURES, full_feature_names=True, with_timestamps=True
    ).to_arrow()
    assert "driver_hourly_stats__conv_rate" in got.column_names
    assert "driver_hourly_stats__event_timestamp" in got.column_names
    assert got.column_names == expected.column_names
    assert got.to_pandas().equals(expected.to_pandas())


def test_a_service_names_its_features(repo, store):
    entities = pq.read_table(repo / "data" / "entities.parquet")
    got = store.get_historical_features(entities, feature_service="driver_activity").to_arrow()
    assert {"conv_rate", "acc_rate", "segment"} <= set(got.column_names)


def test_bad_training_set_requests_name_the_problem(repo, store):
    entities = pq.read_table(repo / "data" / "entities.parquet")
    with pytest.raises(AsofError) as e:
        store.get_historical_features(entities, features=["driver_hourly_stats:conv_rat"])
    assert "conv_rat" in e.value.message and "conv_rate" in e.value.message
    with pytest.raises(AsofError) as e:
        store.get_historical_features(entities.drop(["driver_id"]), features=FEATURES)
    assert "driver_id" in e.value.message
    # The server keeps serving after bad requests.
    assert store.get_historical_features(entities.slice(0, 3), features=FEATURES).to_arrow().num_rows == 3


def test_online_features_equal_the_training_set_at_the_same_instant(repo, store):
    entities = pq.read_table(repo / "data" / "entities.parquet").to_pandas()
    drivers = sorted(entities["driver_id"].unique().tolist())[:5]
    as_of = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    online = store.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        entity_rows=[{"driver_id": d} for d in drivers],
        as_of=as_of,
    )
    table = pa.table({"driver_id": pa.array(drivers, pa.int64()),
                      "event_timestamp": pa.array([as_of] * len(drivers), pa.timestamp("us", "UTC"))})
    offline = store.get_historical_features(
        table, features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"]
    ).to_pandas()
    got = online.to_dict()
    assert got["driver_id"] == drivers
    assert got["avg_daily_trips"] == [None if pd.isna(v) else int(v) for v in offline["avg_daily_trips"]]
    assert got["conv_rate"] == pytest.approx([None if pd.isna(v) else float(v) for v in offline["conv_rate"]])
    assert set(online.statuses[1]) <= {"PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"}
    assert online.to_pandas().shape == (len(drivers), 3)


def test_pushed_rows_are_served_online_and_joined_offline(repo, store):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    rows = pd.DataFrame({
        "driver_id": [990001, 990002],
        "event_timestamp": [now - dt.timedelta(minutes=5)] * 2,
        "created": [now - dt.timedelta(minutes=5)] * 2,
        "conv_rate": pd.array([0.25, 0.75], dtype="float32"),
        "acc_rate": pd.array([0.5, 0.5], dtype="float32"),
        "avg_daily_trips": [3, 4],
    })
    written = store.push("driver_hourly_stats", rows, to="online_and_offline")
    assert written == {"written": 2, "skipped": 0, "logged": 2}
    online = store.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"],
        entity_rows={"driver_id": [990001, 990002, 990003]},
    ).to_dict()
    assert online["conv_rate"] == [0.25, 0.75, None]
    assert online["avg_daily_trips"] == [3, 4, None]
    entities = pa.table({"driver_id": [990001, 990002], "event_timestamp": pa.array([now, now], pa.timestamp("us", "UTC"))})
    offline = store.get_historical_features(entities, features=["driver_hourly_stats:conv_rate"]).to_pandas()
    assert offline["conv_rate"].tolist() == pytest.approx([0.25, 0.75])
    # Before the pushed event, neither path knows it.
    earlier = now - dt.timedelta(minutes=10)
    assert store.get_online_features(
        features=["driver_hourly_stats:conv_rate"], entity_rows=[{"driver_id": 990001}], as_of=earlier
    ).statuses[1] == ["NOT_FOUND"]


def test_bad_online_requests_raise_with_the_server_message(store):
    with pytest.raises(AsofError) as e:
        store.get_online_features(features=["no_such_view:x"], entity_rows=[{"driver_id": 1}])
    assert e.value.code == "INVALID_ARGUMENT" and "no_such_view" in e.value.message
    with pytest.raises(AsofError) as e:
        store.get_online_features(features=["driver_hourly_stats:conv_rate"], entity_rows=[{"driver_id": "x"}])
    assert "driver_id" in e.value.message
    with pytest.raises(ValueError):
        store.push("driver_hourly_stats", pd.DataFrame({"driver_id": [1]}), to="somewhere")


def test_search_and_retrieve_and_rank(store):
    found = store.search("help_articles", "refund to my card", k=5)
    assert 0 < len(found.hits) <= 5 and not found.abstained
    assert found.hits == sorted(found.hits, key=lambda h: -h["score"])
    assert found.to_pandas().shape[0] == len(found.hits)
    sparse = store.search("help_articles", "refund", k=3, mode="sparse")
    assert all("refund" in h["text"].lower() for h in sparse.hits)
    ranked = store.retrieve_and_rank("help_articles", "refund", k=5)
    assert ranked.features is not None
    names = ranked.features.feature_names
    assert names[0] == "doc_id" and "popularity" in names
    # One feature row per hit, in hit order.
    assert ranked.features.values[0] == [h["doc_id"] for h in ranked.hits]
    frame = ranked.to_pandas()
    assert list(frame["doc_id"]) == [h["doc_id"] for h in ranked.hits] and "popularity" in frame


def test_list_feature_views(store):
    views = {v["name"]: v for v in store.list_feature_views()}
    assert views["driver_hourly_stats"]["join_keys"] == ["driver_id"]
    assert views["driver_hourly_stats"]["features"]["conv_rate"] == "float32"


def test_tokens_guard_grpc_and_flight(repo, tmp_path):
    from conftest import start_server, stop

    import shutil
    secured = tmp_path / "secured"
    shutil.copytree(repo, secured)
    config = secured / "feature_store.yaml"
    (secured / "tokens").write_text("s3cret\n")
    config.write_text(config.read_text() + "serving:\n  auth: {tokens_file: tokens}\n")
    server = start_server(secured)
    try:
        entities = pq.read_table(secured / "data" / "entities.parquet").slice(0, 2)
        with Store(server.url) as anonymous:
            with pytest.raises(AsofError) as e:
                anonymous.get_online_features(features=["driver_hourly_stats:conv_rate"], entity_rows=[{"driver_id": 1001}])
            assert e.value.code == "UNAUTHENTICATED"
            with pytest.raises(AsofError) as e:
                anonymous.get_historical_features(entities, features=FEATURES)
            assert "token" in e.value.message
        with Store(server.url, token="s3cret") as s:
            assert s.get_historical_features(entities, features=FEATURES).to_arrow().num_rows == 2
            assert s.get_online_features(features=["driver_hourly_stats:conv_rate"], entity_rows=[{"driver_id": 1001}]).feature_names[1] == "conv_rate"
        # Feast's HTTP endpoints and MCP over HTTP take the same tokens; /health stays open.
        import requests

        base = f"http://{server.http}"
        body = {"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}
        r = requests.post(f"{base}/get-online-features", json=body)
        assert r.status_code == 401 and "token" in r.text
        r = requests.post(f"{base}/get-online-features", json=body, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200, r.text
        assert requests.post(f"{base}/mcp", json={}, headers={"Accept": "application/json, text/event-stream"}).status_code == 401
        assert requests.get(f"{base}/health").status_code == 200
    finally:
        stop(server)


def _make_certs(dir):
    """A private CA and a server certificate for 127.0.0.1, with Debian's openssl."""
    import subprocess

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=dir, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=asof test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=asof test server")
    (dir / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                                    "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def test_tls_covers_grpc_and_flight(repo, tmp_path):
    from conftest import start_server, stop

    _make_certs(tmp_path)
    server = start_server(repo, "--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"))
    try:
        ca = (tmp_path / "ca.pem").read_bytes()
        entities = pq.read_table(repo / "data" / "entities.parquet").slice(0, 4)
        with Store(f"grpcs://{server.grpc}", root_certificates=ca) as s:
            assert s.get_historical_features(entities, features=FEATURES).to_arrow().num_rows == 4
            assert s.get_online_features(features=["driver_hourly_stats:conv_rate"], entity_rows=[{"driver_id": 1001}]).feature_names == ["driver_id", "conv_rate"]
        # Plaintext clients are turned away (a plaintext HTTP/2 preface never completes a TLS
        # handshake, so the call is bounded by its timeout).
        with Store(server.url, timeout=10) as plain:
            with pytest.raises(AsofError):
                plain.get_historical_features(entities, features=FEATURES)
    finally:
        stop(server)


def test_feasts_older_flight_flow_put_info_get(repo, server):
    """Feast before 0.47 uploads with DoPut, then asks GetFlightInfo and DoGet for the ticket."""
    import json

    import pyarrow.flight as flight

    client = flight.FlightClient(f"grpc+tcp://{server.flight}")
    entities = pq.read_table(repo / "data" / "entities.parquet").slice(0, 50)
    command = {"command_id": "c1", "api": "get_historical_features", "feature_view_names": ["driver_hourly_stats"],
               "feature_refs": FEATURES, "project": "rideshare", "full_feature_names": False, "name_aliases": [None]}
    descriptor = flight.FlightDescriptor.for_command(json.dumps(command))
    writer, _ = client.do_put(descriptor, entities.schema)
    writer.write_table(entities)
    writer.close()
    info = client.get_flight_info(descriptor)
    got = client.do_get(info.endpoints[0].ticket).read_all()
    with Store(server.url) as s:
        expected = s.get_historical_features(entities, features=FEATURES).to_arrow()
    assert got.equals(expected)
    # A ticket is good for one DoGet.
    with pytest.raises(pa.ArrowKeyError, match="already fetched"):
        client.do_get(info.endpoints[0].ticket).read_all()
    # Another project's request is refused by name.
    wrong = flight.FlightDescriptor.for_command(json.dumps({**command, "project": "other"}))
    with pytest.raises(pa.ArrowInvalid, match="rideshare"):
        writer, _ = client.do_put(wrong, entities.schema)
        writer.write_table(entities)
        writer.close()
