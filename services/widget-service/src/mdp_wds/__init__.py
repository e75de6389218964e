"""Widget data service (WDS): authenticated websocket fan-out of widget feeds to browsers."""
