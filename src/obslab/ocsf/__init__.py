"""Raw telemetry -> OCSF 1.8.0 parquet: readers, vectorised mapping, validation, conversion.

Stable public API (other areas code against this; signatures will not change):

Readers (stream ``pyarrow.RecordBatch`` es of the flat schemas in :mod:`obslab.ocsf.flat`;
each updates the given :class:`ConversionReport` so that records_in == records_out + rejected):

- ``read_compose_logs(path, report=None) -> Iterator[(RecordBatch, BooleanArray)]`` (FLAT_LOG
  batch, and per row whether its time was inferred because the line had none)
- ``read_otlp(path, report=None) -> Iterator[RecordBatch]``          (FLAT_SPAN)
- ``read_prometheus(path, report=None) -> Iterator[RecordBatch]``    (FLAT_METRIC)

Mapping (flat table or batch -> OCSF Arrow table with an explicit schema; ``source`` names the
input for ``metadata.log_name`` and deterministic ``metadata.uid`` s; ``offset`` = rows of that
source already converted, so batch-wise callers get unique uids for rows without line numbers):

- ``logs_to_ocsf(flat, source="logs", offset=0) -> pa.Table``       4002 / 6008 / 6002 / 0
- ``spans_to_ocsf(flat, source="traces", offset=0) -> pa.Table``    4002 / 6003 (+ trace profile)
- ``metrics_to_ocsf(flat, source="metrics", offset=0) -> pa.Table`` Base Event + ``unmapped``

Validation: ``validate_table(table, sample=None) -> ValidationResult`` (official JSON Schema
per class and profile, plus type_uid arithmetic, version and caption checks).

Conversion: ``convert_file(signal, src, out) -> ConversionReport`` (one raw file -> parquet +
``<out>.report.json``), ``convert_dataset(raw_dir, out_dir, incidents=None) -> dict`` (all
three signals of ``raw_dir`` {logs.txt, traces.jsonl, metrics.json} plus ``labels.parquet``).
Labels (ground truth per event uid) are built by :mod:`obslab.labels` and never enter OCSF.
"""

from obslab.ocsf.compose import read_compose_logs
from obslab.ocsf.convert import convert_dataset, convert_file
from obslab.ocsf.mapping import logs_to_ocsf, metrics_to_ocsf, spans_to_ocsf
from obslab.ocsf.otlp import read_otlp
from obslab.ocsf.prometheus import read_prometheus
from obslab.ocsf.report import ConversionReport
from obslab.ocsf.schemas import CLASS_SCHEMAS, SIGNAL_SCHEMAS
from obslab.ocsf.validate import ValidationResult, validate_table

__all__ = [
    "CLASS_SCHEMAS",
    "ConversionReport",
    "SIGNAL_SCHEMAS",
    "ValidationResult",
    "convert_dataset",
    "convert_file",
    "logs_to_ocsf",
    "metrics_to_ocsf",
    "read_compose_logs",
    "read_otlp",
    "read_prometheus",
    "spans_to_ocsf",
    "validate_table",
]
