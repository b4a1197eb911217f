//! Resolved feature requests, remembered per request shape. Clients send the same few feature
//! lists over and over; resolving one clones view definitions and checks every name, which cost
//! more than the rest of a one-row lookup's own work. Each registry snapshot has its own cache
//! (`crate::snapshot::Snapshot`), so a resolution never outlives the catalog it was made from.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use asof_core::{Catalog, CoreResult, FeatureRequest};
use hashbrown::{Equivalent, HashMap};

/// Distinct shapes kept at most; past it the cache starts over (clients that send ever-new
/// feature lists must not grow the server without bound).
const CAPACITY: usize = 4096;

/// What a request names: a feature list or a service, and whether names are qualified.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Features(Vec<String>, bool),
    Service(String, bool),
}

/// [`Shape`] borrowed from an incoming request, for lookups without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ShapeRef<'a> {
    Features(&'a [String], bool),
    Service(&'a str, bool),
}

impl ShapeRef<'_> {
    fn owned(self) -> Shape {
        match self {
            ShapeRef::Features(refs, full) => Shape::Features(refs.to_vec(), full),
            ShapeRef::Service(name, full) => Shape::Service(name.to_string(), full),
        }
    }

    fn resolve(self, catalog: &Catalog) -> CoreResult<FeatureRequest> {
        match self {
            ShapeRef::Features(refs, full) => FeatureRequest::resolve(catalog, refs, full),
            ShapeRef::Service(name, full) => FeatureRequest::resolve_service(catalog, name, full),
        }
    }
}

/// Both forms hash through this, so a borrowed shape finds its owned twin.
fn hash_shape<H: Hasher>(shape: ShapeRef<'_>, state: &mut H) {
    match shape {
        ShapeRef::Features(refs, full) => {
            0u8.hash(state);
            refs.hash(state);
            full.hash(state);
        }
        ShapeRef::Service(name, full) => {
            1u8.hash(state);
            name.hash(state);
            full.hash(state);
        }
    }
}

impl Hash for Shape {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let borrowed = match self {
            Shape::Features(refs, full) => ShapeRef::Features(refs, *full),
            Shape::Service(name, full) => ShapeRef::Service(name, *full),
        };
        hash_shape(borrowed, state);
    }
}

impl Hash for ShapeRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_shape(*self, state);
    }
}

impl Equivalent<Shape> for ShapeRef<'_> {
    fn equivalent(&self, key: &Shape) -> bool {
        match (self, key) {
            (ShapeRef::Features(a, fa), Shape::Features(b, fb)) => fa == fb && *a == b.as_slice(),
            (ShapeRef::Service(a, fa), Shape::Service(b, fb)) => fa == fb && *a == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RequestCache {
    resolved: RwLock<HashMap<Shape, Arc<FeatureRequest>>>,
}

impl RequestCache {
    /// The resolution of `shape` against `catalog`; errors are not remembered (they are cheap, and
    /// rare in a healthy client).
    pub(crate) fn resolve(
        &self,
        catalog: &Catalog,
        shape: ShapeRef<'_>,
    ) -> CoreResult<Arc<FeatureRequest>> {
        if let Some(hit) = self
            .resolved
            .read()
            .expect("the cache lock is never held across a panic")
            .get(&shape)
        {
            return Ok(Arc::clone(hit));
        }
        let request = Arc::new(shape.resolve(catalog)?);
        let mut resolved = self
            .resolved
            .write()
            .expect("the cache lock is never held across a panic");
        if resolved.len() >= CAPACITY {
            resolved.clear();
        }
        resolved.insert(shape.owned(), Arc::clone(&request));
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use asof_core::repo::Repo;
    use asof_core::validate::{NoProbe, validate};

    fn quickstart_catalog() -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in asof_offline::quickstart::REPO_FILES {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        validate(&Repo::load(dir.path()).unwrap(), &NoProbe).unwrap()
    }

    #[test]
    fn a_repeated_shape_is_resolved_once_and_errors_are_not_kept() {
        let catalog = quickstart_catalog();
        let cache = RequestCache::default();
        let refs = vec!["driver_hourly_stats:conv_rate".to_string()];
        let first = cache
            .resolve(&catalog, ShapeRef::Features(&refs, false))
            .unwrap();
        let again = cache
            .resolve(&catalog, ShapeRef::Features(&refs.clone(), false))
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the borrowed shape finds the stored one"
        );
        let qualified = cache
            .resolve(&catalog, ShapeRef::Features(&refs, true))
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &qualified));
        assert_eq!(qualified.columns[0].2, "driver_hourly_stats__conv_rate");

        let bad = vec!["driver_hourly_stats:nope".to_string()];
        assert!(
            cache
                .resolve(&catalog, ShapeRef::Features(&bad, false))
                .is_err()
        );
        assert!(
            cache
                .resolve(&catalog, ShapeRef::Service("nope", false))
                .is_err()
        );
        assert_eq!(cache.resolved.read().unwrap().len(), 2);
    }
}
