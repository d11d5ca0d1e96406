"""What LLM calls cost: ``duro.record_usage`` inside a step, stored with the step's
outcome, summed per run (``handle.usage()``) and in ``duro stats``."""

from duro._usage import UsageTotals
from duro.usage._prices import ModelPrice, set_model_prices
from duro.usage._record import Usage, record_usage
from duro.usage._summary import RunUsage

__all__ = ["ModelPrice", "RunUsage", "Usage", "UsageTotals", "record_usage",
           "set_model_prices"]
