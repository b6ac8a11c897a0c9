"""Report formats for an :class:`~fluxparity.experiment.Experiment`: terminal text, JSON, Markdown, CSV, PNG."""

from ._files import write_reports
from ._json import REPORT_SCHEMA_VERSION, experiment_to_dict, read_report
from ._terminal import format_experiment

__all__ = ["REPORT_SCHEMA_VERSION", "experiment_to_dict", "format_experiment", "read_report", "write_reports"]
