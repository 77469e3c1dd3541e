"""Stage 1 — prepare data: validate, measure, convert and split fine-tuning files."""

from selftune.data.check import check, iter_examples
from selftune.data.formats import ChatExample, PreferenceExample
from selftune.data.problems import Problem, Report

__all__ = ["ChatExample", "PreferenceExample", "Problem", "Report", "check", "iter_examples"]
