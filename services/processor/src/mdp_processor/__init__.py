"""Market data processor (MDP): queues through analyzers into MDC and WDC."""
