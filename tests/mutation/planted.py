"""Plant each fault issue 21 named, one at a time, and run its mapped unit tests: all must fail.

``python3 tests/mutation/planted.py`` (a few minutes). The mutation run (``dev.py mutate``)
covers these modules mutant by mutant; this list keeps the faults the issue found by hand, some
of which mutmut does not generate (``fullmatch`` -> ``match``, a dropped statement).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANTS = [
    (
        "envelope: status kept (fast path)",
        "packages/mdp-core/src/mdp_core/envelope.py",
        "events = [event for event in typed.events if type(event) is not Status]",
        "events = list(typed.events)",
        "tests/unit/mdp_core/test_envelope.py",
    ),
    (
        "envelope: status kept (slow path)",
        "packages/mdp-core/src/mdp_core/envelope.py",
        "        if type(event) is not Status:\n            events.append",
        "        if True:\n            events.append",
        "tests/unit/mdp_core/test_envelope.py",
    ),
    (
        "envelope: version 0 accepted",
        "packages/mdp-core/src/mdp_core/envelope.py",
        "version < 1",
        "version < 0",
        "tests/unit/mdp_core/test_envelope.py",
    ),
    (
        "envelope: newer version accepted",
        "packages/mdp-core/src/mdp_core/envelope.py",
        "version > ENVELOPE_VERSION",
        "version > ENVELOPE_VERSION + 1",
        "tests/unit/mdp_core/test_envelope.py",
    ),
    (
        "top trades: horizon edge",
        "packages/mdp-analyzers/src/mdp_analyzers/top_trades.py",
        "if second >= horizon_seconds:",
        "if second > horizon_seconds:",
        "tests/unit/mdp_analyzers/test_top_trades.py",
    ),
    (
        "top trades: read window edge",
        "packages/mdp-analyzers/src/mdp_analyzers/top_trades.py",
        "range(now_seconds - self.window_seconds, now_seconds",
        "range(now_seconds - self.window_seconds + 1, now_seconds",
        "tests/unit/mdp_analyzers/test_top_trades.py",
    ),
    (
        "top trades: ties at the cut",
        "packages/mdp-analyzers/src/mdp_analyzers/top_trades.py",
        "(full and (value, member) <= heap[0])",
        "(full and value <= heap[0][0])",
        "tests/unit/mdp_analyzers/test_top_trades.py",
    ),
    (
        "top trades: identity without time",
        "packages/mdp-analyzers/src/mdp_analyzers/top_trades.py",
        'return f"{trade.exchange}:{trade.trade_id}:{trade.timestamp_ms}"',
        'return f"{trade.exchange}:{trade.trade_id}"',
        "tests/unit/mdp_analyzers/test_top_trades.py",
    ),
    (
        "top trades: identity without exchange",
        "packages/mdp-analyzers/src/mdp_analyzers/top_trades.py",
        'return f"{trade.exchange}:{trade.trade_id}:{trade.timestamp_ms}"',
        'return f"{trade.trade_id}:{trade.timestamp_ms}"',
        "tests/unit/mdp_analyzers/test_top_trades.py",
    ),
    (
        "news: memory bound off by one",
        "packages/mdp-analyzers/src/mdp_analyzers/news.py",
        "if len(self._seen) > self._remember:",
        "if len(self._seen) > self._remember + 1:",
        "tests/unit/mdp_analyzers/test_news.py",
    ),
    (
        "news: seen link not refreshed",
        "packages/mdp-analyzers/src/mdp_analyzers/news.py",
        "                self._seen.move_to_end(article.link)\n",
        "",
        "tests/unit/mdp_analyzers/test_news.py",
    ),
    (
        "WDC: older version wins (Python path)",
        "packages/mdp-cache/src/mdp_cache/widgets.py",
        "        return version > old_version",
        "        return True",
        "tests/unit/mdp_cache/test_widgets.py",
    ),
    (
        "WDC: equal version, smaller SHA-1 wins (Python path)",
        "packages/mdp-cache/src/mdp_cache/widgets.py",
        "    return _sha1(payload) > _sha1(old_payload)",
        "    return _sha1(payload) >= _sha1(old_payload)",
        "tests/unit/mdp_cache/test_widgets.py",
    ),
    (
        "WDC: superseded still published (Python path)",
        "packages/mdp-cache/src/mdp_cache/widgets.py",
        "                    winners.discard(index)\n",
        "",
        "tests/unit/mdp_cache/test_widgets.py",
    ),
    (
        "leaderboard: flat symbol is a gapper",
        "packages/mdp-analyzers/src/mdp_analyzers/board.py",
        "gap if gap is not None and gap > 0 else None",
        "gap if gap is not None and gap >= 0 else None",
        "tests/unit/mdp_analyzers/test_board_edges.py",
    ),
    (
        "leaderboard: same-bar order by volume ignored",
        "packages/mdp-analyzers/src/mdp_analyzers/leaderboard.py",
        "return (event.end_ms, event.accumulated_volume, event.volume, event.close)",
        "return (event.end_ms, event.volume, event.close)",
        "tests/unit/mdp_analyzers/test_board_edges.py",
    ),
    (
        "leaderboard: 09:30 boundary",
        "packages/mdp-analyzers/src/mdp_analyzers/leaderboard.py",
        "if event.end_ms * _NS_PER_MS >= self._open_ns > 0:",
        "if event.end_ms * _NS_PER_MS > self._open_ns > 0:",
        "tests/unit/mdp_analyzers/test_board_edges.py",
    ),
    (
        "leaderboard: gainers open one tick late",
        "packages/mdp-analyzers/src/mdp_analyzers/leaderboard.py",
        "before_open = schedule is None or now_ns < schedule.regular_open_ns",
        "before_open = schedule is None or now_ns <= schedule.regular_open_ns",
        "tests/unit/mdp_analyzers/test_board_edges.py",
    ),
    (
        "SCP: success clears the address counter",
        "services/control-plane/src/mdp_scp/login_throttle.py",
        "delete(login_failures).where(login_failures.c.key == user_key)",
        "delete(login_failures).where(login_failures.c.key != user_key)",
        "tests/unit/mdp_scp/test_login_throttle.py",
    ),
    (
        "SCP: success does not clear the user counter",
        "services/control-plane/src/mdp_scp/login_throttle.py",
        "delete(login_failures).where(login_failures.c.key == user_key)",
        "delete(login_failures).where(login_failures.c.key == 'nobody')",
        "tests/unit/mdp_scp/test_login_throttle.py",
    ),
    (
        "SCP: short digest accepted",
        "services/control-plane/src/mdp_scp/passwords.py",
        "len(digest) < 16",
        "len(digest) < 15",
        "tests/unit/mdp_scp/test_password_rules.py",
    ),
    (
        "SCP: short salt accepted",
        "services/control-plane/src/mdp_scp/passwords.py",
        "len(salt) < 8",
        "len(salt) < 7",
        "tests/unit/mdp_scp/test_password_rules.py",
    ),
    (
        "token: non-canonical base64 accepted",
        "packages/mdp-core/src/mdp_core/token.py",
        "    if _b64encode(data) != text:\n",
        "    if False:\n",
        "tests/unit/mdp_core/test_token.py",
    ),
    (
        "WDS: grant match instead of fullmatch",
        "services/widget-service/src/mdp_wds/access.py",
        ".fullmatch(name)",
        ".match(name)",
        "tests/unit/mdp_wds/test_access.py",
    ),
]


def main() -> int:
    """Plant, test, restore; print one verdict per fault."""
    failed = []
    env = {**os.environ, "MDP_HYPOTHESIS_PROFILE": "mutation"}
    python = str(ROOT / ".venv/bin/python")
    for title, path, old, new, tests in PLANTS:
        file = ROOT / path
        original = file.read_text()
        if original.count(old) != 1:
            print(f"?? {title}: pattern found {original.count(old)} times")
            failed.append(title)
            continue
        file.write_text(original.replace(old, new))
        try:
            code = subprocess.run(  # noqa: S603 - fixed commands
                [python, "-m", "pytest", "-x", "-q", "-p", "no:randomly", tests],
                cwd=ROOT,
                capture_output=True,
                env=env,
                check=False,
            ).returncode
        finally:
            file.write_text(original)
        if code != 1:
            failed.append(title)
        print(f"{'killed' if code == 1 else f'SURVIVED ({code})':>13}  {title}", flush=True)
    print("all killed" if not failed else f"not killed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
