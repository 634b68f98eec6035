"""The semantic plan cache: a projection of ``plan_generated`` events into pgvector.

``adapter.semantic_plan_cache(settings, postgres)`` builds the :class:`PlanCache` the
sagas use; ``projector`` folds the log into the store; ``store`` owns the tables and the
HNSW index; ``embedder`` runs all-MiniLM-L6-v2.
"""
