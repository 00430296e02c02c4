"""The command line (CONTRACT §3): simulate, replay, the report, rejects and exit codes."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sim.scenarios import SCENARIOS, generate, write_scenario
from watchkeeper.cli import main

SUMMARY = re.compile(
    r"^(\d+) events: (\d+) accepted, (\d+) duplicates, (\d+) rejected; "
    r"(\d+) signals -> (\d+) alerts -> (\d+) incidents -> (\d+) pages "
    r"in [0-9.]+ s \((\d+|None) events/s\); history in \S+$"
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replays write their default SQLite history to the working folder: keep it in tmp."""
    monkeypatch.chdir(tmp_path)


def scenario_files(tmp_path: Path, name: str = "stationary", predictions: int = 1000) -> Any:
    return write_scenario(generate(name, predictions=predictions), tmp_path / f"{name}.jsonl")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("watchkeeper: error: ")
    return lines[0].removeprefix("watchkeeper: error: ")


# --- simulate ------------------------------------------------------------------------------


def test_simulate_writes_the_four_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "sim.jsonl"
    code = main(
        ["simulate", "--scenario", "harmful_drift", "--out", str(out), "--predictions", "1000"]
    )
    assert code == 0
    files = [
        out,
        *(out.with_name(f"sim.{s}") for s in ("reference.jsonl", "config.yaml", "truth.json")),
    ]
    assert all(f.is_file() for f in files)
    lines = out.read_bytes().splitlines()
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == f"harmful_drift: {len(lines)} events -> {out}"
    assert stdout[1:4] == [
        f"  reference {files[1]}",
        f"  config    {files[2]}",
        f"  truth     {files[3]}",
    ]
    truth = json.loads(files[3].read_text(encoding="utf-8"))
    assert truth["lines"] == len(lines)
    assert truth["predictions"] == 1000
    (incident,) = truth["incidents"]
    assert stdout[4].startswith(
        f"  incident harmful_drift at event {incident['onset_index']} (actionable)"
    )
    assert len(stdout) == 5
    # same arguments, same file
    again = tmp_path / "again.jsonl"
    main(["simulate", "--scenario", "harmful_drift", "--out", str(again), "--predictions", "1000"])
    assert again.read_bytes() == out.read_bytes()


def test_simulate_unknown_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--scenario", "nope", "--out", str(tmp_path / "x.jsonl")])
    assert code == 2
    assert one_error_line(capsys) == (f"unknown scenario 'nope'; known: {', '.join(SCENARIOS)}")
    assert list(tmp_path.iterdir()) == []


def test_simulate_too_few_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--scenario",
            "stationary",
            "--out",
            str(tmp_path / "x.jsonl"),
            "--predictions",
            "10",
        ]
    )
    assert code == 2
    assert one_error_line(capsys) == "predictions must be at least 1000, got 10"


# --- replay --------------------------------------------------------------------------------


def test_replay_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    n = len(files.events.read_bytes().splitlines())
    code = main(["replay", str(files.events), "--config", str(files.config), "-q"])
    assert code == 0
    out, err = capsys.readouterr()
    assert err == ""
    (line,) = out.splitlines()
    m = SUMMARY.match(line)
    assert m is not None, line
    assert m.groups()[:5] == (str(n), str(n), "0", "0", "0")
    assert not (Path.cwd() / "stationary.jsonl.rejects.jsonl").exists()


def test_replay_report_and_signals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path, "broken_pipeline", predictions=3000)
    n = len(files.events.read_bytes().splitlines())
    report, signals = tmp_path / "report.json", tmp_path / "signals.jsonl"
    code = main(
        [
            "replay",
            str(files.events),
            "--config",
            str(files.config),
            "--report",
            str(report),
            "--signals-out",
            str(signals),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    body = json.loads(report.read_text(encoding="utf-8"))
    assert body["events_read"] == n
    assert body["events_read"] == body["accepted"] + body["duplicates"] + body["rejected"]["total"]
    assert body["rejected"] == {"total": 0, "by_reason": {}}
    assert body["accepted"] == n and body["duplicates"] == 0
    assert sum(body["accepted_by_type"].values()) == n
    assert body["accepted_by_type"]["prediction"] == 3000
    written = [json.loads(line) for line in signals.read_text(encoding="utf-8").splitlines()]
    by_kind = Counter(s["kind"] for s in written)
    assert body["signals"] == {"total": len(written), "by_kind": dict(sorted(by_kind.items()))}
    assert {"data_quality", "drift"} <= set(by_kind)
    assert {(s["kind"], s["subject"]) for s in written} >= {
        ("data_quality", "driver_tenure"),
        ("data_quality", "car_value"),
        ("drift", "car_value"),
    }
    assert all(s["model_id"] == "car_loan" for s in written)
    assert [s["seq"] for s in written] == sorted(s["seq"] for s in written)
    assert "rejects_file" not in body
    summaries = [line for line in out.splitlines() if SUMMARY.match(line)]
    assert len(summaries) == 1
    m = SUMMARY.match(summaries[0])
    assert m is not None and m.group(5) == str(len(written))
    pages = [line for line in out.splitlines() if line.startswith("PAGE (dry run) #ml-oncall")]
    assert len(pages) == body["pages"] == int(m.group(8))
    assert body["incidents"] == int(m.group(7)) and f"{body['incidents']} incidents" in out


def test_replay_mixed_good_and_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = scenario_files(tmp_path)
    good = files.events.read_bytes().splitlines()[:300]
    first = json.loads(good[0])
    assert first["type"] == "prediction" and first["event_id"]
    huge_feature = json.dumps({**first, "event_id": "x4", "features": {"a": 123456}})
    bad: list[tuple[bytes, str]] = [
        (b'{"type": "prediction",', "invalid_json"),
        (b"[1, 2", "invalid_json"),
        (b"42", "not_object"),
        (json.dumps({**first, "event_id": "x1", "model_id": 5}).encode(), "wrong_type"),
        (json.dumps({**first, "event_id": "x2", "features": [1, 2]}).encode(), "wrong_type"),
        (json.dumps({**first, "event_id": "x3", "features": {"a": [1]}}).encode(), "wrong_type"),
        (json.dumps({**first, "event_id": "x5", "model_id": "other"}).encode(), "unknown_model"),
        (json.dumps({k: v for k, v in first.items() if k != "ts"}).encode(), "missing_field"),
        (json.dumps({**first, "type": "click"}).encode(), "unknown_event_type"),
        (huge_feature.replace("123456", "1e999").encode(), "non_finite"),
        (huge_feature.replace("123456", "NaN").encode(), "non_finite"),
        (
            json.dumps({**first, "event_id": "x6", "features": {"note": "x" * 100_000}}).encode(),
            "oversize",
        ),
        (json.dumps({**first, "event_id": "x7", "score": 1.5}).encode(), "invalid_value"),
        (b"\xff\xfe" + good[1], "invalid_utf8"),
    ]
    lines = good[:100] + [line for line, _ in bad] + [good[0]] + good[100:]
    dup_index = 100 + len(bad)
    events = tmp_path / "mixed.jsonl"
    events.write_bytes(b"\n".join(lines[:50]) + b"\n\n" + b"\r\n".join(lines[50:]) + b"\r\n")
    report, rejects = tmp_path / "report.json", tmp_path / "rejects.jsonl"
    code = main(
        [
            "replay",
            str(events),
            "--config",
            str(files.config),
            "--report",
            str(report),
            "--rejects-out",
            str(rejects),
            "-q",
        ]
    )
    assert code == 0
    assert capsys.readouterr().err == ""
    body = json.loads(report.read_text(encoding="utf-8"))
    assert body["events_read"] == len(lines)
    assert body["accepted"] == len(good)
    assert body["duplicates"] == 1
    assert body["rejected"]["total"] == len(bad)
    assert body["rejected"]["by_reason"] == dict(sorted(Counter(r for _, r in bad).items()))
    assert body["events_read"] == body["accepted"] + body["duplicates"] + body["rejected"]["total"]
    assert body["rejects_file"] == str(rejects)
    assert lines[dup_index] == good[0]

    records = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(r["seq"], r["reason"]) for r in records] == [
        (100 + k, reason) for k, (_, reason) in enumerate(bad)
    ]
    for record, (line, _) in zip(records, bad, strict=True):
        assert isinstance(record["detail"], str) and record["detail"]
        assert record["batch_index"] is None
        if record["reason"] == "invalid_utf8":
            assert "raw" not in record
            assert base64.b64decode(record["raw_base64"]) == line
        elif record["reason"] == "oversize":
            assert record["raw"] == line.decode()  # kept whole, so it can be re-processed
            assert record["detail"] == f"event of {len(line)} bytes exceeds 65536"
        else:
            assert "raw_base64" not in record
            assert record["raw"] == line.decode("utf-8")


def test_replay_invalid_utf8_inside_a_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = scenario_files(tmp_path)
    good = files.events.read_bytes().splitlines()[:100]
    bad = good[3].replace(b'"car_loan"', b'"car\xff_loan"', 1)
    assert bad != good[3]
    events = tmp_path / "utf8.jsonl"
    events.write_bytes(b"\n".join([*good[:3], bad, *good[4:]]) + b"\n")
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"
    code = main(
        [
            "replay",
            str(events),
            "--config",
            str(files.config),
            "--rejects-out",
            str(rejects),
            "--report",
            str(report),
            "-q",
        ]
    )
    assert code == 0
    body = json.loads(report.read_text(encoding="utf-8"))
    assert body["rejected"]["by_reason"] == {"invalid_utf8": 1}
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert record["seq"] == 3
    assert base64.b64decode(record["raw_base64"]) == bad


def test_replay_batch_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    events = files.events.read_bytes().splitlines()
    batch = b"[" + b",".join([events[0], b"7", events[1]]) + b"]"
    path = tmp_path / "batched.jsonl"
    path.write_bytes(b"\n".join([batch, *events[2:20]]) + b"\n")
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.json"
    code = main(
        [
            "replay",
            str(path),
            "--config",
            str(files.config),
            "--rejects-out",
            str(rejects),
            "--report",
            str(report),
            "-q",
        ]
    )
    assert code == 0
    body = json.loads(report.read_text(encoding="utf-8"))
    assert (body["events_read"], body["accepted"], body["rejected"]["total"]) == (21, 20, 1)
    (record,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (record["seq"], record["reason"], record["batch_index"], record["raw"]) == (
        1,
        "not_object",
        1,
        "7",
    )


def test_default_rejects_file_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = scenario_files(tmp_path)
    events = tmp_path / "in" / "few.jsonl"
    events.parent.mkdir()
    events.write_bytes(b"\n".join([*files.events.read_bytes().splitlines()[:10], b"oops"]))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["replay", str(events), "--config", str(files.config), "-q"]) == 0
    (record,) = [
        json.loads(line) for line in (work / "few.jsonl.rejects.jsonl").read_text().splitlines()
    ]
    assert (record["seq"], record["reason"], record["raw"]) == (10, "invalid_json", "oops")


def test_missing_events_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    missing = tmp_path / "nope.jsonl"
    code = main(["replay", str(missing), "--config", str(files.config)])
    assert code == 2
    assert one_error_line(capsys) == f"cannot read {missing}: no such file"


def test_events_path_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    code = main(["replay", str(tmp_path), "--config", str(files.config)])
    assert code == 2
    assert one_error_line(capsys) == f"cannot read {tmp_path}: no such file"


def test_invalid_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    text = files.config.read_text(encoding="utf-8")
    files.config.write_text(text.replace("  car_loan:\n", "  car_loan:\n    colour: red\n"))
    code = main(["replay", str(files.events), "--config", str(files.config), "-q"])
    assert code == 2
    assert one_error_line(capsys) == "models.car_loan.colour: Extra inputs are not permitted"


def test_config_with_a_wrong_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    text = files.config.read_text(encoding="utf-8")
    files.config.write_text(text.replace("binary_classification", "ranking"))
    assert main(["replay", str(files.events), "--config", str(files.config), "-q"]) == 2
    assert one_error_line(capsys).startswith("models.car_loan.task: Input should be ")


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    missing = tmp_path / "nope.yaml"
    assert main(["replay", str(files.events), "--config", str(missing)]) == 2
    assert one_error_line(capsys).startswith(f"cannot read {missing}: ")


def test_missing_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path)
    files.reference.unlink()
    assert main(["replay", str(files.events), "--config", str(files.config), "-q"]) == 2
    assert one_error_line(capsys) == (
        f"models.car_loan.reference: cannot read {files.reference}: No such file or directory"
    )


def test_console_script(tmp_path: Path) -> None:
    files = scenario_files(tmp_path)
    script = Path(sys.executable).parent / "watchkeeper"
    assert script.is_file()
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            str(script),
            "replay",
            str(files.events),
            "--config",
            str(files.config),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert SUMMARY.match(done.stdout.splitlines()[0])
    assert json.loads(report.read_text())["rejected"]["total"] == 0
    failed = subprocess.run(
        [str(script), "replay", str(tmp_path / "nope.jsonl"), "--config", str(files.config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"watchkeeper: error: cannot read {tmp_path / 'nope.jsonl'}: no such file"
    ]


@pytest.mark.slow
def test_replay_of_a_100k_event_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = scenario_files(tmp_path, "stationary", predictions=61_000)
    n = len(files.events.read_bytes().splitlines())
    assert n >= 100_000
    assert len(json.loads(files.events.read_bytes().split(b"\n", 1)[0])["features"]) == 20
    report = tmp_path / "report.json"
    code = main(
        ["replay", str(files.events), "--config", str(files.config), "--report", str(report), "-q"]
    )
    assert code == 0
    body = json.loads(report.read_text(encoding="utf-8"))
    assert body["events_read"] == body["accepted"] == n
    assert body["rejected"]["total"] == 0 and body["duplicates"] == 0
    assert body["accepted_by_type"]["prediction"] == 61_000


# --- settings: one database, named, or none -------------------------------------------------

NO_DATABASE = ("no database: set WATCHKEEPER_DATABASE_URL or pass --db "
               "(postgresql://user@host:port/db, or an SQLite file)")


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["worker", "--config", "c.yaml"], {}),
     (["notify", "--once"], {"WATCHKEEPER_SLACK_BOT_TOKEN": "xoxb-test"}),
     (["api"], {"WATCHKEEPER_API_TOKEN": "t0ken"}),
     (["db", "upgrade"], {}),
     (["alerts", "list"], {}),
     (["sql", "SELECT 1"], {}),
     (["ack", "abc"], {})],
    ids=["worker", "notify", "api", "db", "alerts", "sql", "ack"])
def test_a_command_with_no_database_says_so_and_creates_none(
    argv: list[str], env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    assert one_error_line(capsys) == NO_DATABASE
    assert list(tmp_path.iterdir()) == []  # no ./watchkeeper.db made on the way


def test_history_commands_find_the_file_replay_wrote_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    files = scenario_files(tmp_path, "broken_pipeline", 3_000)
    assert main(["replay", str(files.events), "--config", str(files.config), "-q"]) == 0
    assert "history in sqlite:///watchkeeper.db" in capsys.readouterr().out
    assert main(["sql", "SELECT count(*) AS n FROM pages"]) == 0
    assert "1" in capsys.readouterr().out


def test_every_command_reads_the_database_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "elsewhere.db"
    monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", f"sqlite:///{db}")
    assert main(["db", "upgrade"]) == 0
    assert db.is_file() and not (tmp_path / "watchkeeper.db").exists()
    assert main(["sql", "SELECT count(*) AS n FROM alert_history"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", "mysql://nope")
    assert main(["sql", "SELECT 1"]) == 2
    assert one_error_line(capsys).startswith("settings: WATCHKEEPER_DATABASE_URL: a database "
                                             "URL is postgresql://")


def test_demo_pages_the_six_actionable_scenarios_and_says_how_to_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's first command: every built-in scenario, six pages (one per actionable
    scenario, none for the benign and stationary ones), the funnel against page-on-every-
    drift, and the commands to look at the result, the console's included."""
    assert main(["demo", "--workdir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"→ 7 incidents → 6 pages \(a page-on-every-drift policy would have sent "
                     r"\d+\)", out), out[-2000:]
    db = tmp_path / "d" / "watchkeeper.db"
    assert db.exists() and f"watchkeeper alerts list --db {db}" in out
    assert f"WATCHKEEPER_API_TOKEN=demo watchkeeper api --db {db}" in out
