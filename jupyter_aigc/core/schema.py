"""JSON-schema validation of answers, where a ``pattern`` cannot hang the kernel.

jsonschema matches ``pattern`` with Python's ``re``, which holds the GIL while it backtracks: a pattern such as
``^(a+)+$`` on a 30-character answer keeps the kernel from even seeing Kernel → Interrupt for seconds. Here
``pattern`` is matched by the ``regex`` package with a time limit and the GIL released.
"""

from __future__ import annotations

PATTERN_TIME_LIMIT = 0.5  # seconds for one match


def _pattern(validator, pattern, instance, schema):
    import regex
    from jsonschema import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        found = regex.search(pattern, instance, timeout=PATTERN_TIME_LIMIT, concurrent=True)
    except TimeoutError:
        yield ValidationError(f"the pattern {pattern!r} took longer than {PATTERN_TIME_LIMIT} s to match "
                              f"(it backtracks without end; simplify it)")
        return
    except regex.error as exc:
        yield ValidationError(f"the pattern {pattern!r} is not a regular expression ({exc})")
        return
    if found is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def validator(schema: dict):
    """A jsonschema validator for ``schema`` (its own draft) whose ``pattern`` has a time limit."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    return jsonschema.validators.extend(base, {"pattern": _pattern})(schema)


def first_error(instance, schema: dict) -> str | None:
    """Why ``instance`` does not follow ``schema``, or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(instance))
    return None if error is None else error.message
