//! Document search and the reranker-feature path over real gRPC, with document features in a real
//! redis-server, the index on disk, and the retrieval log read back by the offline store.

use std::collections::HashMap;

use asof_core::FeatureRequest;
use asof_offline::{EntityTable, OfflineStore, TrainingSetOptions};
use asof_retrieval::{IndexStore, LiveIndexes};
use asof_server::proto::v1::get_online_features_request::Kind;
use asof_server::proto::v1::{
    FeatureList, GetOnlineFeaturesRequest, QueryVector, RepeatedValue, RetrieveAndRankRequest,
    SearchDocumentsRequest, retrieve_and_rank_request, search_documents_request,
};
use asof_server::retrieval_log::RetrievalLog;
use asof_server::service::Serving;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use tonic::Code;

use crate::redis_server::RedisServer;
use crate::setup::{Fixture, start_serving};

const INDEX: &str = "help_articles";
const FEATURES: [&str; 2] = ["document_stats:popularity", "document_clicks:clicks_7d"];

/// The index version the server answers a top-3 text search from.
async fn served_version(
    client: &mut asof_server::proto::v1::feature_serving_client::FeatureServingClient<
        tonic::transport::Channel,
    >,
    query: &str,
) -> String {
    let resp = client
        .search_documents(text_search(query, 3))
        .await
        .unwrap();
    resp.into_inner().version
}

fn text_search(text: &str, k: u32) -> SearchDocumentsRequest {
    SearchDocumentsRequest {
        index: INDEX.into(),
        query: Some(search_documents_request::Query::Text(text.into())),
        k,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_and_rank_serves_the_features_training_rebuilds() {
    let redis = RedisServer::start();
    let fx = Fixture::on_redis(&redis);
    let store = fx.store().await;
    fx.materialize(
        store.as_ref(),
        fx.data_end - 40 * 86_400_000_000_000,
        fx.data_end,
    )
    .await;
    let registry = fx.registry();
    let spec = registry.document_indexes[INDEX].spec.clone();
    let indexes = IndexStore::new(fx.repo().config.index_path(&fx.dir));
    indexes.sync(&fx.dir, &spec).unwrap();
    let log_dir = fx.dir.join("logs");
    let log = RetrievalLog::new(&log_dir).unwrap();
    let serving = Serving::new(registry.clone(), store)
        .with_indexes(LiveIndexes::new(indexes.clone()))
        .with_retrieval_log(log.clone());
    let mut client = start_serving(serving).await;

    let found = client
        .search_documents(text_search("refund invoice card payment", 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (found.version.as_str(), found.model.as_str()),
        ("v1", "hashing/hashing-v1/256")
    );
    assert_eq!(found.hits.len(), 5);
    assert!(
        found.hits.iter().all(|h| h.doc_id.starts_with("payments-")),
        "{:?}",
        found.hits
    );
    assert!(found.hits.windows(2).all(|w| w[0].score >= w[1].score));

    // Filters apply inside the search.
    let mut filtered = text_search("refund invoice card payment", 5);
    filtered.filters.insert("topic".into(), "trips".into());
    let hits = client
        .search_documents(filtered)
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(!hits.is_empty() && hits.iter().all(|h| h.metadata["topic"] == "trips"));

    let mut request_ids = Vec::new();
    for (i, q) in ["refund card", "password reset login", "driver pickup route"]
        .iter()
        .enumerate()
    {
        let resp = client
            .retrieve_and_rank(RetrieveAndRankRequest {
                index: INDEX.into(),
                query: Some(retrieve_and_rank_request::Query::Text(q.to_string())),
                k: 4,
                request_id: format!("req-{i}"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        request_ids.push(resp.request_id.clone());
        let features = resp.features.unwrap();
        let names = features.metadata.unwrap().feature_names;
        assert_eq!(names, ["doc_id", "popularity", "clicks_7d"]);
        // The same features through GetOnlineFeatures, for the hit documents.
        let doc_ids: Vec<_> = resp
            .hits
            .iter()
            .map(|h| {
                asof_server::convert::to_proto(&asof_core::value::Value::String(h.doc_id.clone()))
            })
            .collect();
        let direct = client
            .get_online_features(GetOnlineFeaturesRequest {
                kind: Some(Kind::Features(FeatureList {
                    features: FEATURES.iter().map(|s| s.to_string()).collect(),
                })),
                entities: HashMap::from([(
                    "doc_id".to_string(),
                    RepeatedValue { values: doc_ids },
                )]),
                full_feature_names: false,
                as_of: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            features.results[0].values, direct.results[0].values,
            "doc ids in hit order"
        );
        for col in 1..3 {
            assert_eq!(features.results[col].values, direct.results[col].values);
            assert!(
                features.results[col].statuses.iter().all(|s| *s == 1),
                "every quickstart document has fresh stats: {:?}",
                features.results[col].statuses
            );
        }
    }
    assert_eq!(request_ids, ["req-0", "req-1", "req-2"]);

    // The log is an entity table: the offline store rebuilds the served values exactly.
    let files = log.flush().unwrap();
    assert_eq!(files.len(), 1);
    let entities = EntityTable::read(&files[0]).await.unwrap();
    assert_eq!(entities.num_rows(), 12);
    let request = FeatureRequest::resolve(
        &registry.catalog(),
        &FEATURES.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        true,
    )
    .unwrap();
    let table = OfflineStore::new(&fx.dir)
        .training_set(&entities, &request, &TrainingSetOptions::default())
        .await
        .unwrap();
    let col = |name: &str| table.column(table.schema().index_of(name).unwrap()).clone();
    let (offline_pop, offline_clicks) = (
        col("document_stats__popularity"),
        col("document_clicks__clicks_7d"),
    );
    assert_eq!(offline_pop.null_count() + offline_clicks.null_count(), 0);
    assert_eq!(
        offline_pop.as_primitive::<Float64Type>().values(),
        col("served__document_stats__popularity")
            .as_primitive::<Float64Type>()
            .values()
    );
    assert_eq!(
        offline_clicks.as_primitive::<Int64Type>().values(),
        col("served__document_clicks__clicks_7d")
            .as_primitive::<Int64Type>()
            .values()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_invalid_argument_and_deletes_and_promotes_apply_at_once() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let registry = fx.registry();
    let mut spec = registry.document_indexes[INDEX].spec.clone();
    let indexes = IndexStore::new(fx.repo().config.index_path(&fx.dir));
    indexes.sync(&fx.dir, &spec).unwrap();
    let serving = Serving::new(registry.clone(), fx.store().await)
        .with_indexes(LiveIndexes::new(indexes.clone()));
    let mut client = start_serving(serving).await;

    fn status<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
        r.unwrap_err()
    }
    let wrong_model = SearchDocumentsRequest {
        index: INDEX.into(),
        query: Some(search_documents_request::Query::Vector(QueryVector {
            values: vec![0.1; 256],
            model: "openai/text-embedding-3-small/256".into(),
        })),
        ..Default::default()
    };
    let s = status(client.search_documents(wrong_model).await);
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("hashing/hashing-v1/256"),
        "{}",
        s.message()
    );
    let mut unknown = text_search("x", 3);
    unknown.index = "help_article".into();
    let s = status(client.search_documents(unknown).await);
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("did you mean `help_articles`"),
        "{}",
        s.message()
    );
    let mut huge = text_search("x", 3);
    huge.k = 1_000_000;
    assert_eq!(
        status(client.search_documents(huge).await).code(),
        Code::InvalidArgument
    );
    let no_query = SearchDocumentsRequest {
        index: INDEX.into(),
        ..Default::default()
    };
    assert_eq!(
        status(client.search_documents(no_query).await).code(),
        Code::InvalidArgument
    );
    let wrong_view = RetrieveAndRankRequest {
        index: INDEX.into(),
        query: Some(retrieve_and_rank_request::Query::Text("card".into())),
        features: vec!["driver_hourly_stats:conv_rate".into()],
        ..Default::default()
    };
    let s = status(client.retrieve_and_rank(wrong_view).await);
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("doc_id"), "{}", s.message());

    // Delete the best match for a query from the corpus and re-sync while the server runs.
    let query = "refund invoice card payment";
    let top = client
        .search_documents(text_search(query, 1))
        .await
        .unwrap()
        .into_inner()
        .hits[0]
        .doc_id
        .clone();
    let path = fx.dir.join("data/docs/help_articles.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.contains(&format!("\"doc_id\":\"{top}\"")))
        .map(String::from)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let r = indexes.sync(&fx.dir, &spec).unwrap();
    assert!(r.versions[0].deleted > 0);
    for k in [1, 10, 200] {
        let hits = client
            .search_documents(text_search(query, k))
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert!(
            hits.iter().all(|h| h.doc_id != top),
            "deleted `{top}` returned at k={k}"
        );
    }

    // A new model builds v2 beside v1; the server answers from v1 until the promote.
    spec.embedding.model = "hashing-v2".into();
    indexes.sync(&fx.dir, &spec).unwrap();
    assert_eq!(served_version(&mut client, query).await, "v1");
    indexes.promote(INDEX, "v2").unwrap();
    let resp = client
        .search_documents(text_search(query, 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (resp.version.as_str(), resp.model.as_str()),
        ("v2", "hashing/hashing-v2/256")
    );
    indexes.rollback(INDEX).unwrap();
    assert_eq!(served_version(&mut client, query).await, "v1");
}

/// An index's contract over gRPC: a request narrows it, an answer that is left with too few hits
/// abstains with its reasons, and the abstention is in the retrieval log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_abstain_over_grpc_and_abstentions_are_logged() {
    let fx = Fixture::new("online_store: {type: embedded, path: data/online}");
    let mut registry = fx.registry();
    let spec = &mut registry.document_indexes.get_mut(INDEX).unwrap().spec;
    // Nothing reaches this score: every answer abstains.
    spec.contract = Some(asof_core::spec::Contract {
        min_score: Some(0.999),
        min_results: 1,
        ..Default::default()
    });
    let spec = spec.clone();
    let indexes = IndexStore::new(fx.repo().config.index_path(&fx.dir));
    indexes.sync(&fx.dir, &spec).unwrap();
    let log = RetrievalLog::new(&fx.dir.join("logs")).unwrap();
    let serving = Serving::new(registry, fx.store().await)
        .with_indexes(LiveIndexes::new(indexes))
        .with_retrieval_log(log.clone());
    let mut client = start_serving(serving).await;

    let found = client
        .search_documents(text_search("refund invoice card payment", 5))
        .await
        .unwrap()
        .into_inner();
    assert!(found.abstained && found.hits.is_empty(), "{found:?}");
    assert!(found.excluded["below_score"] >= 1, "{:?}", found.excluded);

    let ranked = client
        .retrieve_and_rank(RetrieveAndRankRequest {
            index: INDEX.into(),
            query: Some(retrieve_and_rank_request::Query::Text("refund card".into())),
            k: 3,
            features: FEATURES.map(String::from).to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ranked.abstained && ranked.hits.is_empty());
    let files = log.flush().unwrap();
    assert_eq!(files.len(), 1);
    let f = std::fs::File::open(&files[0]).unwrap();
    let batch =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    assert_eq!(batch.num_rows(), 1, "one row for the abstained request");
    assert!(
        batch
            .column_by_name("abstained")
            .unwrap()
            .as_boolean()
            .value(0)
    );
    let excluded = batch
        .column_by_name("excluded")
        .unwrap()
        .as_string::<i32>()
        .value(0);
    assert!(excluded.contains("below_score"), "{excluded}");
}
