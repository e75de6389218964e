from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from mdp_runtime.exposition import metric_prefix, render

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], str]:
    """A minimal reader of the text format, strict enough to catch malformed output."""
    samples = {}
    # Only "\n" ends a line in the format; str.splitlines() would also split on U+0085 etc.
    for line in text.split("\n"):
        if not line or line.startswith("# TYPE "):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"malformed sample line: {line!r}"
        labels: tuple[tuple[str, str], ...] = ()
        if match["labels"]:
            pairs = _LABEL.findall(match["labels"])
            rebuilt = ",".join(f'{k}="{v}"' for k, v in pairs)
            assert rebuilt == match["labels"], f"malformed labels: {line!r}"
            labels = tuple((k, _unescape(v)) for k, v in pairs)
        samples[match["name"], labels] = match["value"]
    return samples


def test_nested_keys_join_under_the_prefix() -> None:
    text = render("mdp_processor", {"events": {"decoded": 5, "rejected": 2}, "lag_ms": 1.5})
    assert parse(text) == {
        ("mdp_processor_events_decoded", ()): "5",
        ("mdp_processor_events_rejected", ()): "2",
        ("mdp_processor_lag_ms", ()): "1.5",
    }


def test_label_keys_become_labels_and_nest() -> None:
    snapshot = {"queue=md.trades": {"consumer=c1": {"depth": 3}, "depth": 7}}
    assert parse(render("mdp_x", snapshot)) == {
        ("mdp_x_depth", (("consumer", "c1"), ("queue", "md.trades"))): "3",
        ("mdp_x_depth", (("queue", "md.trades"),)): "7",
    }


def test_each_family_has_one_type_line_before_its_samples() -> None:
    text = render("mdp_x", {"a=1": {"n": 1}, "a=2": {"n": 2}, "m": 0})
    assert text.splitlines() == [
        "# TYPE mdp_x_m untyped",
        "mdp_x_m 0",
        "# TYPE mdp_x_n untyped",
        'mdp_x_n{a="1"} 1',
        'mdp_x_n{a="2"} 2',
    ]


def test_values_bools_and_special_floats() -> None:
    snapshot = {"up": True, "down": False, "nan": math.nan, "inf": math.inf, "ninf": -math.inf}
    assert parse(render("p", snapshot)) == {
        ("p_up", ()): "1",
        ("p_down", ()): "0",
        ("p_nan", ()): "NaN",
        ("p_inf", ()): "+Inf",
        ("p_ninf", ()): "-Inf",
    }


def test_non_numeric_leaves_are_left_out() -> None:
    assert render("p", {"feed": "delayed", "none": None, "list": [1, 2], "empty": {}}) == ""


def test_names_and_label_names_are_sanitized() -> None:
    text = render("mdp_x", {"decode-errors.total": {"0kind=a b": 1, "__name__=z": 2}})
    assert parse(text) == {
        ("mdp_x_decode_errors_total", (("_0kind", "a b"),)): "1",
        ("mdp_x_decode_errors_total", (("l__name__", "z"),)): "2",
    }


def test_label_values_are_escaped() -> None:
    text = render("p", {'path=a\\b "c"\nd': {"n": 1}})
    assert text.splitlines()[1] == 'p_n{path="a\\\\b \\"c\\"\\nd"} 1'


def test_the_first_of_two_colliding_series_wins() -> None:
    assert parse(render("p", {"a_b": 1, "a": {"b": 2}})) == {("p_a_b", ()): "1"}


def test_metric_prefix_drops_a_leading_mdp() -> None:
    assert metric_prefix("listener") == "mdp_listener"
    assert metric_prefix("mdp-listener") == "mdp_listener"
    assert metric_prefix("news-processor") == "mdp_news_processor"


@given(
    values=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda s: "=" not in s),
        st.text(max_size=20),
        min_size=1,
        max_size=4,
    ),
    number=st.integers(min_value=-(2**63), max_value=2**63),
)
def test_any_label_value_round_trips_through_the_text(values: dict[str, str], number: int) -> None:
    snapshot: dict[str, object] = {"n": number}
    for index, value in enumerate(values.values()):
        snapshot = {f"l{index}={value}": snapshot}
    samples = parse(render("p", snapshot))
    expected_labels = tuple(sorted((f"l{i}", v) for i, v in enumerate(values.values())))
    assert samples == {("p_n", expected_labels): str(number)}
