"""Array helpers of the span mapping (``mapping.spans_to_ocsf``) that cost less than the
general ``pyarrow.compute`` kernel doing the same job on a batch of spans."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def only(keep, values):
    """``values`` where ``keep`` is true, else null (a null ``keep`` counts as false).

    For flat columns the result shares the value buffers of ``values`` under a narrower
    validity bitmap: ``pc.if_else(keep, values, null)`` rebuilds every string value by value,
    the biggest kernel cost of the span mapping once src/dst/observables were split by kind.
    ``keep`` may be a plain bool (the whole column or nothing)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if keep is True:
        return values
    if keep is False:
        return pa.nulls(len(values), values.type)
    if isinstance(keep, pa.ChunkedArray):
        keep = keep.combine_chunks()
    keep = pc.fill_null(keep, False)
    if values.null_count:
        keep = pc.and_(keep, pc.is_valid(values))
    if pa.types.is_nested(values.type) or pa.types.is_dictionary(values.type) or values.offset or keep.offset:
        return pc.if_else(keep, values, pa.scalar(None, values.type))  # (the general kernel for the rest)
    buffers = values.buffers()
    return pa.Array.from_buffers(values.type, len(values), [keep.buffers()[1]] + buffers[1:])
