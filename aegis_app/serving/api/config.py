"""Settings of the REST API, derived from the process Settings (aegis_app.core.settings):

    AEGIS_API_TOKEN        admin bearer token; no default secret
    AEGIS_API_SERVICE_TOKEN, AEGIS_API_ANALYST_TOKEN, AEGIS_API_ADMIN_TOKEN,
    AEGIS_API_READ_TOKEN   one token per role (aegis_app/serving/api/auth.py)
    AEGIS_API_TOKENS       named tokens, "role:name:token" separated by commas
    AEGIS_API_OPEN_READS   1/true/yes: GET endpoints need no token
    AEGIS_WORKER_URL       worker web view, default http://127.0.0.1:{AEGIS_WEB_PORT}
    AEGIS_RULE_ALERT_BUDGET, AEGIS_RULE_BACKTEST_DAYS   rule activation (README "Rules")

Command-line options (`aegis api --token --open-reads --worker-url`) win over these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aegis_app.core.settings import Settings
from aegis_app.serving.api.auth import Principal, parse_tokens

ROLE_FIELDS = ("service", "analyst", "admin", "read")


@dataclass(frozen=True)
class ApiSettings:
    token: str | None = field(default=None, repr=False)
    open_reads: bool = False
    worker_url: str = "http://127.0.0.1:6066"
    # Seconds the API waits for the worker's state view before answering 503.
    worker_timeout_s: float = 2.0
    # Largest number of concurrent requests scored together in one model call.
    score_batch_size: int = 64
    # Role -> its token (AEGIS_API_<ROLE>_TOKEN).
    role_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    # "role:name:token,..." (AEGIS_API_TOKENS).
    named_tokens: str | None = field(default=None, repr=False)
    rule_alert_budget: float | None = None
    rule_backtest_days: int = 7

    @classmethod
    def from_env(cls, settings: Settings, **overrides: object) -> ApiSettings:
        role_tokens = {
            role: token
            for role in ROLE_FIELDS
            if (token := getattr(settings, f"api_{role}_token")) is not None
        }
        values: dict[str, object] = {
            "token": settings.api_token,
            "open_reads": settings.api_open_reads,
            "worker_url": settings.worker_url or f"http://127.0.0.1:{settings.web_port}",
            "role_tokens": role_tokens,
            "named_tokens": settings.api_tokens,
            "rule_alert_budget": settings.rule_alert_budget,
            "rule_backtest_days": settings.rule_backtest_days,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> ApiSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def tokens(self) -> list[tuple[str, Principal]]:
        """Every (token, who): AEGIS_API_TOKEN as the admin, one per role, the named ones
        (TokenError when AEGIS_API_TOKENS cannot be read)."""
        out = [(self.token, Principal("admin", "admin"))] if self.token else []
        out += [(token, Principal(role, role)) for role, token in self.role_tokens.items()]
        return out + parse_tokens(self.named_tokens)
