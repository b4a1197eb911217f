//! Every RPC's request handling never panics or hangs on bad input: arbitrary bytes decoded as each
//! request message, mutated encodings of valid requests, and structured requests with random
//! names, key types, lengths and extreme timestamps all end in a response or an error status.
//! The handlers run for real, over the quickstart registry and an embedded store with data.

use std::time::Duration;

use asof_server::proto::v1::get_online_features_request::Kind;
use asof_server::proto::v1::{
    FeatureList, GetOnlineFeaturesRequest, PushFeaturesRequest, RepeatedValue,
    RetrieveAndRankRequest, SearchDocumentsRequest, Value, value,
};
use asof_server::service::Serving;
use proptest::prelude::*;
use prost::Message;

use crate::setup::Fixture;

struct World {
    _fx: Fixture,
    rt: tokio::runtime::Runtime,
    serving: Serving,
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
        let serving = rt.block_on(async {
            let store = fx.store().await;
            fx.materialize(store.as_ref(), 0, fx.data_end).await;
            let live = asof_retrieval::LiveIndexes::new(asof_retrieval::IndexStore::new(
                fx.dir.join("data/indexes"),
            ));
            Serving::new(fx.registry(), store)
                .with_indexes(live)
                .with_push_log(fx.dir.join("data/push_log"))
        });
        World {
            _fx: fx,
            rt,
            serving,
        }
    })
}

/// Runs one request through its handler; a panic fails the property, and so does a hang.
fn handle(req: Request) {
    let w = world();
    let s = w.serving.clone();
    w.rt.block_on(async move {
        let work = async move {
            match req {
                Request::Get(r) => drop(s.get_online_features(r).await),
                Request::Push(r) => drop(s.push_features(r).await),
                Request::Search(r) => drop(s.search_documents(r).await),
                Request::Rank(r) => drop(s.retrieve_and_rank(r).await),
            }
        };
        tokio::time::timeout(Duration::from_secs(20), work)
            .await
            .expect("a request hung");
    });
}

#[derive(Debug, Clone)]
enum Request {
    Get(GetOnlineFeaturesRequest),
    Push(PushFeaturesRequest),
    Search(SearchDocumentsRequest),
    Rank(RetrieveAndRankRequest),
}

/// Decodes `bytes` as every request type and handles each that decodes.
fn decode_all(bytes: &[u8]) {
    if let Ok(r) = GetOnlineFeaturesRequest::decode(bytes) {
        handle(Request::Get(r));
    }
    if let Ok(r) = PushFeaturesRequest::decode(bytes) {
        handle(Request::Push(r));
    }
    if let Ok(r) = SearchDocumentsRequest::decode(bytes) {
        handle(Request::Search(r));
    }
    if let Ok(r) = RetrieveAndRankRequest::decode(bytes) {
        handle(Request::Rank(r));
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("driver_hourly_stats:conv_rate".to_string()),
        Just("driver_hourly_stats".to_string()),
        Just("customer_profile:segment".to_string()),
        Just("document_stats".to_string()),
        Just("driver_id".to_string()),
        Just("customer_id".to_string()),
        Just("event_timestamp".to_string()),
        Just("created".to_string()),
        Just("conv_rate".to_string()),
        Just("help_articles".to_string()),
        ".{0,12}",
    ]
}

fn timestamp() -> impl Strategy<Value = prost_types::Timestamp> {
    (
        prop_oneof![
            any::<i64>(),
            -10i64..4_000_000_000,
            Just(i64::MIN),
            Just(i64::MAX)
        ],
        any::<i32>(),
    )
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
}

fn proto_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(None),
        any::<bool>().prop_map(|b| Some(value::Kind::BoolVal(b))),
        any::<i32>().prop_map(|i| Some(value::Kind::Int32Val(i))),
        prop_oneof![any::<i64>(), 1000i64..1010].prop_map(|i| Some(value::Kind::Int64Val(i))),
        any::<f32>().prop_map(|f| Some(value::Kind::FloatVal(f))),
        any::<f64>().prop_map(|f| Some(value::Kind::DoubleVal(f))),
        ".{0,8}".prop_map(|s| Some(value::Kind::StringVal(s))),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Some(value::Kind::BytesVal(b))),
        timestamp().prop_map(|t| Some(value::Kind::TimestampVal(t))),
    ]
    .prop_map(|kind| Value { kind });
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|values| Value {
            kind: Some(value::Kind::ListVal(asof_server::proto::v1::ValueList {
                values,
            })),
        })
    })
}

fn columns() -> impl Strategy<Value = std::collections::HashMap<String, RepeatedValue>> {
    prop::collection::hash_map(
        name(),
        prop::collection::vec(proto_value(), 0..5).prop_map(|values| RepeatedValue { values }),
        0..5,
    )
}

fn request() -> impl Strategy<Value = Request> {
    let get = (
        prop::collection::vec(name(), 0..4),
        prop::option::of(name()),
        columns(),
        any::<bool>(),
        prop::option::of(timestamp()),
    )
        .prop_map(|(features, service, entities, full, as_of)| {
            Request::Get(GetOnlineFeaturesRequest {
                kind: Some(match service {
                    Some(s) if features.is_empty() => Kind::FeatureService(s),
                    _ => Kind::Features(FeatureList { features }),
                }),
                entities,
                full_feature_names: full,
                as_of,
            })
        });
    let push = (name(), columns(), -1i32..4).prop_map(|(feature_view, columns, to)| {
        Request::Push(PushFeaturesRequest {
            feature_view,
            columns,
            to,
            deleted: Vec::new(),
        })
    });
    let search = (name(), ".{0,20}", any::<u32>(), name(), -1i32..5).prop_map(
        |(index, text, k, version, mode)| {
            Request::Search(SearchDocumentsRequest {
                index,
                query: Some(asof_server::proto::v1::search_documents_request::Query::Text(text)),
                k: k % 2000,
                filters: Default::default(),
                version,
                mode,
                as_of: None,
                contract: None,
                group_by: 0,
                child_k: 0,
                return_document: false,
            })
        },
    );
    let rank = (
        name(),
        ".{0,20}",
        any::<u32>(),
        prop::collection::vec(name(), 0..3),
        prop::option::of(timestamp()),
    )
        .prop_map(|(index, text, k, features, as_of)| {
            Request::Rank(RetrieveAndRankRequest {
                index,
                query: Some(asof_server::proto::v1::retrieve_and_rank_request::Query::Text(text)),
                k: k % 2000,
                features,
                as_of,
                ..Default::default()
            })
        });
    prop_oneof![4 => get, 3 => push, 1 => search, 1 => rank]
}

fn encode(r: &Request) -> Vec<u8> {
    match r {
        Request::Get(r) => r.encode_to_vec(),
        Request::Push(r) => r.encode_to_vec(),
        Request::Search(r) => r.encode_to_vec(),
        Request::Rank(r) => r.encode_to_vec(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_every_request(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    #[test]
    fn structured_requests(req in request()) {
        handle(req);
    }

    #[test]
    fn mutated_encodings(req in request(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let mut bytes = encode(&req);
        if !bytes.is_empty() {
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= b;
            }
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep.max(bytes.len() / 2));
        }
        decode_all(&bytes);
    }
}
