"""Market data scanner (MDS): secondary analysis over WDC pub/sub (daily range, HOD/LOD alerts)."""
