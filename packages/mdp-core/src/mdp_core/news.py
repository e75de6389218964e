"""Typed, immutable models of Finlight news articles.

Attribute names are snake_case and say what they mean; the wire keys stay Finlight's camelCase, so
an article decodes in one call and re-encodes to the structure Finlight sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from mdp_core.errors import InvalidJson, MissingField, NestedTooDeep, WrongType

__all__ = ["Article", "Company", "Listing", "decode_article"]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Listing(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Where a company's shares trade."""

    ticker: str
    exchange_code: str | None = None
    exchange_country: str | None = None


class Company(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A company an article is about, as Finlight's entity extraction found it."""

    company_id: int
    name: str
    ticker: str
    confidence: float | None = None
    country: str | None = None
    exchange: str | None = None
    industry: str | None = None
    sector: str | None = None
    isin: str | None = None
    openfigi: str | None = None
    primary_listing: Listing | None = None
    isins: tuple[str, ...] = ()
    other_listings: tuple[Listing, ...] = ()


class Article(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One news article; ``link`` is its identity (Finlight de-duplicates on it too)."""

    link: _NonEmpty
    title: _NonEmpty
    publish_date: datetime
    source: str
    language: str
    summary: str | None = None
    images: tuple[str, ...] = ()
    created_at: datetime | None = None
    revised_date: datetime | None = None
    is_update: bool | None = None
    categories: tuple[str, ...] = ()
    sentiment: str | None = None
    confidence: float | None = None
    content: str | None = None
    companies: tuple[Company, ...] = ()
    countries: tuple[str, ...] = ()


_ARTICLE_DECODER = msgspec.json.Decoder(Article)


def decode_article(data: bytes | str) -> Article:
    """Decode one article from JSON.

    Raises:
        MissingField: a required field (link, title, ...) is absent.
        WrongType: a field has the wrong type or format.
        InvalidJson: the bytes are not JSON.
    """
    try:
        return _ARTICLE_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "missing required field" in text:
            raise MissingField(text, event_type="article") from None
        raise WrongType(text, event_type="article") from None
    except msgspec.DecodeError as exc:
        raise InvalidJson(str(exc), event_type="article") from None
    except RecursionError:
        raise NestedTooDeep(
            "JSON nested deeper than the decoder's recursion limit", event_type="article"
        ) from None
