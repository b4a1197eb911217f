//! Retrieval data contracts: each reason keeps its chunks out inside the arms, counts them, and
//! an answer with too few left abstains; `as_of` hides documents updated after it.

use std::collections::BTreeMap;

use asof_core::spec::{Contract, OnViolation, Retrieval, SearchMode};
use asof_retrieval::{Answer, Exclusion, IndexStore, LiveIndexes, Query, SearchOptions};

use crate::spec;

fn nanos(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

fn answer(
    live: &LiveIndexes,
    mode: SearchMode,
    contract: &Contract,
    as_of: Option<&str>,
) -> Answer {
    let none = BTreeMap::new();
    live.get("help", None)
        .unwrap()
        .answer(
            Query::Text("refund policy"),
            &SearchOptions {
                k: 5,
                filters: &none,
                ef: 64,
                mode,
                fusion: &Retrieval::default(),
                deadline: None,
                contract: Some(contract),
                as_of: as_of.map(nanos),
            },
        )
        .unwrap()
}

fn ids(a: &Answer) -> Vec<&str> {
    a.hits.iter().map(|h| h.doc_id.as_str()).collect()
}

#[test]
fn each_contract_reason_keeps_its_documents_out_and_too_few_abstains() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        ("ok", "policy", Some("alice"), "2026-01-01T00:00:00Z"),
        ("no-owner", "faq", None, "2026-01-01T00:00:00Z"),
        ("blog", "blog", Some("bob"), "2026-01-01T00:00:00Z"),
        ("old", "policy", Some("carol"), "2025-01-01T00:00:00Z"),
        ("later", "policy", Some("dan"), "2026-06-01T00:00:00Z"),
    ];
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, ty, owner, at)| {
            let mut j = serde_json::json!({"doc_id": id, "text": format!("refund policy {id}"), "updated_at": at, "type": ty});
            if let Some(o) = owner {
                j["owner"] = serde_json::json!(o);
            }
            j.to_string()
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/c.jsonl"), lines.join("\n")).unwrap();
    let store = IndexStore::new(dir.path().join("data/indexes"));
    store.sync(dir.path(), &spec("hashing-v1")).unwrap();
    let live = LiveIndexes::new(store);

    let contract = Contract {
        max_age: Some(asof_core::Ttl::parse("90d").unwrap()),
        allowed_types: Some(vec!["policy".into(), "faq".into()]),
        required_metadata: vec!["owner".into()],
        min_score: None,
        min_results: 1,
        on_violation: OnViolation::Abstain,
    };
    let as_of = Some("2026-03-01T00:00:00Z");
    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let a = answer(&live, mode, &contract, as_of);
        assert_eq!(ids(&a), ["ok"], "{mode}");
        assert!(!a.abstained);
        let reasons: BTreeMap<Exclusion, usize> = [
            (Exclusion::UpdatedAfterAsOf, 1),
            (Exclusion::TooOld, 1),
            (Exclusion::Type, 1),
            (Exclusion::MissingMetadata, 1),
        ]
        .into();
        assert_eq!(a.excluded, reasons, "{mode}");
    }

    // A request narrows the contract: only FAQs, and the one FAQ has no owner: abstain.
    let narrowed = contract.narrowed(&Contract {
        allowed_types: Some(vec!["faq".into()]),
        min_results: 1,
        ..Default::default()
    });
    assert_eq!(narrowed.allowed_types, Some(vec!["faq".to_string()]));
    let a = answer(&live, SearchMode::Hybrid, &narrowed, as_of);
    assert!(a.abstained && a.hits.is_empty(), "{a:?}");
    // ... and cannot widen it.
    let wider = contract.narrowed(&Contract {
        allowed_types: Some(vec!["blog".into(), "policy".into()]),
        max_age: Some(asof_core::Ttl::parse("3650d").unwrap()),
        min_results: 0,
        ..Default::default()
    });
    assert_eq!(
        ids(&answer(&live, SearchMode::Sparse, &wider, as_of)),
        ["ok"]
    );

    // A score floor nothing reaches: every hit is below it, and the answer abstains...
    let strict = Contract {
        min_score: Some(0.999),
        ..contract.clone()
    };
    let a = answer(&live, SearchMode::Dense, &strict, as_of);
    assert!(a.abstained && a.hits.is_empty());
    assert!(a.excluded[&Exclusion::BelowScore] >= 1, "{:?}", a.excluded);
    // ... unless the contract says partial, which returns what qualifies however few.
    let partial = Contract {
        min_results: 3,
        on_violation: OnViolation::Partial,
        ..contract.clone()
    };
    let a = answer(&live, SearchMode::Sparse, &partial, as_of);
    assert_eq!((ids(&a), a.abstained), (vec!["ok"], false));

    // Without a contract, as_of alone hides what was updated after it.
    let a = live
        .get("help", None)
        .unwrap()
        .answer(
            Query::Text("refund policy"),
            &SearchOptions {
                k: 10,
                filters: &BTreeMap::new(),
                ef: 64,
                mode: SearchMode::Sparse,
                fusion: &Retrieval::default(),
                deadline: None,
                contract: None,
                as_of: Some(nanos("2026-03-01T00:00:00Z")),
            },
        )
        .unwrap();
    assert_eq!(a.hits.len(), 4);
    assert!(!ids(&a).contains(&"later"));
}
