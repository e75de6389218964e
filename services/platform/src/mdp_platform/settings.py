"""Settings of the ``mdp`` command, read once from the environment (flags override them)."""

from __future__ import annotations

from mdp_core.settings import Secret, setting, settings_class

__all__ = ["DemoSettings"]


@settings_class
class DemoSettings:
    """What ``mdp demo`` and ``mdp bench`` take from the environment.

    Without ``MDP_AMQP_URL`` the demo uses an in-process queue; without ``MDP_REDIS_URL`` an
    embedded Redis-compatible store. Real provider feeds are used only with ``--real-feeds``.
    """

    amqp_url: Secret | None = setting(
        env="MDP_AMQP_URL",
        default=None,
        secret=True,
        doc="RabbitMQ URL; unset: the demo uses an in-process queue instead.",
    )
    redis_url: Secret | None = setting(
        env="MDP_REDIS_URL",
        default=None,
        secret=True,
        doc="Redis URL (MDC in db N, WDC in db N+1); unset: an embedded store.",
    )
    admin_password: Secret | None = setting(
        env="MDP_DEMO_ADMIN_PASSWORD",
        default=None,
        secret=True,
        doc="Password of the demo's admin user; unset: a random one, printed once.",
    )
