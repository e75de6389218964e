"""Finlight data listener (FDL): the Finlight news feed into the news queue.

:class:`FinlightListener` runs in any event loop with any :class:`mdp_queues.Publisher`;
``python -m mdp_news_listener`` (the ``mdp-news-listener`` script) is the service shell.
"""

from mdp_news_listener.control import mount_control
from mdp_news_listener.listener import FinlightListener, NewsListenerState, StreamOutcome
from mdp_news_listener.settings import NewsListenerSettings

__all__ = [
    "FinlightListener",
    "NewsListenerSettings",
    "NewsListenerState",
    "StreamOutcome",
    "mount_control",
]
