"""Massive data listener (MDL): the Massive stocks feed into the market data queues."""
