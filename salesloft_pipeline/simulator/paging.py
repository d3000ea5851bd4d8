"""`metadata.paging` of a list answer, as SalesLoft builds it (one place for lists and bulk-job results)."""

from __future__ import annotations

from typing import Any


def paging_metadata(
    params: Any, page: int, per_page: int, returned: int, total: int, exact_last_page: bool
) -> dict[str, Any]:
    if exact_last_page:
        has_next = (page - 1) * per_page + returned < total
    else:
        # Like SalesLoft as far as anyone knows: a full page always points further.
        has_next = returned == per_page
    paging: dict[str, Any] = {
        "per_page": per_page,
        "current_page": page,
        "next_page": page + 1 if has_next else None,
        "prev_page": page - 1 if page > 1 else None,
    }
    if params.get("include_paging_counts") in ("true", "1"):
        paging["total_pages"] = -(-total // per_page)
        paging["total_count"] = total
    return paging
