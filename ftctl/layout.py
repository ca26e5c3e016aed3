"""Names inside a result directory (DESIGN.md §4), defined once.

Writers and readers both take their file names from here, so a layout change is one edit.
"""

from __future__ import annotations

import re
from pathlib import Path

# A test directory, <output-dir>/<test-name>/
RUN_FILE = "run.json"  # ftctl's marker: a directory holding it was written by a run
EVENTS_FILE = "events.jsonl"
TEST_LOG_FILE = "test.log.txt"  # human log with the upstream marker lines
TEST_REPORT_FILE = "report.json"  # one test's report
MARKDOWN_REPORT_FILE = "report.md"
TIMELINE_FILE = "timeline.png"
SUMMARY_FILE = "summary.txt"  # the test's block as `ftctl run` prints it
JUNIT_FILE = "junit.xml"  # the test alone as JUnit XML
# What each value of a scenario's `reports:` writes into the test's directory (`plot` is the
# same timeline as `timeline`, named as `ftctl report --plot` names it; report.json is written
# whatever the list says, because `report` and `compare` read it back).
REPORT_KIND_FILES = {
    "summary": SUMMARY_FILE,
    "markdown": MARKDOWN_REPORT_FILE,
    "json": TEST_REPORT_FILE,
    "junit": JUNIT_FILE,
    "timeline": TIMELINE_FILE,
    "plot": TIMELINE_FILE,
}
# Names ftctl writes into a result directory and never reads back as results.
REPORT_SUFFIXES = (".md", ".png")

# `ftctl run --repeat N`: the i-th run (1-based) of test T is T#i, in name and directory.
REPEAT_SEPARATOR = "#"
_REPEAT = re.compile(r"(.+)#([1-9][0-9]*)")


def repeat_name(test: str, index: int, repeat: int) -> str:
    """The name of the ``index``-th (1-based) of ``repeat`` runs: ``test`` itself when 1."""
    return test if repeat == 1 else f"{test}{REPEAT_SEPARATOR}{index}"


def split_repeat(name: str) -> tuple[str, int | None]:
    """(base test name, repeat index) of ``T#i``; (name, None) for a name without one."""
    match = _REPEAT.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else (name, None)


# The output root
RUN_REPORT_FILE = "report.json"  # the run's aggregate report
PREVIOUS_DIR = ".previous"  # earlier results set aside by a new run
LOADS_DIR = "loads"  # named loads of a test with several

CLIENT_PREFIX = "client_"  # client_N.log.txt (legacy) and client_N/ (aiperf)

# Legacy client: JSONL, one line per logical request
CLIENT_LOG_GLOB = "client_*.log.txt"
CLIENT_LOG_RE = re.compile(r"^client_(\d+)\.log\.txt$")
LOAD_WORKER_STDERR_GLOB = "load_worker_*.stderr.log"
LOAD_RUN_FILE = "load.json"  # what `ftctl load` saves beside the JSONL (spec + summary)

# aiperf client: client_N/attempt_M/
CLIENT_DIR_RE = re.compile(r"^client_(\d+)$")
ATTEMPT_DIR_RE = re.compile(r"^attempt_(\d+)$")
AIPERF_SUMMARY_FILE = "profile_export_aiperf.json"
AIPERF_RECORDS_FILE = "profile_export.jsonl"
AIPERF_CSV_FILE = "profile_export_aiperf.csv"
GENAI_PERF_LOG = "genai_perf.log"
AIPERF_LOG = Path("logs") / "aiperf.log"
ATTEMPT_FILE = "attempt.json"  # ftctl's record of one attempt
PROMPTS_FILE = "prompts.jsonl"

# Pods, one folder per service: <Service>/<pod><suffix>
LOG_SUFFIX = ".log"
PREVIOUS_LOG_SUFFIX = ".previous.log"  # the log before a restart
METRICS_LOG_SUFFIX = ".metrics.log"  # one /metrics scrape at collection
POD_EVENTS_SUFFIX = ".events.log"
POD_YAML_SUFFIX = ".yaml"  # pod manifest and status
NOT_POD_LOG_SUFFIXES = (METRICS_LOG_SUFFIX, POD_EVENTS_SUFFIX)  # *.log that are not logs
METRICS_SUFFIX = ".metrics.jsonl"  # server-side series scraped during the run
RESOURCES_SUFFIX = ".resources.jsonl"
DGD_FILE = "dgd.yaml"  # the DynamoGraphDeployment applied (kubernetes)


def client_log(client: int) -> str:
    """``client_<N>.log.txt``."""
    return f"client_{client}.log.txt"


def warmup_log(client: int) -> str:
    """``warmup_<N>.log.txt``: a client's warmup requests, as JSONL, never counted."""
    return f"warmup_{client}.log.txt"


def load_worker_stderr(process: int) -> str:
    """``load_worker_<P>.stderr.log``."""
    return f"load_worker_{process}.stderr.log"


def client_dir(client: int) -> str:
    """``client_<N>`` (aiperf)."""
    return f"client_{client}"


def attempt_dir(attempt: int) -> str:
    """``attempt_<M>`` (aiperf)."""
    return f"attempt_{attempt}"


def labelled_metrics_suffix(label: str) -> str:
    """``.<label>.metrics.log``: a /metrics snapshot taken by a capture_metrics event."""
    return f".{label}{METRICS_LOG_SUFFIX}"


def pod_file(result_dir: Path, service: str, pod: str, suffix: str) -> Path:
    """``<result_dir>/<Service>/<pod><suffix>``."""
    return Path(result_dir) / service / f"{pod}{suffix}"
