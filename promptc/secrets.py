"""Which environment variables hold secrets: their values never go where promptc writes.

A model string is written to the call cache, logs, `summary.json` and the `.pfc`'s run
metadata, so `model m = env("OPENAI_API_KEY")` would copy a key into all of them. A
variable whose name ends like a key's (`secret_variable`) is refused as a model string's
source: at compile time at the declaration, when an artifact is loaded (an artifact can be
edited), and when a model is resolved for a call (a Program built by hand). Keys go in
`key_env` (promptc.runtime.endpoint), which reads the key when a call is made and writes
it nowhere.
"""

from __future__ import annotations

SECRET_ENV_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def secret_variable(name: str) -> bool:
    """Whether the environment variable `name` is named like a key (`*_KEY`, `*_TOKEN`, ...)."""
    return name.upper().endswith(SECRET_ENV_SUFFIXES)


def refuse_secret_model(model: str, env: str | None) -> str | None:
    """The message refusing `model m = env(VAR)` when VAR names a secret; else None."""
    if env is None or not secret_variable(env):
        return None
    return (
        f"model '{model}' reads its model string from {env}, which is named like a secret (a model string "
        f"is written to the cache, logs and artifacts): name the model here and its key's variable with "
        f'{{ key_env "{env}" }}'
    )


__all__ = ["SECRET_ENV_SUFFIXES", "refuse_secret_model", "secret_variable"]
