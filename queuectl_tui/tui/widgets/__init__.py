"""The screens' parts: counts header, jobs table, workers pane, throughput line, key bar."""

from queuectl_tui.tui.widgets.counts import CountsHeader
from queuectl_tui.tui.widgets.jobs_table import JobsTable, KeyedTable
from queuectl_tui.tui.widgets.keybar import KeyBar
from queuectl_tui.tui.widgets.tabbar import TabBar
from queuectl_tui.tui.widgets.throughput import ThroughputLine
from queuectl_tui.tui.widgets.workers import WorkersPane

__all__ = [
    "CountsHeader",
    "JobsTable",
    "KeyBar",
    "KeyedTable",
    "TabBar",
    "ThroughputLine",
    "WorkersPane",
]
