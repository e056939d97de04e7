"""Prompts: defaults from the Task, templates, few-shot choice, verbalisers, the prompt hash."""

from __future__ import annotations

import pandas as pd
import pytest

import jlabel as jl
from jlabel.prompts import Prompt, choose_examples, default_prompt


def test_default_prompt_lists_labels_and_descriptions():
    task = jl.Task({"World": "politics and conflicts", "Sports": ""}, instructions="Topic of the news?")
    text = default_prompt(task).system_text()
    assert text.startswith("Topic of the news?")
    assert "- World: politics and conflicts" in text and "- Sports" in text


def test_record_comes_last_so_the_prefix_is_shared(task):
    p = default_prompt(task, template="News: {text}", examples=[("Goal!", "Sports"), ("Rates up", "Business")])
    a, b = p.messages("first record"), p.messages("second record")
    assert a[:-1] == b[:-1]
    assert a[-1] == {"role": "user", "content": "News: first record"}
    assert [m["content"] for m in a[1:5]] == ["News: Goal!", "Sports", "News: Rates up", "Business"]


@pytest.mark.parametrize("template", ["no field", "{text} and {text}", "{text} {title}", "{}"])
def test_template_needs_text_once(task, template):
    with pytest.raises(ValueError, match="exactly once"):
        Prompt(task, template=template)


def test_literal_braces_in_template(task):
    assert Prompt(task, template='{{"json": true}} {text}').user_text("x") == '{"json": true} x'


def test_examples_and_verbalizers_are_checked(task):
    with pytest.raises(ValueError, match="Unknown label 'Weather'"):
        Prompt(task, examples=[("rain", "Weather")])
    with pytest.raises(ValueError, match="Unknown label 'Tech'"):
        Prompt(task, verbalizers={"Tech": ["Technology"]})
    with pytest.raises(ValueError, match="non-empty"):
        Prompt(task, verbalizers={"Sci/Tech": [""]})
    p = Prompt(task, verbalizers={"Sci/Tech": "Technology"})
    assert p.forms("Sci/Tech") == ("Technology",) and p.forms("World") == ("World",)


def test_hash_changes_with_what_shapes_the_answer(task):
    base = default_prompt(task)
    assert base.hash == default_prompt(task).hash
    others = [
        default_prompt(task, template="Text: {text}"),
        default_prompt(task, examples=[("Goal!", "Sports")]),
        default_prompt(task, verbalizers={"Sci/Tech": ["Science"]}),
        default_prompt(jl.Task(["World", "Sports"])),
    ]
    assert len({base.hash, *(p.hash for p in others)}) == 5


def test_multi_prompt_asks_one_label_at_a_time():
    task = jl.Task(["Politics", "Economy"], kind="multi")
    p = default_prompt(task, examples=[("Budget vote", ["Politics", "Economy"]), ("Rates", ["Economy"])])
    messages = p.messages("Tax cut passes", "Politics")
    assert "'Politics'" in messages[-1]["content"] and messages[-1]["content"].endswith("Answer yes or no.")
    assert [m["content"] for m in messages if m["role"] == "assistant"] == ["yes", "no"]
    with pytest.raises(ValueError, match="label="):
        p.messages("Tax cut passes")


def test_choose_examples_balanced_recent_and_shuffled(task):
    labels = ["World", "Sports", "World", "Business", "Sports", "Sci/Tech", None, "World"]
    df = pd.DataFrame({"text": [f"t{i}" for i in range(8)], "label": labels})
    chosen = choose_examples(df, task, per_label=1, seed=0)
    assert sorted(chosen) == [("t3", "Business"), ("t4", "Sports"), ("t5", "Sci/Tech"), ("t7", "World")]
    assert choose_examples(df, task, per_label=1, seed=0) == chosen  # same seed, same order
    orders = {tuple(label for _, label in choose_examples(df, task, seed=s)) for s in range(8)}
    assert len(orders) > 1 and len({order[-1] for order in orders}) > 1  # no label always last
    assert len(choose_examples(df, task, per_label=2)) == 6
    assert choose_examples(df.assign(label=None), task) == []


def test_choose_examples_prefers_latest_by_time(task):
    df = pd.DataFrame(
        {
            "text": ["old", "new"],
            "label": ["World", "World"],
            "labeled_at": pd.to_datetime(["2026-01-02", "2026-01-01"], utc=True),
        }
    )
    assert choose_examples(df, task) == [("old", "World")]
    with pytest.raises(ValueError, match="per_label"):
        choose_examples(df, task, per_label=-1)


def test_choose_examples_pairs_each_text_with_its_own_label_when_the_index_repeats(task):
    df = pd.DataFrame({"text": ["UNLABELED bank news", "sports news"], "label": [None, "Sports"]}, index=[0, 0])
    assert choose_examples(df, task) == [("sports news", "Sports")]
    given = pd.Series(["rendered bank", "rendered sports"], index=df.index)  # as preannotate passes them
    assert choose_examples(df, task, text_of=given) == [("rendered sports", "Sports")]  # was the bank text


def test_labels_joining_alternatives_are_scored_through_their_parts():
    task = jl.Task(["World", "Sci/Tech", "Arts & Culture", "N/A"])
    p = jl.prompts.Prompt(task)
    assert p.forms("Sci/Tech") == ("Sci/Tech", "Sci", "Tech")
    assert p.forms("Arts & Culture") == ("Arts & Culture", "Arts", "Culture")
    assert p.forms("N/A") == ("N/A",) and p.forms("World") == ("World",)  # one-letter parts say nothing
    assert p.answer("Sci/Tech") == "Sci/Tech"  # a few-shot answer is the label itself
    # a user's verbalisers win; split_labels=False scores names only
    mine = jl.prompts.Prompt(task, verbalizers={"Sci/Tech": ["Science"]})
    assert mine.forms("Sci/Tech") == ("Science",) and mine.forms("Arts & Culture")[1:] == ("Arts", "Culture")
    assert jl.prompts.Prompt(task, split_labels=False).forms("Sci/Tech") == ("Sci/Tech",)
    # the parts shape the answer, so they are in the hash; prompts without such labels keep their hash
    assert p.hash != jl.prompts.Prompt(task, split_labels=False).hash
    plain = jl.Task(["World", "Sports"])
    assert jl.prompts.Prompt(plain).hash == jl.prompts.Prompt(plain, split_labels=False).hash
    same = jl.prompts.Prompt(task, verbalizers={"Sci/Tech": ["Sci/Tech", "Sci", "Tech"]})
    assert same.hash == p.hash  # the same forms score the same: the cache may share them
    assert p.with_examples([("x", "World")]).forms("Sci/Tech") == p.forms("Sci/Tech")
    with pytest.raises(TypeError, match="split_labels"):
        jl.prompts.Prompt(task, split_labels="yes")


def test_label_parts_leave_out_shared_parts_and_other_labels_names():
    parts = jl.prompts.label_parts(["Sports/Tennis", "Sports/Golf", "Business", "Business/Finance"])
    assert parts == {
        "Sports/Tennis": ("Sports/Tennis", "Tennis"),
        "Sports/Golf": ("Sports/Golf", "Golf"),
        "Business/Finance": ("Business/Finance", "Finance"),
    }
    assert jl.prompts.label_parts(["a/b", "c"]) == {}
    multi = jl.Task(["Sci/Tech", "World"], kind="multi")
    assert jl.prompts.Prompt(multi).forms("Sci/Tech") == ("Sci/Tech",)  # yes/no questions name the label


def test_names_with_one_letter_parts_stay_whole_and_a_users_forms_are_not_repeated():
    assert jl.prompts.label_parts(["AT&T", "24/7", "A/B testing", "S&P 500", "Sci/Tech"]) == {
        "Sci/Tech": ("Sci/Tech", "Sci", "Tech")
    }
    task = jl.Task(["World", "Science/Health", "Sci/Tech"])
    p = jl.prompts.Prompt(task, verbalizers={"Sci/Tech": ["Sci/Tech", "Science", "Technology"]})
    assert p.forms("Science/Health") == ("Science/Health", "Health")  # "Science" answers for Sci/Tech only
    only = jl.prompts.Prompt(jl.Task(["Sci/Tech", "World"]), verbalizers={"World": ["sci"]})
    assert only.forms("Sci/Tech") == ("Sci/Tech", "Tech")
