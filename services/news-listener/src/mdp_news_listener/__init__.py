"""Finlight data listener (FDL): the Finlight news feed into the news queue."""
