"""A private RabbitMQ node that fails to start says why in the error, not in a deleted folder."""

from __future__ import annotations

from pathlib import Path

from mdp_testing.rabbitmq_cluster import RabbitNode, log_tail


def _node(tmp_path: Path) -> RabbitNode:
    (tmp_path / "log").mkdir()
    return RabbitNode("mdpt1b@localhost", 10001, 10002, tmp_path)


def test_the_last_lines_of_every_log_are_quoted_by_file(tmp_path: Path) -> None:
    node = _node(tmp_path)
    (tmp_path / "log" / "stdout.log").write_text("booting\n\n  started\n")
    lines = [f"line {i}" for i in range(10)] + ["eaddrinuse on 10002", ""]
    (tmp_path / "log" / "mdpt1b@localhost.log").write_text("\n".join(lines))
    (tmp_path / "log" / "notes.txt").write_text("not a log")
    assert log_tail(node) == (
        "[mdpt1b@localhost.log] line 7 | line 8 | line 9 | eaddrinuse on 10002 "
        "[stdout.log] booting | started"
    )


def test_a_long_tail_keeps_its_end_and_no_log_says_so(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert log_tail(node) == "(nothing logged)"
    (tmp_path / "log" / "stdout.log").write_text("x" * 5_000 + " the reason\n")
    tail = log_tail(node, limit=100)
    assert tail.startswith("...")
    assert tail.endswith("the reason")
    assert len(tail) == 103
