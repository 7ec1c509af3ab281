"""The container command of finbatch's job definitions, and the job command line it stands for.

AWS Batch substitutes a parameter only for a whole element of the command (``Ref::name``), and
the jobs' options differ (``--start/--end``, ``--as-of``, ``--date``, ``--as-of-month`` ...),
so the definitions run one fixed command::

    finbatch batch run Ref::job Ref::input Ref::output Ref::dates Ref::options

and ``batch run`` turns the five parameters back into the job's own command line:
``JOB --input INPUT --output OUTPUT`` followed by ``dates`` and ``options`` split like a shell
would (``--start 2024-01-02 --end 2024-06-28``; ``--min-nodes 3``). ``none`` (or an empty value)
stands for no options: a console user sees it and replaces it.
"""

from __future__ import annotations

import shlex

from analytics.errors import InputError

#: The job definitions' parameters, in the order the command takes them.
PARAMETER_NAMES = ("job", "input", "output", "dates", "options")
#: The container command (after the image's ENTRYPOINT, ``finbatch``).
COMMAND = ("batch", "run", *(f"Ref::{name}" for name in PARAMETER_NAMES))
#: What a parameter holds when it adds nothing to the command line.
NONE = "none"
#: Options that have their own parameter and must not hide in ``dates`` or ``options``.
_OWN_PARAMETER = {"--input": "input", "--output": "output"}


def _words(name: str, text: str) -> list[str]:
    if text.strip().lower() in ("", NONE):
        return []
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise InputError(
            f"parameter {name!r} = {text!r} cannot be split into options: {err}"
        ) from err
    for word in words:
        option = word.split("=", 1)[0]
        if option in _OWN_PARAMETER:
            raise InputError(
                f"parameter {name!r} = {text!r} sets {option}: give it in the "
                f"{_OWN_PARAMETER[option]!r} parameter instead"
            )
    return words


def job_argv(job: str, input_url: str, output_url: str, dates: str, options: str) -> list[str]:
    """The job command line the five job-definition parameters stand for.

    Raises
    ------
    InputError
        When a parameter is empty where a value is needed, cannot be split like a shell
        would, or repeats ``--input``/``--output`` (which have their own parameters).
    """
    for name, value in (("job", job), ("input", input_url), ("output", output_url)):
        if not value.strip() or value.strip().lower() == NONE:
            raise InputError(f"parameter {name!r} is empty: the job needs it")
    return [
        job.strip(),
        "--input",
        input_url.strip(),
        "--output",
        output_url.strip(),
        *_words("dates", dates),
        *_words("options", options),
    ]
