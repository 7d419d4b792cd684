"""``show --what-if`` as text: each batch's recorded and predicted wall time, the run's, and
the assumption the prediction rests on (always printed: a prediction without it misleads)."""

from __future__ import annotations

from pflow_trace.report.what_if import RunPrediction
from pflow_trace.text import format_duration_ms


def _lanes(count: int) -> str:
    return f"{count} lane" if count == 1 else f"{count} lanes"


def render_prediction(prediction: RunPrediction) -> str:
    lines = [f"what if {prediction.what_if}: {prediction.source}"]
    for batch in prediction.batches:
        lines.append(
            f"  batch {batch.node_id} ({batch.items} items): "
            f"recorded {format_duration_ms(batch.recorded_wall_ms)} on "
            f"{_lanes(batch.recorded_lanes)}, predicted "
            f"{format_duration_ms(batch.predicted_wall_ms)} on {_lanes(batch.lanes)}"
        )
    for node_id in prediction.skipped:
        lines.append(f"  batch {node_id}: no per-item records, left as recorded")
    if not prediction.batches and not prediction.skipped:
        lines.append("  no batch node: nothing changes")
    lines.append(
        f"  run: recorded {format_duration_ms(prediction.recorded_ms)}, predicted "
        f"{format_duration_ms(prediction.predicted_ms)}"
    )
    lines.append(f"  {prediction.assumption}")
    lines.extend(f"  doubtful: {doubt}" for doubt in prediction.doubts)
    return "\n".join(lines) + "\n"
