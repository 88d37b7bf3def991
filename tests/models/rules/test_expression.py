"""Rule expressions: compiled against the config's names, refused with line, column and
reason, and run on one transaction without ever raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis_app.core import config as config_files
from models.rules.expression import ExpressionError, compile_expression
from models.rules.lexer import IDENT, INT, NUMBER, STRING, tokens
from models.rules.vocabulary import Vocabulary, as_list_item

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
SPARKOV = Vocabulary.from_config(config_files.load(CONFIGS / "sparkov.toml"), ["vip_cards"])
HANDBOOK = Vocabulary.from_config(config_files.load(CONFIGS / "handbook.toml"))
LISTS = {"vip_cards": frozenset({"4613314721966"})}
RECORD = {
    "transaction_id": "t1",
    "card": "4613314721966",
    "merchant": "fraud_Rippin",
    "amount": 300.0,
    "ts": 1546300818,  # 2019-01-01 00:00:18 UTC
    "category": "misc_net",
    "city_pop": 3495.0,
    "home.lat": 40.5,
    "home.lon": -70.0,
}
FEATURES = {"card_amount_mean_30d": 20.0, "card_count_1d": 4, "card_amount_std_30d": float("nan")}


def run(text: str, record=RECORD, features=FEATURES):
    expression = compile_expression(text, SPARKOV)
    return expression.test(SPARKOV.variables(record, features), LISTS)


def test_the_issue_example_matches_with_numbers_of_either_kind():
    # 5 is a whole number, the mean a double: CEL alone would refuse to multiply them
    text = "amount > 5 * card_amount_mean_30d && card_count_1d >= 4"
    assert run(text) == (True, None)
    assert run(text, features={**FEATURES, "card_count_1d": 3}) == (False, None)


def test_names_of_the_record_fields_features_and_lists():
    assert run("card in lists.vip_cards") == (True, None)
    assert run("merchant in lists.vip_cards") == (False, None)
    assert run("!(card in lists.vip_cards) || hour == 0") == (True, None)
    assert run("category == 'misc_net' && city_pop < 5000") == (True, None)
    assert run("home.lat > 40 && home.lon < -69.5") == (True, None)
    assert run("ts >= 1546300818 && transaction_id.startsWith('t')") == (True, None)
    assert run("[1, 2, 3].exists(x, x * 100 >= amount)") == (True, None)
    # a feature named like a Handbook column is a valid name
    assert compile_expression("CUSTOMER_ID_NB_TX_1DAY_WINDOW > 3", HANDBOOK).reads == (
        "CUSTOMER_ID_NB_TX_1DAY_WINDOW",
    )


@pytest.mark.parametrize(
    "text,line,column,reason",
    [
        ("amount >", 1, 9, "Syntax error"),
        ("amount > 5 &&\n  amout < 3", 2, 3, "unknown name 'amout'"),
        ("card in lists.nope", 1, 15, "unknown list 'nope' (lists: vip_cards)"),
        ("size(lists.vip_cards) > 2", 1, 6, "a list is used as `<field> in lists.<name>`"),
        ("amount + 1 in lists.vip_cards", 1, 15, "a list is used as"),
        ("amount", 1, 1, "not true or false"),
        ("card > 5", 1, 1, "type error"),
        ("card_count_1d > 2 && nosuch(amount)", 1, 22, "unknown function 'nosuch'"),
        ("lists > 1", 1, 1, "a list is used as"),
        ("   ", 1, 1, "empty"),
    ],
)
def test_refused_with_position_and_reason(text, line, column, reason):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, SPARKOV)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert reason in error.reason
    assert str(error).startswith(f"line {line}, column {column}: ")


def test_an_unknown_name_suggests_the_close_ones():
    with pytest.raises(ExpressionError, match="did you mean card_count_1d"):
        compile_expression("card_count_1 > 2", SPARKOV)


def test_runtime_failures_are_answers_not_exceptions():
    # a missing feature (NaN: no history yet) is null: the comparison cannot be answered
    matched, error = run("card_amount_std_30d > 2")
    assert matched is False and "No such overload" in error
    assert run("card_amount_std_30d != null && card_amount_std_30d > 2") == (False, None)
    matched, error = run("(city_pop - 3495) / (city_pop - 3495) > 1")  # NaN
    assert matched is False and error
    expression = compile_expression("card in lists.vip_cards", SPARKOV)
    assert expression.test(SPARKOV.variables(RECORD, FEATURES), {}) == (
        False,
        "list 'vip_cards' is not defined",
    )


def test_strings_and_comments_are_left_as_written():
    # the 5 inside the text and the comment are not numbers to rewrite
    assert run("category != 'x5' // 5 > amount\n && amount > 5") == (True, None)
    source = r"""r'a\d' + "x\"y" + '''b''' 12 1.5 3u 0x1F x"""
    kinds = [(t.kind, t.text) for t in tokens(source)]
    assert kinds == [
        (STRING, r"r'a\d'"),
        ("punct", "+"),
        (STRING, r'"x\"y"'),
        ("punct", "+"),
        (STRING, "'''b'''"),
        (INT, "12"),
        (NUMBER, "1.5"),
        (NUMBER, "3u"),
        (NUMBER, "0x1F"),
        (IDENT, "x"),
    ]


def test_list_items_are_compared_as_text():
    assert as_list_item(5.0) == "5" and as_list_item(5.5) == "5.5"
    assert as_list_item("0007") == "0007" and as_list_item(None) is None
    assert as_list_item(float("nan")) is None and as_list_item(True) == "true"


def test_a_ratio_of_features_is_not_taken_for_a_type_error():
    assert run("amount / card_amount_mean_30d > 5") == (True, None)
