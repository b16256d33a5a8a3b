"""JavaScript's text rules that promptfoo's assertions compute with, ported so that our checks agree with its:
``String(x)`` of a value, a JavaScript RegExp run by ``regex``, ``JSON.parse``, promptfoo's JSON-in-text finder
(``extractJsonObjects``), edit distance over UTF-16 code units (fastest-levenshtein's ``distance``) and js-rouge
3.2.3's Penn Treebank tokenizer (``treeBankTokenize``), which its ROUGE-N counts over.
"""

from __future__ import annotations

import json
from decimal import Decimal

import regex

JS_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # JavaScript's \s
MAX_JSON = 100_000  # extractJsonObjects looks this far after each "{"


def js_number(x: float) -> str:
    """``String(x)`` for a number: shortest digits, positional from 1e-7 to 1e21, else 1.5e-7 / 1e+21."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign, (_, digits, exponent) = "-" if x < 0 else "", Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), exponent + len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def js_string(value) -> str:
    """``String(value)`` for what YAML and JSON give: true, 4 (not 4.0), null, 'a,b' for a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, (list, tuple)):
        return ",".join("" if item is None else js_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def js_json(value) -> str:
    """``JSON.stringify(value)``: compact, integral floats without '.0', non-ASCII kept."""
    def plain(item):
        if isinstance(item, float) and item.is_integer() and abs(item) < 1e21:
            return int(item)
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        return item

    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"), default=str)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def json_parse(text: str):
    """``JSON.parse``: ValueError for what JavaScript refuses (NaN and Infinity included)."""
    return json.loads(text, parse_constant=_no_constant)


def js_regex(pattern: str):
    """A JavaScript RegExp without flags, compiled by ``regex`` to mean the same: \\d, \\w and \\b are ASCII, \\s
    is JavaScript's space, ``.`` does not match line ends, ``$`` matches only at the very end. Syntax JavaScript
    refuses (inline flags, atomic groups, possessive quantifiers) raises ValueError, as ``new RegExp`` throws."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 == len(pattern):
                raise ValueError("\\ at end of pattern")
            n = pattern[i + 1]
            named = regex.match(r"k<([A-Za-z_$][\w$]*)>", pattern[i + 1:])
            if named and not in_class:
                out.append(f"(?P={named.group(1)})")
                i += 1 + named.end()
                continue
            out.append({"s": JS_SPACE if in_class else f"[{JS_SPACE}]", "/": "/", "p": "p", "P": "P"}.get(n, "\\" + n))
            if n == "S" and not in_class:
                out[-1] = f"[^{JS_SPACE}]"
            i += 2
            continue
        if in_class:
            in_class = c != "]"
            out.append("\\[" if c == "[" else c)
        elif c == "[":
            empty = regex.match(r"\[\^?\]", pattern[i:])
            if empty:  # [] matches nothing, [^] anything
                out.append("(?!)" if empty.group() == "[]" else "[\\s\\S]")
                i += empty.end()
                continue
            in_class = True
            out.append("[^" if pattern.startswith("[^", i) else "[")
            i += 1 + pattern.startswith("[^", i)
            continue
        elif c == "(" and pattern.startswith("(?", i) and not regex.match(r"\(\?(?::|=|!|<=|<!|<[A-Za-z_$][\w$]*>)",
                                                                          pattern[i:]):
            raise ValueError("Invalid group")
        elif c in "+*?" and pattern[i + 1:i + 2] == "+" and not (c == "?" and pattern[i - 1:i] in ("", "(", "|")):
            raise ValueError("Nothing to repeat")
        else:
            out.append({".": "[^\\n\\r\\u2028\\u2029]", "$": "\\Z"}.get(c, c))
        i += 1
    if in_class:
        raise ValueError("Unterminated character class")
    try:
        return regex.compile("".join(out), regex.ASCII)
    except regex.error as exc:
        raise ValueError(str(exc)) from None


def _slash_comments_to_hash(text: str) -> str:
    """promptfoo's convertSlashCommentsToHash: // comments outside quotes become # (URLs are kept)."""
    lines = []
    for line in text.split("\n"):
        state, result, i = "normal", "", 0
        while i < len(line):
            char, following = line[i], line[i + 1:i + 2]
            before = line[i - 1] if i else ""
            if state == "normal":
                if char == "'" and not (before.isascii() and before.isalpha()):
                    state = "single"
                elif char == '"':
                    state = "double"
                elif char == "/" and following == "/":
                    start = next((j + 1 for j in range(i - 1, -1, -1) if regex.match(f"[{JS_SPACE}]", line[j])), 0)
                    if "://" not in line[start:i + 2]:
                        count = 2
                        while line[i + count:i + count + 1] == "/":
                            count += 1
                        result += "#" * (count // 2) + line[i + count:]
                        break
            elif char == ("'" if state == "single" else '"') and not _escaped(line, i) and \
                    (state == "double" or not (following == "" or following.isascii() and following.isalpha())):
                state = "normal"
            result += char
            i += 1
        lines.append(result)
    return "\n".join(lines)


def _escaped(line: str, index: int) -> bool:
    count = 0
    while index - count - 1 >= 0 and line[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _yaml(text: str):
    import yaml

    return yaml.safe_load(text)


def extract_json_objects(text: str) -> list:
    """promptfoo's extractJsonObjects: from each "{", braces counted (quotes not minded), the shortest balanced
    span (or the rest, closed) that YAML reads as an object."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "{":
            opened, closed, j = 1, 0, i + 1
            end = min(i + MAX_JSON, len(text))
            while j < end and opened > closed:
                opened += text[j] == "{"
                closed += text[j] == "}"
                j += 1
                if opened == closed or j == len(text) or j == i + MAX_JSON:
                    try:
                        value = _yaml(_slash_comments_to_hash(text[i:j] + "}" * max(opened - closed, 0)))
                    except Exception:  # noqa: BLE001 - any YAML error: not an object here
                        if opened == closed:
                            break
                        continue
                    if isinstance(value, (dict, list)):
                        found.append(value)
                        i = j - 1
                        break
        i += 1
    return found


def levenshtein(a: str, b: str) -> int:
    """Edit distance over UTF-16 code units, as fastest-levenshtein counts (an emoji is two)."""
    x, y = memoryview(a.encode("utf-16-le")).cast("H"), memoryview(b.encode("utf-16-le")).cast("H")
    start = 0
    while start < min(len(x), len(y)) and x[start] == y[start]:
        start += 1
    stop_x, stop_y = len(x), len(y)
    while stop_x > start and stop_y > start and x[stop_x - 1] == y[stop_y - 1]:
        stop_x, stop_y = stop_x - 1, stop_y - 1
    x, y = x[start:stop_x], y[start:stop_y]
    row = list(range(len(y) + 1))
    for i, unit in enumerate(x, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(y, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (unit != other))
    return row[-1]


_WORDISH = r"[\p{ID_Continue}\u200c\u200d]"
_CONTRACTIONS = [regex.compile(rf"(?<!{_WORDISH}){p}(?!{_WORDISH})", regex.IGNORECASE) for p in (
    "(can)(not)", "(d)('ye)", "(gim)(me)", "(gon)(na)", "(got)(ta)", "(lem)(me)", "(more)('n)", "(wan)(na)(?= )",
    "('t)(is)", "('t)(was)")]


def _opens_quote(text: str, index: int) -> bool:
    """js-rouge's quoteOpeningContext."""
    return index == 0 or bool(regex.match(rf"[{JS_SPACE}\p{{Punctuation}}<]", text[index - 1])) or \
        text[index - 2:index] == "``" or _after_modifier(text, index)


def _after_modifier(text: str, index: int) -> bool:
    """js-rouge's followsQuotedModifier: a modifier letter after a closed sentence is a footnote mark."""
    modifier = regex.search(r"\p{Lm}$", text[max(0, index - 2):index])
    if modifier is None:
        return False
    mark = index - len(modifier.group()) - 1
    following = text[mark + 1:mark + 2]
    import unicodedata

    if following == unicodedata.normalize("NFKC", following) or \
            not regex.match(r"\p{Lm}(?:[" + JS_SPACE + r".,;:!?\"'“‘”’\])}>]|$)", text[mark + 1:mark + 5]):
        return False
    start = index - len(modifier.group())
    while start > 0:
        number = regex.search(r"\p{Number}$", text[max(0, start - 2):start])
        if number is None:
            break
        start -= len(number.group())
    return bool(regex.search("[.!?][\"'”’]$", text[max(0, start - 2):start]))


def treebank_tokens(text: str) -> list[str]:
    """js-rouge's treeBankTokenize (Penn Treebank rules: quotes, punctuation and contractions split off)."""
    text = regex.sub(f"[{JS_SPACE}\x85]+", " ", text)
    text = regex.sub(f"^[{JS_SPACE}]+|[{JS_SPACE}]+$", "", text)
    if not text:
        return []
    inside = False

    def quote(match) -> str:
        nonlocal inside
        mark, at = match.group(), match.start()
        before = text[at - 1] if at else ""
        inside = mark == "``" or (
            (at + len(mark) < len(text) or at == 0 or bool(regex.match(rf"[{JS_SPACE}\p{{Ps}}<]", before)))
            and not inside and _opens_quote(text, at) and not regex.match("[.!?]", before)
            and (mark == '"' or (at > 0 and bool(regex.fullmatch(r"[\p{Letter}\p{Number}\p{Sc}\p{Ps}]",
                                                                  text[at + 2:at + 3]))
                                 and (regex.search("``|''|\"", text[at + 2:]) or [None])[0] == "''")))
        return " `` " if inside else " '' "

    parse = regex.sub("``|''|\"", quote, text)
    for pattern, replacement in ((r"\.{3}", " ... "), (r"[:,](?!\p{Decimal_Number})", r" \g<0> "),
                                 ("[;@#$%&]", r" \g<0> "),
                                 (rf"([^.])(?<!\b[A-Za-z]\.[A-Za-z])(\.)([\])}}>'{JS_SPACE}]*)\Z", r"\1 \2\3 "),
                                 ("[?!]", r" \g<0> "), (r"[\]\[(){}<>]", r" \g<0> "), ("--", " -- ")):
        parse = regex.sub(pattern, replacement, parse, flags=regex.ASCII if r"\b" in pattern else 0)
    parse = f" {parse} "
    parse = regex.sub("([^'])' ", r"\1 ' ", parse)
    parse = regex.sub("'([sSmMdD]) ", r" '\1 ", parse)
    parse = regex.sub("('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r" \1 ", parse)
    for contraction in _CONTRACTIONS:
        parse = contraction.sub(r" \1 \2 ", parse)
    parse = regex.sub("^ | $", "", regex.sub(" {2,}", " ", parse))
    return parse.split(" ")
