"""The Python client of the asof feature store.

    from asof import Store
    store = Store("grpc://127.0.0.1:6566")
    store.get_historical_features(entity_df, features=["driver_hourly_stats:conv_rate"]).to_pandas()
"""

from asof.store import AsofError, OnlineResponse, SearchResult, Store, TrainingSet

__all__ = ["AsofError", "OnlineResponse", "SearchResult", "Store", "TrainingSet"]
