"""Operations: request logs and their format, metrics, health probes, middleware."""
