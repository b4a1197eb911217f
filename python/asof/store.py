"""`Store`: one client for a running `asof serve`.

Training sets travel over Arrow Flight (the entity table up, the joined table back in batches,
on the gRPC port); everything else is the `asof.serving.v1.FeatureServing` gRPC service. Names
follow Feast's (`get_historical_features`, `get_online_features`, `push`), and every read can say
"as of when".
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlparse

import grpc
import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.timestamp_pb2 import Timestamp

from asof.serving.v1 import serving_pb2 as pb
from asof.serving.v1 import serving_pb2_grpc as pb_grpc

#: Entity tables and pushed rows: a pandas or polars DataFrame, or a pyarrow Table / RecordBatch.
TableLike = Any

_STATUS = {
    pb.PRESENT: "PRESENT",
    pb.NULL_VALUE: "NULL_VALUE",
    pb.NOT_FOUND: "NOT_FOUND",
    pb.OUTSIDE_MAX_AGE: "OUTSIDE_MAX_AGE",
}
_PUSH_TO = {
    "online_and_offline": pb.ONLINE_AND_OFFLINE,
    "online": pb.ONLINE,
    "offline": pb.OFFLINE,
}
_MODES = {
    None: pb.SEARCH_MODE_UNSPECIFIED,
    "dense": pb.SEARCH_MODE_DENSE,
    "sparse": pb.SEARCH_MODE_SPARSE,
    "hybrid": pb.SEARCH_MODE_HYBRID,
}


class AsofError(Exception):
    """A request the server refused or could not answer: `code` is the gRPC status name
    (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...) and the message says what to change."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _to_arrow(data: TableLike) -> pa.Table:
    """A pandas, polars or pyarrow table as a pyarrow Table (no index column)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    raise TypeError(
        f"expected a pandas or polars DataFrame or a pyarrow Table, not {type(data).__name__}"
    )


def _timestamp(t: Union[_dt.datetime, str, None]) -> Optional[Timestamp]:
    """A datetime (naive means UTC) or an RFC 3339 string as a protobuf Timestamp."""
    if t is None:
        return None
    if isinstance(t, str):
        t = _dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    ts = Timestamp()
    ts.FromDatetime(t.astimezone(_dt.timezone.utc))
    return ts


def _value(v: Any) -> pb.Value:
    """A Python value as an asof Value (None is null)."""
    if v is None:
        return pb.Value()
    if isinstance(v, bool):
        return pb.Value(bool_val=v)
    if isinstance(v, int):
        return pb.Value(int64_val=v)
    if isinstance(v, float):
        return pb.Value(double_val=v)
    if isinstance(v, str):
        return pb.Value(string_val=v)
    if isinstance(v, (bytes, bytearray)):
        return pb.Value(bytes_val=bytes(v))
    if isinstance(v, _dt.datetime):
        return pb.Value(timestamp_val=_timestamp(v))
    if isinstance(v, (list, tuple)):
        return pb.Value(list_val=pb.ValueList(values=[_value(i) for i in v]))
    # numpy scalars and pandas timestamps
    if hasattr(v, "to_pydatetime"):
        return _value(v.to_pydatetime())
    if hasattr(v, "item"):
        return _value(v.item())
    raise TypeError(f"cannot send {v!r} ({type(v).__name__}) as a feature value")


def _typed_value(v: Any, dtype: Optional[str]) -> pb.Value:
    """A Python value as the feature type `dtype` declares (numbers only; the rest as given)."""
    if v is None or dtype is None or isinstance(v, bool):
        return _value(v)
    if hasattr(v, "item") and not hasattr(v, "to_pydatetime"):
        v = v.item()
    if isinstance(v, (int, float)):
        if dtype == "float32":
            return pb.Value(float_val=float(v))
        if dtype == "float64":
            return pb.Value(double_val=float(v))
        if dtype == "int32" and float(v).is_integer():
            return pb.Value(int32_val=int(v))
        if dtype == "int64" and float(v).is_integer():
            return pb.Value(int64_val=int(v))
    return _value(v)


def _python(v: pb.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "timestamp_val":
        return v.timestamp_val.ToDatetime(tzinfo=_dt.timezone.utc)
    if kind == "list_val":
        return [_python(i) for i in v.list_val.values]
    return getattr(v, kind)


@dataclass
class TrainingSet:
    """A point-in-time correct training set: the entity table's rows and columns, then the
    features, row for row."""

    table: pa.Table

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self):
        return self.table.to_pandas()

    def to_polars(self):
        import polars

        return polars.from_arrow(self.table)

    def __len__(self) -> int:
        return self.table.num_rows


@dataclass
class OnlineResponse:
    """Online features in Feast's columnar shape: `feature_names` (join keys first), and per
    name its values, statuses and event timestamps, one per entity row."""

    feature_names: List[str]
    values: List[List[Any]]
    statuses: List[List[str]]
    event_timestamps: List[List[Optional[_dt.datetime]]]
    as_of: Optional[_dt.datetime] = None

    @classmethod
    def _from_proto(cls, r: pb.GetOnlineFeaturesResponse) -> "OnlineResponse":
        epoch = Timestamp()
        return cls(
            feature_names=list(r.metadata.feature_names),
            values=[[_python(v) for v in fv.values] for fv in r.results],
            statuses=[[_STATUS.get(s, "INVALID") for s in fv.statuses] for fv in r.results],
            event_timestamps=[
                [None if t == epoch else t.ToDatetime(tzinfo=_dt.timezone.utc) for t in fv.event_timestamps]
                for fv in r.results
            ],
            as_of=r.as_of.ToDatetime(tzinfo=_dt.timezone.utc) if r.HasField("as_of") else None,
        )

    def to_dict(self) -> Dict[str, List[Any]]:
        """Name -> values, as Feast's `OnlineResponse.to_dict()`."""
        return dict(zip(self.feature_names, self.values))

    def to_arrow(self) -> pa.Table:
        return pa.table(self.to_dict())

    def to_pandas(self):
        return self.to_arrow().to_pandas()


@dataclass
class SearchResult:
    """A document search: hits best first, and the contract's verdict."""

    index: str
    version: str
    model: str
    hits: List[Dict[str, Any]]
    abstained: bool = False
    excluded: Dict[str, int] = field(default_factory=dict)
    features: Optional[OnlineResponse] = None
    request_id: str = ""

    def to_arrow(self) -> pa.Table:
        """One row per hit; with `retrieve_and_rank`, each hit's document features beside it."""
        columns: Dict[str, List[Any]] = {
            name: [h[name] for h in self.hits]
            for name in ("doc_id", "chunk_id", "score", "text", "doc_version")
        }
        if self.features is not None:
            keys = set(self.features.feature_names[:1])
            for name, values in zip(self.features.feature_names, self.features.values):
                if name not in keys and name not in columns:
                    columns[name] = values
        return pa.table(columns)

    def to_pandas(self):
        return self.to_arrow().to_pandas()


def _hit(h: pb.DocumentHit) -> Dict[str, Any]:
    return {
        "doc_id": h.doc_id,
        "chunk_id": h.chunk_id,
        "score": h.score,
        "text": h.text,
        "metadata": dict(h.metadata),
        "doc_version": h.doc_version,
        "indexed_at": h.indexed_at.ToDatetime(tzinfo=_dt.timezone.utc)
        if h.HasField("indexed_at")
        else None,
    }


class Store:
    """A client of one asof server.

    `url` is `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS; `root_certificates` is
    the PEM of the CA when it is not a public one). `token` is sent as `authorization: Bearer`
    on every call, for servers with `serving.auth`.
    """

    def __init__(
        self,
        url: str = "grpc://127.0.0.1:6566",
        token: Optional[str] = None,
        *,
        root_certificates: Optional[bytes] = None,
        timeout: Optional[float] = None,
    ):
        parsed = urlparse(url)
        if parsed.scheme not in ("grpc", "grpcs") or not parsed.hostname or not parsed.port:
            raise ValueError(
                f"server URL {url!r}: use grpc://host:port or grpcs://host:port"
            )
        target = f"{parsed.hostname}:{parsed.port}"
        self._timeout = timeout
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        if parsed.scheme == "grpcs":
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials)
            flight_location = f"grpc+tls://{target}"
            flight_kwargs = {"tls_root_certs": root_certificates} if root_certificates else {}
        else:
            self._channel = grpc.insecure_channel(target)
            flight_location = f"grpc+tcp://{target}"
            flight_kwargs = {}
        self._stub = pb_grpc.FeatureServingStub(self._channel)
        self._flight = flight.FlightClient(flight_location, **flight_kwargs)
        self._flight_options = flight.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {token}".encode())] if token else [],
            timeout=timeout,
        )

    def close(self) -> None:
        self._channel.close()
        self._flight.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as e:
            raise AsofError(e.code().name, e.details() or "") from None

    # Training sets (Arrow Flight)

    def get_historical_features(
        self,
        entity_df: TableLike,
        features: Optional[Sequence[str]] = None,
        *,
        feature_service: Optional[str] = None,
        full_feature_names: bool = False,
        timestamp_column: Optional[str] = None,
        with_timestamps: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> TrainingSet:
        """Joins each entity row with the feature values as of its timestamp (pandas, polars or
        pyarrow in). The table goes up and the result comes back over one Flight call."""
        command: Dict[str, Any] = {"full_feature_names": full_feature_names}
        if features is not None:
            command["features"] = list(features)
        if feature_service is not None:
            command["feature_service"] = feature_service
        if timestamp_column is not None:
            command["timestamp_column"] = timestamp_column
        if with_timestamps:
            command["with_timestamps"] = True
        if filter_by_created_timestamp:
            command["filter_by_created_timestamp"] = True
        table = _to_arrow(entity_df)
        descriptor = flight.FlightDescriptor.for_command(json.dumps(command).encode())
        try:
            writer, reader = self._flight.do_exchange(descriptor, self._flight_options)
            with writer:
                writer.begin(table.schema)
                writer.write_table(table)
                writer.done_writing()
                result = reader.read_all()
        except (flight.FlightError, pa.ArrowException) as e:
            raise AsofError(_flight_code(e), _flight_message(e)) from None
        return TrainingSet(result)

    # Online features, pushes, registry (gRPC)

    def get_online_features(
        self,
        features: Optional[Sequence[str]] = None,
        entity_rows: Optional[Union[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Any]]]] = None,
        *,
        feature_service: Optional[str] = None,
        full_feature_names: bool = False,
        as_of: Union[_dt.datetime, str, None] = None,
    ) -> OnlineResponse:
        """Feature values for entity rows (a list of {key: value} rows, or {key: [values]}), as of
        now or `as_of`."""
        columns = _columnar(entity_rows or [])
        request = pb.GetOnlineFeaturesRequest(
            entities={k: pb.RepeatedValue(values=[_value(v) for v in vs]) for k, vs in columns.items()},
            full_feature_names=full_feature_names,
        )
        if feature_service is not None:
            request.feature_service = feature_service
        else:
            request.features.features.extend(features or [])
        if as_of is not None:
            request.as_of.CopyFrom(_timestamp(as_of))
        return OnlineResponse._from_proto(self._call(self._stub.GetOnlineFeatures, request))

    def push(self, feature_view: str, df: TableLike, to: str = "online_and_offline") -> Dict[str, int]:
        """Writes rows (in the source's column names) to a view: online, to its offline push log,
        or both, as Feast's push modes. Returns rows written, skipped (older than what is
        stored) and logged offline."""
        if to not in _PUSH_TO:
            raise ValueError(f"to={to!r}: use one of {sorted(_PUSH_TO)}")
        table = _to_arrow(df)
        # Values take the view's declared types (a pandas float64 column into a float32 feature),
        # which the server checks strictly.
        types = self._feature_types(feature_view)
        request = pb.PushFeaturesRequest(feature_view=feature_view, to=_PUSH_TO[to])
        for name in table.column_names:
            request.columns[name].values.extend(
                _typed_value(v, types.get(name)) for v in table.column(name).to_pylist()
            )
        r = self._call(self._stub.PushFeatures, request)
        return {"written": r.written, "skipped": r.skipped, "logged": r.logged}

    def _feature_types(self, feature_view: str) -> Dict[str, str]:
        for v in self.list_feature_views():
            if v["name"] == feature_view:
                return v["features"]
        return {}

    def list_feature_views(self) -> List[Dict[str, Any]]:
        r = self._call(self._stub.ListFeatureViews, pb.ListFeatureViewsRequest())
        return [
            {
                "name": v.name,
                "join_keys": list(v.join_keys),
                "features": {f.name: f.dtype for f in v.features},
                "ttl_seconds": v.ttl_seconds,
                "online": v.online,
            }
            for v in r.feature_views
        ]

    # Documents

    def search(
        self,
        index: str,
        query: str,
        k: int = 10,
        *,
        mode: Optional[str] = None,
        filters: Optional[Mapping[str, str]] = None,
        as_of: Union[_dt.datetime, str, None] = None,
    ) -> SearchResult:
        """The chunks of `index` nearest to `query` (`mode`: dense, sparse or hybrid)."""
        request = pb.SearchDocumentsRequest(
            index=index, text=query, k=k, mode=_mode(mode), filters=dict(filters or {})
        )
        if as_of is not None:
            request.as_of.CopyFrom(_timestamp(as_of))
        return _search_result(self._call(self._stub.SearchDocuments, request))

    def retrieve_and_rank(
        self,
        index: str,
        query: str,
        k: int = 10,
        *,
        features: Optional[Sequence[str]] = None,
        mode: Optional[str] = None,
        filters: Optional[Mapping[str, str]] = None,
        as_of: Union[_dt.datetime, str, None] = None,
        request_id: str = "",
    ) -> SearchResult:
        """`search`, then each hit's document features (the index's reranker features, or
        `features`) read as of now or `as_of`, in hit order."""
        request = pb.RetrieveAndRankRequest(
            index=index,
            text=query,
            k=k,
            mode=_mode(mode),
            filters=dict(filters or {}),
            features=list(features or []),
            request_id=request_id,
        )
        if as_of is not None:
            request.as_of.CopyFrom(_timestamp(as_of))
        r = self._call(self._stub.RetrieveAndRank, request)
        return _search_result(
            r,
            features=OnlineResponse._from_proto(r.features) if r.HasField("features") else None,
            request_id=r.request_id,
        )


def _mode(mode: Optional[str]) -> int:
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: use dense, sparse or hybrid (or None for the index's own)")
    return _MODES[mode]


def _search_result(r, **extra: Any) -> SearchResult:
    return SearchResult(
        index=r.index,
        version=r.version,
        model=r.model,
        hits=[_hit(h) for h in r.hits],
        abstained=r.abstained,
        excluded=dict(r.excluded),
        **extra,
    )


def _columnar(rows: Union[Sequence[Mapping[str, Any]], Mapping[str, Sequence[Any]]]) -> Dict[str, List[Any]]:
    if isinstance(rows, Mapping):
        return {k: list(v) for k, v in rows.items()}
    columns: Dict[str, List[Any]] = {}
    for i, row in enumerate(rows):
        if i > 0 and set(row) != set(columns):
            raise ValueError(
                f"entity row {i} has keys {sorted(row)}, but row 0 has {sorted(columns)}: give every row the same keys"
            )
        for k, v in row.items():
            columns.setdefault(k, []).append(v)
    return columns


_FLIGHT_CODES = [
    (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
    (flight.FlightUnauthorizedError, "PERMISSION_DENIED"),
    (flight.FlightUnavailableError, "UNAVAILABLE"),
    (flight.FlightTimedOutError, "DEADLINE_EXCEEDED"),
    (flight.FlightCancelledError, "CANCELLED"),
    (pa.ArrowInvalid, "INVALID_ARGUMENT"),
    (pa.ArrowNotImplementedError, "UNIMPLEMENTED"),
    (KeyError, "NOT_FOUND"),
]


def _flight_code(e: Exception) -> str:
    """The gRPC status name of a Flight error (pyarrow maps them to its own exception types)."""
    for kind, code in _FLIGHT_CODES:
        if isinstance(e, kind):
            return code
    return "INTERNAL"


def _flight_message(e: Exception) -> str:
    """The server's message, without the transport detail pyarrow wraps it in."""
    text = str(e)
    m = re.search(r"with message: (.*?)\.? gRPC client debug context", text, re.S)
    if m:
        return m.group(1).strip()
    return text.split(". Detail:")[0].strip()
