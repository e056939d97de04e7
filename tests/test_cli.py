"""The jlabel command: demo, preannotate (CSV/Parquet/JSONL in and out), clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_preannotate import KeywordLLM

import jlabel as jl
from jlabel import cli
from jlabel.datasets import news_demo
from jlabel.frame import ensure_columns


@pytest.fixture
def keyword_model(monkeypatch):
    model = KeywordLLM()
    monkeypatch.setattr(cli, "_model", lambda args: model)
    return model


@pytest.fixture
def records(tmp_path):
    frame = pd.DataFrame(
        {"key": ["a", "b", "c"], "text": ["The bank cut rates.", "The striker scored.", "A faster chip."]}
    )
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    frame.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    return tmp_path


@pytest.mark.parametrize("source", ["in.csv", "in.parquet", "in.jsonl"])
@pytest.mark.parametrize("target", ["out.csv", "out.parquet", "out.jsonl"])
def test_preannotate_files_in_and_out(records, keyword_model, source, target, capsys):
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    argv = ["preannotate", str(records / source), "--labels", *labels, "--out", str(records / target)]
    assert cli.main([*argv, "--id", "key", "--no-cache", "--quiet", "--calibrate", "none"]) == 0
    assert "wrote 3 records" in capsys.readouterr().out
    out = cli.read_table(records / target)
    assert out["llm_label"].tolist() == ["Business", "Sports", "Sci/Tech"]
    probs = out["llm_probs"].map(lambda v: json.loads(v) if isinstance(v, str) else list(v)).tolist()
    np.testing.assert_allclose(np.array(probs).sum(axis=1), 1.0, atol=1e-5)


def test_preannotate_writes_suggest_events(records, keyword_model):
    store = records / "labels.db"
    argv = ["preannotate", str(records / "in.csv"), "--labels", "World", "Sports", "Business", "Sci/Tech"]
    assert cli.main([*argv, "--out", str(records / "o.csv"), "--id", "key", "--store", str(store), "--quiet"]) == 0
    events = jl.Store(store).events()
    assert events["record"].tolist() == ["a", "b", "c"] and set(events["action"]) == {"suggest"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["preannotate", "{d}/missing.csv", "--labels", "A", "B", "--out", "{d}/o.csv"], "no input file at"),
        (["preannotate", "{d}/in.txt", "--labels", "A", "B", "--out", "{d}/o.csv"], "is not .csv, .parquet or .jsonl"),
        (["preannotate", "{d}/in.csv", "--labels", "A", "B", "--out", "{d}/o.xlsx"], "must end in .csv"),
        (["preannotate", "{d}/in.csv", "--labels", "A", "B", "--out", "{d}/o.csv", "--id", "nope"], "'nope' is not"),
    ],
)
def test_bad_files_exit_with_a_message(records, keyword_model, argv, message):
    (records / "in.txt").write_text("x")
    with pytest.raises(SystemExit, match=message):
        cli.main([a.format(d=records) for a in argv])


def test_bad_text_column_returns_2(records, keyword_model, capsys):
    argv = ["preannotate", str(records / "in.csv"), "--labels", "A", "B", "--out", str(records / "o.csv")]
    assert cli.main([*argv, "--text", "body", "--quiet"]) == 2
    assert "'body'" in capsys.readouterr().err


def test_demo_with_a_stand_in_model(tmp_path, keyword_model, capsys):
    assert cli.main(["demo", "--n", "12", "--out", str(tmp_path / "demo.parquet"), "--no-cache", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "records                  12" in printed and str(tmp_path / "demo.parquet") in printed
    out = cli.read_table(tmp_path / "demo.parquet")
    assert len(out) == 12 and out["llm_label"].notna().all()
    demo = news_demo().head(12)
    assert keyword_model.calls[:12] == (demo.title + ". " + demo.description).tolist()
    assert len(keyword_model.calls) == 15  # and the 3 content-free inputs of the label-bias correction


def test_demo_checks_its_options_first_and_counts_only_scored_records(tmp_path, keyword_model, capsys, monkeypatch):
    with pytest.raises(SystemExit, match=r"must end in \.csv"):
        cli.main(["demo", "--out", str(tmp_path / "demo.txt"), "--no-cache", "--quiet"])
    assert keyword_model.calls == []  # was: refused only after the whole run
    with pytest.raises(SystemExit):
        cli.main(["demo", "--n", "-100", "--no-cache", "--quiet"])  # was: 20 records (head(-100))
    assert "must be at least 1" in capsys.readouterr().err

    def fails(prompt, text):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(keyword_model, "score_one", fails)
    assert (
        cli.main(["demo", "--n", "4", "--out", str(tmp_path / "d.csv"), "--no-cache", "--quiet", "--calibrate", "none"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "accuracy vs gold topics  n/a" in printed  # was 0.25: a failed record counted as "World"
    assert "errors or warnings       4" in printed


def test_news_demo_is_balanced_and_original():
    df = news_demo()
    assert df.index.is_unique and len(df) == 120
    assert df["topic"].value_counts().to_dict() == {t: 30 for t in ("World", "Sports", "Business", "Sci/Tech")}
    assert (df["title"].str.len() > 10).all() and (df["description"].str.len() > 30).all()
    assert not df["title"].duplicated().any()


@pytest.mark.model
def test_demo_on_the_embedded_model(tmp_path, capsys, embedded_llm):
    assert cli.main(["demo", "--n", "8", "--out", str(tmp_path / "demo.csv"), "--no-cache", "--quiet"]) == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("accuracy vs gold topics")[1].split()[0])
    assert 0 <= accuracy <= 1
    out = pd.read_csv(tmp_path / "demo.csv")
    assert len(out) == 8 and out["llm_model"].str.startswith("llamacpp:SmolLM2", na=False).all()


def test_export_and_report_run_as_batch_jobs(tmp_path, capsys):
    task = jl.Task(["World", "Sports"])
    with jl.Store(tmp_path / "labels.db", task=task, annotator="ana") as store:
        store.record("0", "label", "Sports")
        store.record("1", "label", "World")
    pd.DataFrame({"text": ["Goal!", "Summit", "Rain"]}).to_csv(tmp_path / "news.csv", index=False)
    db = str(tmp_path / "labels.db")

    assert cli.main(["export", db, str(tmp_path / "train.jsonl"), "--data", str(tmp_path / "news.csv")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [(r["text"], r["label"]) for r in rows] == [("Goal!", "Sports"), ("Summit", "World")]

    assert cli.main(["report", db, str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "<html" in html.lower() and "ana" in html
    assert "wrote" in capsys.readouterr().out


def test_preannotate_learns_from_the_label_column(tmp_path, keyword_model, capsys):
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    words = np.where(np.random.default_rng(0).random(90) < 0.5, "match", "summit")  # no keyword: the model is blind
    truth = np.where(words == "match", "Sports", "World")
    frame = pd.DataFrame({"text": [f"{w} report {i}" for i, w in enumerate(words)], "label": truth})
    frame.loc[70:, "label"] = None  # the last 20 are unlabeled (learning starts at 50 labels)
    frame.to_csv(tmp_path / "in.csv", index=False)
    argv = ["preannotate", str(tmp_path / "in.csv"), "--labels", *labels, "--out", str(tmp_path / "out.parquet")]
    assert cli.main([*argv, "--learn", "--no-cache", "--quiet"]) == 0
    out = cli.read_table(tmp_path / "out.parquet")
    assert out["llm_label"][70:].tolist() == truth[70:].tolist()  # learned from the 70 labels
    assert set(out["llm_source"]) <= {"head", "combined"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("target", ["train.jsonl", "ls.json"])
def test_export_takes_what_preannotate_wrote_as_data(tmp_path, suffix, target, capsys):
    task = jl.Task(["World", "Sports"])
    frame = pd.DataFrame({"text": ["Goal!", "War", "NA"]})
    matrix = np.array([[0.2, 0.8], [np.nan, np.nan], [0.5, 0.5]])  # record 1: no suggestion (a model error)
    suggested = jl.set_suggestions(frame, task, matrix, model="m")
    data = cli.write_table(suggested, tmp_path / f"suggested{suffix}")  # as `jlabel preannotate --out` writes it
    with jl.Store(tmp_path / "labels.db", task=task, annotator="ana") as store:
        store.record(0, "label", "Sports")
        store.record(2, "label", "World")
    argv = ["export", str(tmp_path / "labels.db"), str(tmp_path / target), "--data", str(data)]
    assert cli.main(argv) == 0
    assert "wrote 2 labeled of 3 records" in capsys.readouterr().out
    back = jl.read(tmp_path / target, task=task)
    assert back["text"].tolist()[-1] == "NA" and back["label"].dropna().tolist() == ["Sports", "World"]
    if target == "ls.json":
        assert back["llm_label"].isna().tolist() == [False, True, False]
        assert back["llm_label"].dropna().tolist() == ["Sports", "World"]
        np.testing.assert_allclose(jl.probs(back, task), matrix)
        assert "Unnamed: 0" not in back.columns  # the CSV's index column is the keys, not a data field


def test_export_keys_a_csv_by_the_index_column_jlabel_wrote(tmp_path, capsys):
    task = jl.Task(["World", "Sports"])
    frame = pd.DataFrame({"text": ["Goal!", "War"]}, index=["r1", "r2"])
    data = cli.write_table(jl.set_suggestions(frame, task, [[0.2, 0.8], [0.9, 0.1]], model="m"), tmp_path / "s.csv")
    with jl.Store(tmp_path / "labels.db", task=task, annotator="ana") as store:
        store.record("r1", "label", "Sports")
    argv = ["export", str(tmp_path / "labels.db"), str(tmp_path / "ls.json"), "--data", str(data)]
    assert cli.main(argv) == 0
    assert "wrote 1 labeled of 2 records" in capsys.readouterr().out  # was 0: the keys were row numbers
    entries = json.loads((tmp_path / "ls.json").read_text())
    assert [e["meta"]["jlabel_key"] for e in entries] == ["r1", "r2"] and set(entries[0]["data"]) == {"text"}


def test_readers_keep_values_as_written(tmp_path, capsys):
    rows = [{"id": "007", "text": "1.50", "labeled_at": "2024-01-01"}, {"id": "010", "text": "N/A", "labeled_at": ""}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    frame = cli.read_table(tmp_path / "records.jsonl")  # a first field id holds the record keys
    assert frame.index.tolist() == ["007", "010"]
    assert frame.to_dict("list") == {k: [row[k] for row in rows] for k in ("text", "labeled_at")}
    assert cli.read_table(tmp_path / "records.jsonl", id="text").index.tolist() == ["1.50", "N/A"]
    pd.DataFrame({"text": ["Goal!", "N/A", "null", "NA", ""]}).to_csv(tmp_path / "records.csv", index=False)
    assert cli.read_table(tmp_path / "records.csv")["text"].tolist()[:4] == ["Goal!", "N/A", "null", "NA"]

    task = jl.Task(["price", "other"])
    with jl.Store(tmp_path / "labels.db", task=task, annotator="ana") as store:
        store.record("007", "label", "price")
        store.record("010", "label", "other")
        store.record("1", "label", "other")
    out = tmp_path / "train.jsonl"
    argv = ["export", str(tmp_path / "labels.db"), str(out), "--data", str(tmp_path / "records.jsonl"), "--id", "id"]
    assert cli.main(argv) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["text"], r["label"]) for r in lines] == [("007", "1.50", "price"), ("010", "N/A", "other")]
    argv = ["export", str(tmp_path / "labels.db"), str(out), "--data", str(tmp_path / "records.csv")]
    assert cli.main(argv) == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["N/A"]


def test_store_errors_are_messages_not_tracebacks(tmp_path, capsys):
    pd.DataFrame({"text": ["hi"]}).to_csv(tmp_path / "r.csv", index=False)
    typo = tmp_path / "lables.db"
    with pytest.raises(SystemExit, match="No store at"):
        cli.main(["export", str(typo), str(tmp_path / "o.jsonl"), "--data", str(tmp_path / "r.csv")])
    assert not typo.exists()  # the mistyped path did not become a new, empty store
    notes = tmp_path / "notes.txt"
    notes.write_text("hello world, not sqlite")
    for argv in (["report", str(notes), str(tmp_path / "r.html")], ["export", str(notes), str(tmp_path / "o.jsonl")]):
        argv += ["--data", str(tmp_path / "r.csv")] if argv[0] == "export" else []
        assert cli.main(argv) == 2
        assert f"jlabel {argv[0]}: {notes} is not a SQLite file" in capsys.readouterr().err
    assert notes.read_text() == "hello world, not sqlite"


def test_a_csv_jlabel_wrote_reads_back_with_its_keys_and_no_extra_column(tmp_path):
    task = jl.Task(["World", "Sports"])
    frame = pd.DataFrame({"text": ["Goal!", "War", "Vote"]}, index=["007", "r2", "12"])
    suggested = jl.set_suggestions(frame, task, [[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]], model="m")
    once = cli.read_table(cli.write_table(suggested, tmp_path / "once.csv"))
    assert once.index.tolist() == ["007", "r2", "12"] and "Unnamed: 0" not in once.columns
    twice = cli.read_table(cli.write_table(once, tmp_path / "twice.csv"))  # preannotate's output as its input
    assert twice.columns.tolist() == once.columns.tolist() == suggested.columns.tolist()
    as_jsonl = cli.read_table(cli.write_table(once, tmp_path / "once.jsonl"))  # the CSV's probs held as text
    np.testing.assert_allclose(np.array(as_jsonl["llm_probs"].tolist()), [[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])
    numbered = cli.read_table(cli.write_table(frame.reset_index(drop=True), tmp_path / "numbered.csv"))
    assert numbered.index.tolist() == [0, 1, 2] and numbered.columns.tolist() == ["text"]


def test_export_refuses_data_whose_keys_match_no_stored_record(tmp_path):
    task = jl.Task(["World", "Sports"])
    data = cli.write_table(pd.DataFrame({"key": ["a1", "a2"], "text": ["x", "y"]}), tmp_path / "d.csv")
    with jl.Store(tmp_path / "labels.db", task=task, annotator="ana") as store:
        store.record("a1", "label", "World")
    argv = ["export", str(tmp_path / "labels.db"), str(tmp_path / "out.jsonl"), "--data", str(data)]
    with pytest.raises(SystemExit, match=r"None of the 1 records decided .* pass --id the column"):
        cli.main(argv)  # was: "wrote 0 labeled", exit 0, an empty export
    assert cli.main([*argv, "--id", "key"]) == 0


def test_a_bad_task_on_the_command_line_is_a_message_in_its_terms(tmp_path, capsys):
    argv = ["preannotate", str(tmp_path / "x.csv"), "--labels", "toxic", "--out", str(tmp_path / "o.csv")]
    with pytest.raises(SystemExit, match=r"needs at least two labels.*use --kind multi"):
        cli.main(argv)  # was a traceback saying Task(['toxic'], kind='multi')


def test_a_jsonl_file_jlabel_wrote_reads_back_with_its_keys(tmp_path):
    keyed = pd.DataFrame({"text": ["x", "y"]}, index=["r1", "007"])
    back = cli.read_table(cli.write_table(keyed, tmp_path / "keyed.jsonl"))
    assert back.index.tolist() == ["r1", "007"] and back.columns.tolist() == ["text"]
    numbered = pd.DataFrame({"text": ["x", "y"], "index": [5, 6]})  # a data field named index stays data
    for _ in range(3):  # written and read again and again: no key column piles up (was: a crash the third time)
        numbered = cli.read_table(cli.write_table(numbered, tmp_path / "numbered.jsonl"))
    assert numbered.columns.tolist() == ["text", "index"] and numbered.index.tolist() == [0, 1]
    named = keyed.rename_axis("key")
    assert cli.read_table(cli.write_table(named, tmp_path / "named.jsonl"), id="key").index.tolist() == ["r1", "007"]
    with pytest.raises(SystemExit, match="--id 'nope' is not a column"):
        cli.read_table(tmp_path / "named.jsonl", id="nope")


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_parquet_jlabel_writes_is_read_by_pandas_itself(tmp_path, kind):
    task = jl.Task(["a", "b"], kind=kind)
    frame = pd.DataFrame({"text": ["x", "y"], "label": ["a", "b"] if kind == "single" else [["a"], ["b"]]})
    suggested = jl.set_suggestions(frame, task, [[0.9, 0.2], [0.1, 0.7]], model="m")
    path = cli.write_table(suggested, tmp_path / "out.parquet")
    plain = pd.read_parquet(path)  # was: TypeError data type 'list<item: double>[pyarrow]' not understood
    np.testing.assert_allclose(
        np.stack(plain["llm_probs"].to_numpy()),
        [[0.9, 0.2], [0.1, 0.7]] if kind == "multi" else [[0.9 / 1.1, 0.2 / 1.1], [0.125, 0.875]],
    )
    assert cli.read_table(path)["llm_probs"].dtype == suggested["llm_probs"].dtype
    jl.export(suggested, tmp_path / "export.parquet", task=task)
    assert pd.read_parquet(tmp_path / "export.parquet")["llm_label"].notna().all()
    assert jl.read(tmp_path / "export.parquet")["llm_probs"].dtype == suggested["llm_probs"].dtype


def test_multi_label_and_span_lists_are_json_in_csv(tmp_path):
    task = jl.Task(["a", "b", "c"], kind="multi")
    frame = pd.DataFrame({"text": ["x", "y"], "label": [["a", "b"], None]})
    frame = jl.set_suggestions(frame, task, [[0.9, 0.8, 0.1], [0.1, 0.2, 0.7]], model="m")
    path = cli.write_table(frame, tmp_path / "multi.csv")
    assert '"[""a"", ""b""]"' in path.read_text()  # JSON, not Python's repr ['a', 'b']
    back = ensure_columns(cli.read_table(path), task)
    assert back["label"].tolist() == [["a", "b"], None]
    assert back["llm_label"].tolist() == frame["llm_label"].tolist()


def test_csv_keys_and_text_columns_are_read_as_written(tmp_path, keyword_model, capsys):
    csv = tmp_path / "records.csv"
    csv.write_text(
        "key,text,zip,price,n,ok,label,version\n"
        "1.10,The bank cut rates.,02134,1.50,3,True,1,1.10\n"
        "007,The striker scored.,10001,2,4,False,2,1.2\n"
        "12,A faster chip.,99999,3.25,5,True,,2\n"
    )
    frame = cli.read_table(csv, text=["version"])
    # kept as written: a number with a leading zero, jlabel's text columns, the columns asked for
    assert frame["key"].tolist() == ["1.10", "007", "12"] and frame["zip"].tolist() == ["02134", "10001", "99999"]
    assert frame["label"].tolist()[:2] == ["1", "2"] and frame["version"].tolist() == ["1.10", "1.2", "2"]
    # the numbers users compute with stay numbers
    assert frame["price"].tolist() == [1.5, 2.0, 3.25] and frame["n"].tolist() == [3, 4, 5]
    implicit = tmp_path / "implicit.csv"  # rows one field longer than the header: the first is the index
    implicit.write_text("zip,n\nr1,007,1\nr2,008,2\n")
    read = cli.read_table(implicit)
    assert read["zip"].tolist() == ["007", "008"] and read["n"].tolist() == [1, 2]  # n was wiped to NaN
    assert frame["ok"].tolist() == [True, False, True]
    assert cli.read_table(csv)["version"].tolist() == [1.1, 1.2, 2.0]

    csv.write_text("key,text\n1.10,The bank cut rates.\n1.2,The striker scored.\n12,A faster chip.\n")  # --id: text
    store = tmp_path / "labels.db"
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    argv = ["preannotate", str(csv), "--labels", *labels, "--out", str(tmp_path / "out.csv"), "--id", "key"]
    assert cli.main([*argv, "--store", str(store), "--no-cache", "--quiet"]) == 0
    task = jl.Task(labels)
    with jl.Store(store, task=task, annotator="ana") as journal:
        assert journal.events()["record"].tolist() == ["1.10", "1.2", "12"]
        journal.record("1.10", "label", "Business")
    out = tmp_path / "train.jsonl"
    assert cli.main(["export", str(store), str(out), "--data", str(csv), "--id", "key"]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["1.10"]
