"""Finlight data processor (FDP): the news queue into the widget news feeds."""
