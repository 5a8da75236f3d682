"""Per-customer usage charts (pyqtgraph): the CustomerChart widget and the browsable ChartsPage."""

from meterdesk.ui.charts.model import ChartModel
from meterdesk.ui.charts.page import ChartsPage
from meterdesk.ui.charts.widget import CustomerChart
from meterdesk.ui.charts.worker import ChartRequest

__all__ = ["ChartModel", "ChartRequest", "ChartsPage", "CustomerChart"]
