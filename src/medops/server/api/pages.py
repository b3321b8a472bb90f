"""Lists come in pages: ``limit`` (at most MAX_PAGE) items from ``offset``, newest first, and where the
next page starts. The services return the newest N; a page asks for one more than it shows to know
whether another follows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query

MAX_PAGE = 500
MAX_OFFSET = 10_000  # deeper than this, narrow the filter instead


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int

    @property
    def fetch(self) -> int:
        """How many the service must return for this page and the sign of a next one."""
        return self.offset + self.limit + 1


def _page(
    limit: int = Query(50, ge=1, le=MAX_PAGE, description=f"items in this page (at most {MAX_PAGE})"),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="items to skip, newest first"),
) -> Page:
    return Page(limit, offset)


Paging = Annotated[Page, Depends(_page)]


def paged(
    items: Sequence[Any], page: Page, to_json: Callable[[Any], Any] = lambda item: item.to_json()
) -> dict[str, Any]:
    """The page's items and where the next page starts (None: this is the last)."""
    shown = items[page.offset : page.offset + page.limit]
    more = len(items) > page.offset + page.limit
    return {
        "items": [to_json(item) for item in shown],
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.offset + page.limit if more else None,
    }
