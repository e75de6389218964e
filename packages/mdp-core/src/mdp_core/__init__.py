"""The vocabulary of the mdp platform.

Event and news models, the wire codecs, the queue envelope and the typed errors are re-exported
here. The clock, calendar, settings, logging, telemetry and process modules are imported from
their own modules (``mdp_core.calendar`` ...), so importing the models stays cheap.
"""

from importlib.metadata import version as _version

from mdp_core.envelope import (
    ENVELOPE_VERSION,
    Envelope,
    EventBatch,
    NewsBatch,
    decode_event_batch,
    decode_header,
    decode_news_batch,
    encode_envelope,
)
from mdp_core.errors import (
    EnvelopeError,
    InvalidJson,
    MalformedInput,
    MalformedSymbol,
    MdpError,
    MissingEventType,
    MissingField,
    NotAnArray,
    NotAnObject,
    OutOfRange,
    UnknownEventType,
    UnsupportedEnvelopeVersion,
    WrongType,
)
from mdp_core.events import (
    EVENT_TYPES,
    MARKET_EVENT_TYPES,
    AnyEvent,
    FairMarketValue,
    Imbalance,
    LaunchpadValue,
    LimitUpLimitDown,
    MarketEvent,
    MinuteAggregate,
    Quote,
    SecondAggregate,
    Status,
    Trade,
)
from mdp_core.news import Article, Company, Listing, decode_article
from mdp_core.wire import (
    DecodedFrame,
    SplitFrame,
    decode_event,
    decode_frame,
    encode_events,
    encode_raw_events,
    split_frame,
)

__version__ = _version("mdp-core")

__all__ = [
    "ENVELOPE_VERSION",
    "EVENT_TYPES",
    "MARKET_EVENT_TYPES",
    "AnyEvent",
    "Article",
    "Company",
    "DecodedFrame",
    "Envelope",
    "EnvelopeError",
    "EventBatch",
    "FairMarketValue",
    "Imbalance",
    "InvalidJson",
    "LaunchpadValue",
    "LimitUpLimitDown",
    "Listing",
    "MalformedInput",
    "MalformedSymbol",
    "MarketEvent",
    "MdpError",
    "MinuteAggregate",
    "MissingEventType",
    "MissingField",
    "NewsBatch",
    "NotAnArray",
    "NotAnObject",
    "OutOfRange",
    "Quote",
    "SecondAggregate",
    "SplitFrame",
    "Status",
    "Trade",
    "UnknownEventType",
    "UnsupportedEnvelopeVersion",
    "WrongType",
    "__version__",
    "decode_article",
    "decode_event",
    "decode_event_batch",
    "decode_frame",
    "decode_header",
    "decode_news_batch",
    "encode_envelope",
    "encode_events",
    "encode_raw_events",
    "split_frame",
]
