from jupyter_aigc.core.template import interpolate
from jupyter_aigc.record.chat import ChatSession


class Box:
    name = "boxed"


def test_known_variables_are_inserted():
    assert interpolate("Hi {who}, {n} times", {"who": "Ada", "n": 3}) == "Hi Ada, 3 times"


def test_attribute_and_index_paths():
    ns = {"box": Box(), "items": ["a", "b"], "Out": {3: "three"}}
    assert interpolate("{box.name} {items[1]} {items[-1]}", ns) == "boxed b b"


def test_unknown_names_and_code_braces_stay_as_written():
    code = 'def f(x):\n    return {"a": x, **{}}\nprint(f"{x!r} {y:>4}")\n{missing}'
    assert interpolate(code, {"x": 1}) == code


def test_known_name_inside_fstring_spec_is_left_alone():
    assert interpolate('f"{x:>4}"', {"x": 5}) == 'f"{x:>4}"'


def test_double_braces_escape():
    assert interpolate("{{who}} is {who}", {"who": "Ada"}) == "{who} is Ada"


def test_bad_path_stays_as_written():
    assert interpolate("{items[5]} {box.nope}", {"items": [1], "box": Box()}) == "{items[5]} {box.nope}"


def test_chat_memory_orders_turns_and_replaces_a_rerun_cell():
    chat = ChatSession()
    chat.record("c1", "Q1", "A1", "m")
    chat.record("c2", "Q2", "A2", "m")
    assert [m["content"] for m in chat.messages("Q3", cell="c3")] == ["Q1", "A1", "Q2", "A2", "Q3"]
    # re-running c1 sees nothing before it, and replaces its turn (dropping the turns built on it)
    assert [m["content"] for m in chat.messages("Q1b", cell="c1")] == ["Q1b"]
    chat.record("c1", "Q1b", "A1b", "m")
    assert [(t.cell, t.answer) for t in chat.turns] == [("c1", "A1b")]


def test_rerun_of_last_cell_does_not_duplicate():
    chat = ChatSession()
    chat.record("c1", "Q1", "A1", "m")
    chat.record("c2", "Q2", "A2", "m")
    chat.record("c2", "Q2", "A2 again", "m")
    assert [t.answer for t in chat.turns] == ["A1", "A2 again"]


def test_system_prompt_comes_first():
    chat = ChatSession()
    assert chat.messages("hi", system="Be brief.")[0] == {"role": "system", "content": "Be brief."}


def test_nested_json_braces_are_untouched():
    text = 'Parse {"a": {"b": [1, {"c": 2}]}} for {who}'
    assert interpolate(text, {"who": "me"}) == 'Parse {"a": {"b": [1, {"c": 2}]}} for me'
